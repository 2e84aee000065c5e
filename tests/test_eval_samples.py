"""What the model answers while it trains: samples events, early stopping, keep_best, notify, `smolora eval`."""

from __future__ import annotations

import json
import time

import pytest
from safetensors.torch import load_file

from smolora_engine import events as ev
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.projects import create_project, save_project
from smolora_engine.runs import list_runs
from smolora_engine.training.notify import outcome_env, run_notify
from smolora_engine.training.samples import BestTracker


def make_project(name, model, **settings):
    project = create_project(name, model=str(model), data=str(demo_train_file()))
    project.training.grad_accum = 1
    project.training.max_length = 128
    project.eval.max_new_tokens = 6
    for key, value in settings.items():
        section, field = key.split("__")
        setattr(getattr(project, section), field, value)
    save_project(project)
    return project


def the_run(name):
    (run,) = list_runs(name)
    return run


def of_kind(run, cls):
    return [e for e in run.events if isinstance(e, cls)]


def test_samples_are_answered_by_the_base_then_at_each_eval(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is 2 plus 2?", "reference": "4", "checks": ["max_words:50"]})
                       + "\n" + json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    make_project("s", tiny_model_dir, training__max_steps=5, training__eval_steps=2, training__save_steps=2,
                 eval__prompts=str(prompts), eval__checks=["not_contains:@@@"])
    assert main(["train", "--project", "s"]) == 0
    run = the_run("s")
    samples = of_kind(run, ev.Samples)
    # the base before step 1, each eval (steps 2 and 4), and the last step
    assert [(s.step, s.base) for s in samples] == [(0, True), (2, False), (4, False), (5, False)]
    for event in samples:
        assert [a["prompt"] for a in event.answers] == ["What is 2 plus 2?", "Hi"]
        first, second = event.answers
        assert first["reference"] == "4" and f"{prompts}:1" == first["where"]
        assert [c["check"] for c in first["checks"]] == ["not_contains:@@@", "max_words:50"]
        assert [c["check"] for c in second["checks"]] == ["not_contains:@@@"]
        assert event.checked == 2 and event.pass_rate == 1.0 and event.seconds >= 0 and not event.cut_short
    (finished,) = of_kind(run, ev.Finished)
    assert finished.pass_rate == 1.0 and finished.best_pass_rate == 1.0
    assert 0 < finished.details["samples_share"] < 1 and finished.details["metric"] == "pass_rate"
    assert run.pass_rate == 1.0


def test_a_bad_prompts_file_is_reported_with_its_line_and_the_run_goes_on(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "fine"}) + "\n" + '{"prompt": "half\n')
    make_project("b", tiny_model_dir, training__max_steps=2, training__eval_steps=1, eval__prompts=str(prompts))
    assert main(["train", "--project", "b"]) == 0
    run = the_run("b")
    assert run.status == "finished" and not of_kind(run, ev.Samples)
    (warning,) = [w for w in of_kind(run, ev.Warning) if "eval.prompts" in w.message]
    assert f"{prompts}:2" in warning.message and "without eval samples" in warning.message


def prompts_file(folder):
    path = folder / "prompts.txt"
    path.write_text("What is 2 plus 2?\nName a colour.\n")
    return path


def test_early_stopping_on_a_plateau_keeps_the_best_adapter_and_notifies(tiny_model_dir, tmp_path):
    # A check every answer passes: the pass rate is 100 % at every eval, on every CPU, so the first eval
    # stays the best and the run stops after `patience` evals without improvement. (No eval split: no
    # eval loss to break the tie between equal pass rates.)
    out = tmp_path / "notified.json"
    command = f"python3 -c \"import json, os; json.dump(dict(os.environ), open('{out}', 'w'))\""
    make_project("p", tiny_model_dir, training__max_steps=20, training__eval_steps=2, training__save_steps=50,
                 training__learning_rate=5e-2, training__early_stopping_patience=2,
                 eval__checks=["max_words:1000"], eval__samples=2, notify__command=command, data__eval_ratio=0.0,
                 eval__prompts=str(prompts_file(tmp_path)))
    assert main(["train", "--project", "p"]) == 0
    run = the_run("p")
    (finished,) = of_kind(run, ev.Finished)
    assert run.status == "finished" and finished.step == 6
    assert "early stopping" in finished.reason and "best 100% at step 2" in finished.reason
    assert [s.best for s in of_kind(run, ev.Samples) if not s.base] == [True, False, False]
    # keep_best: the adapter holds checkpoint-2's weights (saved because it was the best), not step 6's
    assert finished.adapter_step == 2
    saved = {step: load_file(run.folder / "checkpoints" / f"checkpoint-{step}" / "adapter_model.safetensors")
             for step in (2, 6)}
    adapter = load_file(run.folder / "adapter" / "adapter_model.safetensors")
    assert all((adapter[k] == saved[2][k]).all() for k in adapter)
    assert any((adapter[k] != saved[6][k]).any() for k in adapter)
    env = json.loads(out.read_text())
    assert env["SMOLORA_STATUS"] == "finished" and env["SMOLORA_RUN_ID"] == run.run_id
    assert env["SMOLORA_PROJECT"] == "p" and env["SMOLORA_STEP"] == "6" and env["SMOLORA_PASS_RATE"] == "1"
    assert float(env["SMOLORA_LOSS"]) > 0 and "early stopping" in env["SMOLORA_REASON"]
    assert any("notify.command ran" in e.message for e in of_kind(the_run("p"), ev.Log))


def test_the_eval_loss_tracker_wants_lower_and_counts_evals_without_progress():
    tracker = BestTracker("eval_loss", patience=2)
    assert tracker.update(10, 2.0) and not tracker.update(20, 2.0) and not tracker.should_stop
    assert tracker.update(30, 1.5) and tracker.best_step == 30
    assert not tracker.update(40, None) and not tracker.update(50, 1.6) and tracker.should_stop
    assert "eval_loss did not improve for 2" in tracker.reason() and "at step 30" in tracker.reason()
    rates = BestTracker("pass_rate", patience=2)
    assert rates.update(1, 0.25, 3.0) and rates.update(2, 0.5, 2.0) and not rates.update(3, 0.5, 2.5)
    # an equal pass rate with a lower eval loss becomes the best checkpoint, but is not progress
    assert rates.update(4, 0.5, 1.0) and rates.best_step == 4 and rates.should_stop


def test_notify_outcomes_a_slow_command_is_cut_off_and_a_failing_one_is_logged(tmp_path):
    said = []
    started = time.monotonic()
    assert not run_notify("sleep 30", {}, 1.0, said.append)
    assert time.monotonic() - started < 15 and "did not finish within 1 s" in said[-1].message
    assert not run_notify("echo broken pipe >&2; exit 3", {}, 10.0, said.append)
    assert isinstance(said[-1], ev.Warning) and "exit 3" in said[-1].message and "broken pipe" in said[-1].message
    assert run_notify(f"echo $SMOLORA_STATUS > {tmp_path / 'x'}", {"SMOLORA_STATUS": "stopped"}, 10, said.append)
    assert (tmp_path / "x").read_text().strip() == "stopped"
    env = outcome_env("p", "r1", tmp_path, ev.Error(message="out of memory"))
    assert env["SMOLORA_STATUS"] == "failed" and env["SMOLORA_REASON"] == "out of memory"
    assert outcome_env("p", "r1", tmp_path, None)["SMOLORA_STATUS"] == "failed"


def test_smolora_eval_scores_base_and_adapter_as_json(trained, tmp_path, capsys):
    from smolora_engine.projects import load_project

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "checks": ["max_words:200"]}) + "\n"
                               for p in ("Write a haiku about the sea.", "List three prime numbers.")))
    project = load_project(trained)
    project.eval.prompts, project.eval.max_new_tokens = str(prompts), 8
    project.eval.checks = ["not_contains:@@@@"]
    save_project(project)
    capsys.readouterr()
    assert main(["eval", "--project", trained, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for side in ("base", "adapter"):
        assert result[side]["pass_rate"] == 1.0 and result[side]["checked"] == 2
        assert [a["prompt"] for a in result[side]["answers"]] == ["Write a haiku about the sea.",
                                                                  "List three prime numbers."]
    # the adapter changes what the model says (a large learning rate in the fixture)
    assert [a["answer"] for a in result["base"]["answers"]] != [a["answer"] for a in result["adapter"]["answers"]]
    assert main(["eval", "--project", trained, "--checkpoint", "4", "--limit", "1"]) == 0
    table = capsys.readouterr().out
    assert "checkpoint-4" in table and "base:    100% (1/1)" in table
    prompts.write_text('{"prompt": "ok"}\n{"prompt": 3, "checks": ["nope"]}\n')
    assert main(["eval", "--project", trained]) == 2
    assert f"{prompts}:2" in capsys.readouterr().err


@pytest.mark.parametrize("value", [["contains:x", "regex:(("], "json"])
def test_smolora_config_refuses_bad_checks_naming_the_field(tiny_model_dir, value, capsys):
    make_project("c", tiny_model_dir)
    assert main(["config", "c", f"eval.checks={json.dumps(value)}"]) == 2
    assert "eval.checks" in capsys.readouterr().err


def test_answers_are_batched_greedy_and_cut_off_by_the_time_limit(bpe_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from smolora_engine.data.chat_format import ChatFormat
    from smolora_engine.evaluation.answers import generate_answers
    from smolora_engine.evaluation.prompts import EvalPrompt

    # (the BPE model's sharp logits: padding's last-digit float differences cannot flip a greedy choice)
    model = AutoModelForCausalLM.from_pretrained(bpe_model)
    tokenizer = AutoTokenizer.from_pretrained(bpe_model)
    prompts = [EvalPrompt("x", "pair", user=u) for u in ("Hi", "A much longer prompt than the first", "Yo")]
    model.train()
    batched = generate_answers(model, tokenizer, prompts, ChatFormat(), max_new_tokens=5)
    one_by_one = generate_answers(model, tokenizer, prompts, ChatFormat(), max_new_tokens=5, batch_size=1)
    assert model.training  # put back as it was
    assert batched.texts == one_by_one.texts and not batched.cut_short  # left padding changes nothing
    out_of_time = generate_answers(model, tokenizer, prompts, ChatFormat(), max_new_tokens=5, time_limit_s=1e-9)
    assert out_of_time.cut_short and out_of_time.texts == ["", "", ""]
