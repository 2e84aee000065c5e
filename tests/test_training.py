"""The training worker: events, adapter, stop, crash and exact resume, lock, NaN, launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smolora_engine import events as ev
from smolora_engine import precision
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.projects import create_project, load_project, save_project
from smolora_engine.runs import COMPLETE_MARKER, checkpoints, list_runs, run_dir, summarize, training_lock


def make_project(name, model, **training):
    project = create_project(name, model=str(model), data=str(demo_train_file()))
    project.training.grad_accum = 2
    project.training.eval_steps = 0
    for key, value in training.items():
        setattr(project.training, key, value)
    save_project(project)
    return project


def worker(name, *extra):
    return subprocess.Popen([sys.executable, "-m", "smolora_engine.cli", "train", "--project", name, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def only_run(name):
    runs = list_runs(name)
    assert len(runs) == 1
    return runs[0]


def step_losses(folder: Path) -> dict[int, float]:
    return {e.step: e.loss for e in ev.read_events(folder / "events.jsonl") if isinstance(e, ev.Step)}


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def checkpoint_seen(folder: Path, at_least: int):
    def check():
        found = [e.step for e in ev.read_events(folder / "events.jsonl") if isinstance(e, ev.Checkpoint)]
        return found and found[-1] >= at_least
    return check


def test_tiny_run_writes_events_checkpoints_and_adapter(tiny_model_dir, capsys):
    make_project("t", tiny_model_dir, max_steps=4, save_steps=2, eval_steps=2)
    assert main(["train", "--project", "t"]) == 0
    info = only_run("t")
    assert info.status == "finished" and info.step == 4
    kinds = [e.kind for e in info.events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    for kind in ("loading", "memory_estimate", "step", "eval", "checkpoint"):
        assert kind in kinds
    steps = [e for e in info.events if isinstance(e, ev.Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(s.tokens > 0 and s.max_steps == 4 and s.loss > 0 for s in steps)
    assert steps[-1].tokens > steps[0].tokens and steps[-1].eta_s == 0
    frozen = (info.folder / "run.toml").read_text()
    assert "max_steps = 4" in frozen
    # The worker checks memory with the settings screen's estimate, on the run's real longest sample:
    # never more than the worst case `smolora estimate` gives, broken into the same parts.
    from smolora_engine.estimate import GIB, estimate_for, read_facts

    memory = next(e for e in info.events if isinstance(e, ev.MemoryEstimate))
    worst = estimate_for(read_facts(Path(tiny_model_dir)), load_project("t"), "cpu")
    assert 0 < memory.estimate_mb <= worst.total / 2**20
    assert set(memory.detail) == {name for name, _ in worst.parts()} | {"total"}
    assert memory.detail["weights"] == worst.weights / 2**20 and memory.detail["runtime"] * 2**20 < GIB
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), info.folder / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_sigterm_saves_a_checkpoint_and_stops(tiny_model_dir):
    make_project("s", tiny_model_dir, max_steps=100000, save_steps=1000)
    proc = worker("s")
    folder = wait_for(lambda: list_runs("s") and list_runs("s")[0].folder)
    wait_for(lambda: len(step_losses(folder)) >= 3)
    assert summarize("s", folder.name).status == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    info = only_run("s")
    stopped = info.events[-1]
    assert isinstance(stopped, ev.Stopped) and info.status == "stopped"
    assert stopped.checkpoint and Path(stopped.checkpoint).name == f"checkpoint-{stopped.step}"
    assert (Path(stopped.checkpoint) / COMPLETE_MARKER).is_file()
    assert info.resumable and info.resumable_step == stopped.step


def test_killed_run_is_crashed_then_resumes_exactly(tiny_model_dir, capsys):
    settings = dict(max_steps=60, save_steps=10, logging_steps=1)
    make_project("ref", tiny_model_dir, **settings)
    assert main(["train", "--project", "ref"]) == 0
    reference = step_losses(only_run("ref").folder)
    assert len(reference) == 60

    make_project("k", tiny_model_dir, **settings)
    proc = worker("k")
    folder = wait_for(lambda: list_runs("k") and list_runs("k")[0].folder)
    wait_for(checkpoint_seen(folder, 20))
    proc.kill()  # SIGKILL: no chance to write a final event
    proc.wait()
    info = summarize("k", folder.name)
    assert info.status == "crashed" and info.resumable
    k = info.resumable_step
    assert k >= 20
    capsys.readouterr()
    assert main(["runs", "--project", "k"]) == 0
    assert "crashed" in capsys.readouterr().out and f"resumable at step {k}" in info.describe()

    # A checkpoint half-written when the worker died is skipped with a warning.
    half = folder / "checkpoints" / "checkpoint-59"
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    assert main(["train", "--project", "k", "--resume", "latest"]) == 0
    info = summarize("k", folder.name)
    assert info.status == "finished" and info.step == 60
    resumed = [e for e in info.events if isinstance(e, ev.Started)][-1]
    assert resumed.resumed_from == k
    warnings = [e.message for e in info.events if isinstance(e, ev.Warning)]
    assert any("skipped checkpoint-59" in w for w in warnings)
    # Steps after k: the same loss as the uninterrupted run.
    after = [e for e in info.events[info.events.index(resumed):] if isinstance(e, ev.Step)]
    assert [e.step for e in after] == list(range(k + 1, 61))
    for event in after:
        assert abs(event.loss - reference[event.step]) < 1e-5, (event.step, event.loss, reference[event.step])
    assert after[0].tokens > [e for e in info.events if isinstance(e, ev.Step)][0].tokens  # tokens continue


def test_second_training_of_a_project_is_refused_naming_the_pid(tiny_model_dir, capsys):
    make_project("l", tiny_model_dir, max_steps=2)
    with training_lock("l", "someone"):
        assert main(["train", "--project", "l"]) == 2
        err = capsys.readouterr().err
        assert f"already training (pid {os.getpid()}, run someone)" in err
    assert main(["train", "--project", "l"]) == 0


def test_nan_becomes_null_and_a_warning(tiny_model_dir):
    make_project("n", tiny_model_dir, max_steps=4, learning_rate=1e6)
    assert main(["train", "--project", "n"]) == 0
    folder = only_run("n").folder
    warnings = [e.message for e in ev.read_events(folder / "events.jsonl") if isinstance(e, ev.Warning)]
    assert any("became nan" in w and "lower the learning rate" in w for w in warnings)
    raw = (folder / "events.jsonl").read_text()
    assert "NaN" not in raw and "Infinity" not in raw


def test_bad_data_becomes_an_error_event(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": ""}\n')
    make_project("b", tiny_model_dir, max_steps=2)
    project = load_project("b")
    project.data.path = str(bad)
    save_project(project)
    assert main(["train", "--project", "b"]) == 1
    info = only_run("b")
    assert info.status == "failed" and "no usable rows" in info.error


def test_two_process_run_with_torchrun(tiny_model_dir):
    make_project("d", tiny_model_dir, max_steps=3, launcher="torchrun", num_processes=2)
    assert main(["train", "--project", "d"]) == 0
    info = only_run("d")
    assert info.status == "finished" and info.step == 3
    assert len([e for e in info.events if isinstance(e, ev.Started)]) == 1  # rank 0 alone writes events
    assert (info.folder / "adapter" / "adapter_model.safetensors").is_file()


def test_detached_run_survives_its_parent_and_is_listed(tiny_model_dir):
    make_project("bg", tiny_model_dir, max_steps=3)
    code = "from smolora_engine.training import start_detached; print(start_detached('bg'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    run_id = out.strip()
    info = wait_for(lambda: (i := summarize("bg", run_id)).status == "finished" and i, timeout=120)
    assert info.step == 3
    assert "started" in (run_dir("bg", run_id) / "events.jsonl").read_text()


@pytest.mark.slow
def test_real_embedded_model_trains_end_to_end(embedded_model, capsys):
    project = create_project("real", data=str(demo_train_file()))
    project.training.max_steps = 2
    project.training.grad_accum = 2
    project.training.save_steps = 2
    project.training.eval_steps = 0
    save_project(project)
    assert main(["train", "--project", "real"]) == 0
    info = only_run("real")
    assert info.status == "finished"
    steps = [e for e in info.events if isinstance(e, ev.Step)]
    assert len(steps) == 2 and 0 < steps[0].loss < 10 and steps[-1].tokens_per_s > 0
    config = json.loads((info.folder / "adapter" / "adapter_config.json").read_text())
    targets = {t.rsplit(".", 1)[-1] for t in config["target_modules"]}
    assert config["r"] == 16  # the default, all-linear: every linear layer of the decoder
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_frozen_head_loss_matches_plain_cross_entropy_and_its_gradient():
    import torch
    import torch.nn.functional as F

    from smolora_engine.training.loss import frozen_head_cross_entropy_sum

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 300, bias=True).requires_grad_(False)
    target = torch.randint(0, 300, (50,))
    hidden = torch.randn(50, 16, requires_grad=True)
    plain = F.cross_entropy(head(hidden).float(), target, reduction="sum") / 7
    plain.backward()
    expected = hidden.grad.clone()
    hidden.grad = None
    ours = frozen_head_cross_entropy_sum(hidden, head, target, chunk=8) / 7  # chunks that do not divide 50
    ours.backward()
    assert torch.allclose(ours, plain, atol=1e-5)
    assert torch.allclose(hidden.grad, expected, atol=1e-6)
    head.weight.requires_grad_(True)
    with pytest.raises(ValueError):
        frozen_head_cross_entropy_sum(hidden, head, target)


def test_out_of_memory_becomes_advice_not_a_traceback(tiny_model_dir):
    """A real allocator failure (torch's own error) is turned into the settings to lower."""
    import torch

    from smolora_engine.training.worker import explain_failure

    project = make_project("oom", tiny_model_dir, batch_size=4, gradient_checkpointing="off")
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**62, dtype=torch.uint8)
    message, hint = explain_failure(caught.value, project)
    assert message.startswith("out of memory")
    assert "training.gradient_checkpointing = \"on\"" in hint and "training.batch_size (now 4)" in hint
    assert "resume" in hint


def test_estimate_over_available_memory_is_refused_with_advice(tiny_model_dir):
    make_project("huge", tiny_model_dir, batch_size=2_000_000, max_steps=1, packing="off")
    assert main(["train", "--project", "huge"]) == 2
    (run,) = list_runs("huge")
    events = ev.read_events(run.folder / "events.jsonl")
    estimate = next(e for e in events if isinstance(e, ev.MemoryEstimate))
    assert estimate.available_mb and estimate.estimate_mb > estimate.available_mb
    error = events[-1]
    assert isinstance(error, ev.Error) and "lower training.batch_size (now 2000000)" in error.message
    assert not (run.folder / "checkpoints").exists() or not any((run.folder / "checkpoints").iterdir())


def test_stop_kills_a_worker_that_does_not_answer(tiny_model_dir, capsys):
    """A stuck worker (here: SIGSTOPped mid-run) gets SIGKILL after the timeout and shows as crashed."""
    make_project("stuck", tiny_model_dir, max_steps=100000, save_steps=2)
    proc = worker("stuck")
    folder = wait_for(lambda: list_runs("stuck") and list_runs("stuck")[0].folder)
    wait_for(checkpoint_seen(folder, 2))
    os.kill(proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    assert main(["stop", "--project", "stuck", "--timeout", "1"]) == 0
    assert time.monotonic() - started < 60  # it escalated instead of waiting for a step that never ends
    assert proc.wait(timeout=10) == -signal.SIGKILL
    run = only_run("stuck")
    assert run.status == "crashed" and run.resumable and run.resumable_step >= 2
    said = capsys.readouterr().out
    assert "killed if it has not stopped in 1s" in said
    assert f"did not stop within 1s and was killed at step {run.step}; it can be resumed from " \
           f"checkpoint-{run.resumable_step} (step {run.resumable_step})" in said


def test_a_stop_before_the_first_checkpoint_says_there_is_none_and_resume_refuses(tiny_model_dir, capsys):
    make_project("early", tiny_model_dir, max_steps=100000, save_steps=100000, logging_steps=1)
    proc = worker("early")
    folder = wait_for(lambda: list_runs("early") and list_runs("early")[0].folder)
    wait_for(lambda: len(step_losses(folder)) >= 2)
    assert main(["stop", "--project", "early", "--kill"]) == 0
    assert proc.wait(timeout=10) == -signal.SIGKILL
    said = capsys.readouterr().out
    assert "was killed at step" in said and "it has no complete checkpoint, so there is nothing to resume" in said
    assert "can be resumed" not in said
    assert main(["train", "--project", "early", "--resume", folder.name]) == 2
    assert "has no complete checkpoint to resume from" in capsys.readouterr().err


def test_the_stop_grace_follows_the_measured_step_and_save_times():
    from smolora_engine.runs import STOP_GRACE_FLOOR_S, RunTracker

    fast = RunTracker("p", "r")
    for step in range(1, 6):
        fast.feed(ev.Step(step=step, elapsed_s=0.5 * step))
    assert fast.info.step_s == pytest.approx(0.5) and fast.info.stop_grace() == STOP_GRACE_FLOOR_S

    slow = RunTracker("p", "r")  # a bigger model: 90 s a step, 40 s to save a checkpoint
    for step, elapsed in ((10, 900.0), (20, 1800.0), (30, 2700.0)):
        slow.feed(ev.Step(step=step, elapsed_s=elapsed))
    slow.feed(ev.Checkpoint(step=30, save_s=40.0))
    assert slow.info.step_s == pytest.approx(90.0) and slow.info.save_s == 40.0
    assert slow.info.stop_grace() >= 90.0 + 40.0  # the step in progress and its save, with room to spare
    slow.feed(ev.Started(resumed_from=30))  # a resumed segment: its first step is not timed against the old one
    slow.feed(ev.Step(step=31, elapsed_s=10.0))
    assert slow.info.step_s == pytest.approx(90.0)


def test_rotation_keeps_the_newest_and_the_best_checkpoint(tmp_path):
    """The rotation itself, on checkpoint folders made here: deterministic on every CPU."""
    from smolora_engine.training.callback import rotate_checkpoints

    for step in range(1, 9):
        path = tmp_path / "checkpoints" / f"checkpoint-{step}"
        path.mkdir(parents=True)
        (path / COMPLETE_MARKER).write_text("{}")
    half = tmp_path / "checkpoints" / "checkpoint-9"  # incomplete: neither counted nor removed
    half.mkdir()
    rotate_checkpoints(tmp_path, keep=2, best_step=3)
    assert [(step, complete) for step, _path, complete in checkpoints(tmp_path)] == \
        [(3, True), (7, True), (8, True), (9, False)]
    rotate_checkpoints(tmp_path, keep=2, best_step=8)  # the best is among the newest: nothing extra is kept
    assert [step for step, _path, complete in checkpoints(tmp_path) if complete] == [7, 8]


def test_a_run_keeps_its_best_eval_checkpoint_when_older_ones_rotate(tiny_model_dir):
    """End to end: whichever step the best eval falls on (that depends on the CPU's rounding), its
    checkpoint survives the rotation beside the newest two, and the events mark it best."""
    make_project("best", tiny_model_dir, max_steps=8, save_steps=1, eval_steps=1, keep_checkpoints=2,
                 learning_rate=3.0, warmup_ratio=0.0, scheduler="constant")
    project = load_project("best")
    project.data.eval_ratio = 0.1
    save_project(project)
    assert main(["train", "--project", "best"]) == 0
    run = only_run("best")
    evals = [e for e in ev.read_events(run.folder / "events.jsonl") if isinstance(e, ev.Eval)]
    assert [e.step for e in evals] == list(range(1, 9))
    finite = [e for e in evals if e.eval_loss is not None]  # a learning rate of 3 may diverge to NaN
    best = min(finite, key=lambda e: e.eval_loss).step if finite else None
    kept = [step for step, _path, complete in checkpoints(run.folder) if complete]
    assert kept == sorted({7, 8} | ({best} if best else set()))
    assert [e.step for e in evals if e.best][-1:] == ([best] if best else [])


def test_follow_says_a_detached_runs_log_until_it_ends(tiny_model_dir, capsys):
    from smolora_engine.training import start_detached

    make_project("f", tiny_model_dir, max_steps=4, save_steps=2, logging_steps=1)
    run_id = start_detached("f")
    assert main(["runs", "--project", "f", "--follow"]) == 0
    out = capsys.readouterr().out.splitlines()
    chosen = precision.cached_probe("cpu").chosen  # the probe ran before `started`
    assert out[0].startswith(f"started on cpu ({chosen})")
    assert f"precision: {chosen} (a probe on this cpu" in "\n".join(out)
    assert "packing: on, 2 samples per packed row x 1 pass per step" in "\n".join(out)
    assert any(line.startswith("gradient checkpointing: off (auto: the step needs about") for line in out)
    assert any(line.startswith("memory needed: about ") for line in out)
    assert [line.split()[1] for line in out if line.startswith("step ")] == ["1/4", "2/4", "3/4", "4/4"]
    assert "checkpoint at step 2" in out and out[-2].startswith("finished at step 4; adapter in ")
    assert out[-1].startswith(f"run {run_id}: finished, step 4/4, loss ")
    # The worker's own log says the same lines, not the libraries' progress bars or log dicts.
    log = (run_dir("f", run_id) / "worker.log").read_text()
    assert "step 4/4  ·  loss " in log
    assert "{'loss'" not in log and "it/s]" not in log and "examples/s]" not in log


def test_follow_ends_when_the_worker_dies_and_the_cli_says_so(tiny_model_dir, capsys):
    import threading

    from smolora_engine.runs import follow_run
    from smolora_engine.training import start_detached

    make_project("fc", tiny_model_dir, max_steps=100000, logging_steps=1)
    run_id = start_detached("fc")
    said, ended = [], {}
    thread = threading.Thread(target=lambda: ended.update(info=follow_run("fc", run_id, lambda *line: said.append(line),
                                                                          poll_s=0.1)))
    thread.start()
    wait_for(lambda: sum(text.startswith("step ") for _level, text in said) >= 2)
    os.kill(list_runs("fc")[0].pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert not thread.is_alive() and ended["info"].status == "crashed"
    assert main(["runs", "--project", "fc", "--follow"]) == 1  # the history again, then the verdict
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"run {run_id}: crashed")
    assert main(["runs", "--project", "fc", "--follow", "--run", "nope"]) == 2
