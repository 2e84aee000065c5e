"""training.report_to: TensorBoard event files written beside events.jsonl, read back with TensorBoard's reader."""

from __future__ import annotations

import importlib.util

import pytest

from smolora_engine import events as ev
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.project_fields import set_value
from smolora_engine.projects import create_project, save_project
from smolora_engine.runs import list_runs


def project_reporting_to(name, model, report_to):
    project = create_project(name, model=str(model), data=str(demo_train_file()))
    project.training.max_steps, project.training.grad_accum = 3, 1
    project.training.eval_steps, project.training.save_steps = 0, 3
    project.eval.samples = 0
    project.training.report_to = report_to
    save_project(project)
    return project


def test_tensorboard_gets_the_runs_figures(tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    project_reporting_to("tb", tiny_model_dir, "tensorboard")
    assert main(["train", "--project", "tb"]) == 0
    run = list_runs("tb")[0]
    steps = [e for e in run.events if isinstance(e, ev.Step)]
    evals = [e for e in run.events if isinstance(e, ev.Eval)]
    reader = EventAccumulator(str(run.folder / "tensorboard"))
    reader.Reload()
    tags = reader.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "train/tokens_per_s", "eval/loss"} <= set(tags)
    logged = [(s.step, s.value) for s in reader.Scalars("train/loss")]
    assert [step for step, _ in logged] == [e.step for e in steps] == [1, 2, 3]
    assert logged == pytest.approx([(e.step, e.loss) for e in steps], rel=1e-6)
    assert [(s.step, s.value) for s in reader.Scalars("eval/loss")] == pytest.approx(
        [(e.step, e.eval_loss) for e in evals], rel=1e-6)
    settings = reader.Tensors("settings/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "[lora]" in settings and "report_to = \"tensorboard\"" in settings


@pytest.mark.skipif(importlib.util.find_spec("trackio") is not None, reason="trackio is installed here")
def test_a_missing_tracker_says_how_to_install_it(tiny_model_dir, capsys):
    project = project_reporting_to("tk", tiny_model_dir, "none")
    _, problems = set_value(project, "training.report_to", "trackio")
    assert [p.message for p in problems if p.warning] == [
        "training.report_to = 'trackio' needs the trackio package, which is not installed: pip install "
        "'smolora-tui[trackio]' (into the environment smolora runs in), or set training.report_to = \"none\""]
    assert main(["config", "tk", "training.report_to=trackio"]) == 0  # saved, with the warning
    assert "needs the trackio package" in capsys.readouterr().err
    assert main(["train", "--project", "tk"]) == 2
    run = list_runs("tk")[0]
    assert run.status == "failed" and "pip install 'smolora-tui[trackio]'" in run.error
    assert not any(isinstance(e, ev.Step) for e in run.events)  # refused before any training
    assert "Traceback" not in capsys.readouterr().err
