"""The dashboard's tokens/s: the steps' own time, not the evals, answers and saves between them; the ETA
still counts them (it is wall time to the end)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from smolora_engine import events as ev
from smolora_engine.project import Project
from smolora_engine.training import callback as callback_module
from smolora_engine.training.callback import RunState, make_callback
from smolora_engine.training.emitter import Emitter


class Clock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_tokens_per_s_leaves_out_the_time_between_steps(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(callback_module, "time", clock)
    trainer = SimpleNamespace(tokens_seen=0, accelerator=SimpleNamespace(num_processes=1))
    emit = Emitter(tmp_path / "events.jsonl")
    callback = make_callback(emit, tmp_path, Project(name="rate"), {"trainer": trainer}, RunState(),
                             threading.Event(), "cpu")
    state = SimpleNamespace(global_step=0, max_steps=4, epoch=0.0, is_world_process_zero=True)
    control = SimpleNamespace(should_save=False, should_training_stop=False, should_evaluate=False)
    callback.on_train_begin(None, state, control)
    for step in range(1, 5):
        callback.on_step_begin(None, state, control)
        clock.now += 2.0  # the step: 1,000 tokens in 2 s
        trainer.tokens_seen += 1000
        state.global_step = step
        callback.on_step_end(None, state, control)
        clock.now += 0.1
        callback.on_log(None, state, control, logs={"loss": 1.0, "epoch": step / 4})
        if step == 2:
            clock.now += 30.0  # an eval, the eval prompts' answers and a checkpoint
    emit.close()
    steps = [e for e in ev.read_events(tmp_path / "events.jsonl") if isinstance(e, ev.Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    # 1,000 tokens per 2 s of steps (the 0.1 s of logging after each step is outside them too)
    assert all(abs(s.tokens_per_s - 500.0) < 1e-6 for s in steps), [s.tokens_per_s for s in steps]
    assert [s.train_s for s in steps] == [2.0, 4.0, 6.0, 8.0]  # what the compare table divides by
    # the ETA is wall time: after step 3, one more step at the window's pace, the eval's 30 s included
    assert abs(steps[2].eta_s - (3 * 2.1 + 30.0) / 3) < 1e-6


def test_the_compare_table_divides_by_the_steps_time_and_older_runs_by_the_wall(tmp_path):
    from smolora_engine.compare import run_figures
    from smolora_engine.runs import RunInfo

    def figures(**step):
        info = RunInfo("p", "r", tmp_path)
        info.events = [ev.Step(step=10, max_steps=10, loss=1.0, tokens=6000, elapsed_s=30.0, **step)]
        return run_figures(info, {}).tokens_per_s

    assert figures(train_s=12.0) == 500.0  # 18 of the 30 s were evals and answers
    assert figures() == 200.0  # a run from before train_s was kept: its wall time
