"""The queue and its runner, sweeps and run comparison, with tiny models trained by the real worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from smolora_engine import events as ev
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.overnight.queue_file import QueueError, move_entry, read_queue, remove_entry, retry_entry
from smolora_engine.overnight.runner import Runner, RunnerBusy, runner_lock
from smolora_engine.overnight.sweep import SweepError, parse_grid, split_values
from smolora_engine.projects import create_project, save_project
from smolora_engine.runs import read_run_settings, summarize, training_lock


def make_project(name, model, data=None, **training):
    project = create_project(name, model=str(model), data=str(data or demo_train_file()))
    project.training.grad_accum = 1
    project.training.eval_steps = 0
    project.training.max_steps = 2
    project.eval.samples = 0
    for key, value in training.items():
        setattr(project.training, key, value)
    save_project(project)
    return project


def queue_json(capsys) -> dict:
    capsys.readouterr()
    assert main(["queue", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def by_id(capsys) -> dict[int, dict]:
    return {row["id"]: row for row in queue_json(capsys)["entries"]}


def runner_process(**kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smolora_engine.cli", "queue", "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy(), **kwargs)


def wait_for(predicate, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


# ------------------------------------------------------------------ the queue file and the grid

def test_values_split_on_commas_outside_brackets_and_quotes():
    assert split_values("8,16,32") == ["8", "16", "32"]
    assert split_values('["q_proj","v_proj"],["all-linear"]') == ['["q_proj","v_proj"]', '["all-linear"]']
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    assert parse_grid(["lora.r=8,16", 'lora.target_modules=["q_proj","v_proj"],["all-linear"]']) == [
        ("lora.r", [8, 16]), ("lora.target_modules", [["q_proj", "v_proj"], ["all-linear"]])]
    with pytest.raises(SweepError, match="given twice"):
        parse_grid(["lora.r=8", "lora.r=16"])
    with pytest.raises(SweepError, match="empty value"):
        parse_grid(["lora.r=8,,16"])


def test_a_bad_value_anywhere_in_the_grid_queues_nothing(tiny_model_dir, capsys):
    make_project("p", tiny_model_dir)
    assert main(["sweep", "--project", "p", "lora.r=8,16", "training.learning_rate=1e-4,-1"]) == 2
    err = capsys.readouterr().err
    assert "training.learning_rate" in err and "nothing was queued" in err
    assert main(["sweep", "--project", "p", "lora.rank=8,16"]) == 2
    assert "unknown key lora.rank; known keys: lora.r, " in capsys.readouterr().err
    assert read_queue().entries == []
    assert main(["sweep", "--project", "p", "lora.r=8,16", "training.learning_rate=1e-4,5e-4", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "4 run(s) would be queued for p:"
    assert [line.split() for line in out[1:]] == [["lora.r=8", "training.learning_rate=0.0001"],
                                                  ["lora.r=8", "training.learning_rate=0.0005"],
                                                  ["lora.r=16", "training.learning_rate=0.0001"],
                                                  ["lora.r=16", "training.learning_rate=0.0005"]]
    assert read_queue().entries == []


def test_entries_are_added_checked_moved_and_removed(tiny_model_dir, capsys):
    make_project("p", tiny_model_dir)
    assert main(["queue", "add", "--project", "p", "lora.r=0"]) == 2
    assert "lora.r" in capsys.readouterr().err and read_queue().entries == []
    for r in (4, 8, 12):
        assert main(["queue", "add", "--project", "p", f"lora.r={r}"]) == 0
    assert capsys.readouterr().out.split() == ["1", "2", "3"]
    entry = read_queue().get(2)
    assert entry.overrides == {"lora.r": 8} and entry.settings["lora"]["r"] == 8  # frozen with its change
    assert [e.id for e in move_entry(3, 1)] == [3, 1, 2]
    assert [e.id for e in read_queue().entries] == [3, 1, 2]
    with pytest.raises(QueueError, match="between 1 and 3"):
        move_entry(1, 4)
    remove_entry(1)
    with pytest.raises(QueueError, match="no entry 1"):
        remove_entry(1)
    with pytest.raises(QueueError, match="nothing to retry"):
        retry_entry(3)
    assert [row["status"] for row in queue_json(capsys)["entries"]] == ["pending", "pending"]


# ------------------------------------------------------------------ the runner

def test_a_sweep_trains_both_runs_after_a_queued_run_fails_and_compare_names_the_key(tiny_model_dir, tmp_path,
                                                                                     capsys):
    data = tmp_path / "gone.jsonl"
    shutil.copy(demo_train_file(), data)
    make_project("gone", tiny_model_dir, data=data)
    make_project("p", tiny_model_dir)
    assert main(["queue", "add", "--project", "gone"]) == 0
    data.unlink()  # valid when queued, missing when it runs
    assert main(["sweep", "--project", "p", "lora.r=2,4"]) == 0
    runner = runner_process()
    out, _ = runner.communicate(timeout=300)
    assert runner.returncode == 1, out  # one entry failed; the runner went on
    assert "2 trained, 1 failed or crashed" in out
    rows = by_id(capsys)
    assert [rows[i]["status"] for i in (1, 2, 3)] == ["failed", "done", "done"]
    assert "gone.jsonl" in rows[1]["note"]
    for i, r in ((2, 2), (3, 4)):
        assert summarize("p", rows[i]["run_id"]).status == "finished"
        assert read_run_settings("p", rows[i]["run_id"])["lora"]["r"] == r
    assert main(["runs", "--project", "p", "--compare", "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["differing"] == ["lora.r"]
    assert [(run["settings"]["lora.r"], run["status"]) for run in comparison["runs"]] == [(2, "finished"),
                                                                                        (4, "finished")]
    assert all(run["final_loss"] > 0 and run["tokens_per_s"] > 0 and run["wall_s"] > 0 for run in comparison["runs"])
    assert main(["runs", "--project", "p", "--compare", *(rows[i]["run_id"] for i in (2, 3))]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "lora.r", "final", "loss", "best", "eval", "pass", "rate", "tok/s", "wall",
                                "status"]
    assert table[2].split()[1] == "2" and table[3].split()[1] == "4"


def test_a_killed_runners_entry_is_crashed_and_resumes_where_it_was(tiny_model_dir, capsys):
    make_project("long", tiny_model_dir, max_steps=60, save_steps=5, logging_steps=1)
    assert main(["queue", "add", "--project", "long"]) == 0
    runner = runner_process(start_new_session=True)
    run_id = wait_for(lambda: by_id(capsys)[1]["run_id"])
    wait_for(lambda: summarize("long", run_id).resumable_step is not None)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and its worker, as a reboot would
    runner.communicate(timeout=30)
    row = wait_for(lambda: (r := by_id(capsys)[1])["status"] == "crashed" and r)
    assert row["resumable_step"] >= 5 and "died mid-run" in row["note"]
    assert main(["queue", "retry", "1"]) == 0
    assert f"resumes run {run_id}" in capsys.readouterr().out
    runner = runner_process()
    out, _ = runner.communicate(timeout=300)
    assert runner.returncode == 0, out
    info = summarize("long", run_id)
    assert info.status == "finished" and info.step == 60
    started = [e for e in info.events if isinstance(e, ev.Started)]
    assert len(started) == 2 and started[1].resumed_from == row["resumable_step"]
    assert by_id(capsys)[1]["status"] == "done"


def test_two_runners_refuse_each_other(capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom smolora_engine.overnight.runner import "
                               "runner_lock\nwith runner_lock():\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunnerBusy, match=f"already has a runner \\(pid {holder.pid} since "):
            Runner(say=lambda _line: None).run()
        assert main(["queue", "run", "--detach"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert queue_json(capsys)["runner"].startswith(f"pid {holder.pid} since ")
    finally:
        holder.kill()
        holder.wait()
    with runner_lock():  # and the other way round
        second = runner_process()
        out, _ = second.communicate(timeout=120)
    assert second.returncode == 2 and f"already has a runner (pid {os.getpid()} since " in out


def test_an_entry_for_a_project_that_is_training_waits(tiny_model_dir, capsys):
    make_project("busy", tiny_model_dir)
    make_project("free", tiny_model_dir)
    assert main(["queue", "add", "--project", "busy"]) == 0
    assert main(["queue", "add", "--project", "free"]) == 0
    with training_lock("busy", "someone-else"):
        runner = runner_process()
        rows = wait_for(lambda: (r := by_id(capsys))[2]["status"] == "done" and r)
        assert rows[1]["status"] == "pending" and "waits: the project is training" in rows[1]["note"]
    out, _ = runner.communicate(timeout=300)
    assert runner.returncode == 0, out
    assert "entry 1 waits: project 'busy' is training (pid " in out
    assert by_id(capsys)[1]["status"] == "done"


def test_an_entry_whose_project_was_deleted_fails_with_the_reason(tiny_model_dir, capsys):
    from smolora_engine.projects import delete_project

    make_project("gone", tiny_model_dir)
    assert main(["queue", "add", "--project", "gone"]) == 0
    delete_project("gone")
    runner = runner_process()
    out, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1, out
    row = by_id(capsys)[1]
    assert row["status"] == "failed" and row["note"].startswith("project 'gone' no longer exists")
    assert row["run_id"] is None  # nothing was started
