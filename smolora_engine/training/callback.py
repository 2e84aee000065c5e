"""The trainer's callback: step, eval, samples and checkpoint events, stops (asked for or early), rotation."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import events as ev
from ..fsutil import atomic_write_text, give_normal_modes
from ..project import Project
from ..runs import COMPLETE_MARKER, checkpoints
from .emitter import Emitter
from .memory import memory_in_use_mb
from .samples import BestTracker, EvalSampler


@dataclass
class RunState:
    """What the callback carries across log events (restored from a checkpoint on resume)."""

    tokens_before: int = 0  # tokens of earlier segments of a resumed run
    elapsed_before: float = 0.0
    train_before: float = 0.0  # seconds earlier segments spent in training steps (no evals, answers, saves)
    best_eval: float | None = None  # the lowest eval loss so far
    best_step: int | None = None  # the best checkpoint's step, by the run's metric (always kept)
    samples_s: float = 0.0  # seconds spent answering eval prompts in earlier segments
    pass_rate: float | None = None  # the last eval's pass rate, and the best
    best_pass_rate: float | None = None
    tracker: BestTracker | None = None  # the run's metric (None: no eval to judge by)
    stop_reason: str = ""  # why training ended early, else ""
    resumed: bool = False

    def marker(self) -> dict:
        """What a checkpoint records of this state, for a resume."""
        return {"best_eval": self.best_eval, "best_step": self.best_step, "samples_s": self.samples_s,
                "pass_rate": self.pass_rate, "best_pass_rate": self.best_pass_rate,
                "tracker": self.tracker.to_dict() if self.tracker else None}

    @classmethod
    def from_marker(cls, saved: dict) -> RunState:
        # (a checkpoint from before train_s was kept: its wall time, the best there is)
        elapsed = saved.get("elapsed_s", 0.0)
        return cls(saved.get("tokens", 0), elapsed, saved.get("train_s", elapsed), saved.get("best_eval"),
                   saved.get("best_step"), saved.get("samples_s", 0.0), saved.get("pass_rate"),
                   saved.get("best_pass_rate"), resumed=True)

    def restore_tracker(self, tracker: BestTracker, saved: dict | None) -> None:
        if saved and saved.get("metric") == tracker.metric:
            tracker.best, tracker.best_step = saved.get("best"), saved.get("best_step")
            tracker.since_best, tracker.best_tiebreak = saved.get("since_best", 0), saved.get("best_tiebreak")
        self.tracker = tracker


def make_callback(emit: Emitter, folder: Path, project: Project, trainer_ref: dict, state: RunState,
                  stop_flag: threading.Event, device: str, sampler: EvalSampler | None = None):
    from transformers import TrainerCallback

    class SmoloraCallback(TrainerCallback):
        def __init__(self):
            self.segment_start = time.monotonic()
            # (time, step, tokens, seconds in steps): tokens/s over the window counts the steps' own time,
            # not the evals, the eval prompts' answers and the checkpoints between them
            self.window: list[tuple[float, int, int, float]] = []
            self.train_s = 0.0  # this segment's seconds in steps
            self.step_started: float | None = None
            self.nan_warned = False
            self.last_loss: float | None = None
            self.pending: ev.Samples | None = None  # answers whose pass rate waits for this step's eval loss

        def tokens(self) -> int:
            trainer = trainer_ref["trainer"]  # every process sees about the same number of tokens
            return state.tokens_before + trainer.tokens_seen * trainer.accelerator.num_processes

        def elapsed(self) -> float:
            return state.elapsed_before + time.monotonic() - self.segment_start

        def trained_s(self) -> float:
            return state.train_before + self.train_s

        def samples_s(self) -> float:
            return state.samples_s + (sampler.seconds if sampler else 0.0)

        def on_train_begin(self, args, tstate, control, **kwargs):
            if sampler is not None and not state.resumed:  # a resumed run answered as the base already
                emit(sampler.answer(trainer_ref["trainer"].model, tstate.global_step, base=True))
            self.window = [(time.monotonic(), tstate.global_step, self.tokens(), self.trained_s())]

        def judge(self, step: int, value: float | None, control, tiebreak: float | None = None) -> bool:
            """One eval's value of the run's metric: the best is saved (and kept); no progress may stop."""
            tracker = state.tracker
            best = tracker.update(step, value, tiebreak)
            if best:
                state.best_step = step
                control.should_save = True
            if tracker.should_stop and not control.should_training_stop:
                state.stop_reason = tracker.reason()
                emit(ev.Log(message=state.stop_reason))
                control.should_training_stop = True
                control.should_save = True
            return best

        def on_step_begin(self, args, tstate, control, **kwargs):
            self.step_started = time.monotonic()

        def on_step_end(self, args, tstate, control, **kwargs):
            if self.step_started is not None:
                self.train_s += time.monotonic() - self.step_started
                self.step_started = None
            step = emit.step = tstate.global_step
            if stop_flag.is_set():
                control.should_save = True
                control.should_training_stop = True
            eval_steps = project.training.eval_steps
            due = (eval_steps > 0 and step % eval_steps == 0) or step >= tstate.max_steps
            if sampler is not None and due and not stop_flag.is_set():
                samples = sampler.answer(trainer_ref["trainer"].model, step)
                state.pass_rate = samples.pass_rate
                if samples.pass_rate is not None and (state.best_pass_rate is None
                                                      or samples.pass_rate > state.best_pass_rate):
                    state.best_pass_rate = samples.pass_rate
                judged = state.tracker is not None and state.tracker.metric == "pass_rate"
                if judged and control.should_evaluate:  # judged with this step's eval loss to break a tie
                    self.pending = samples
                else:
                    if judged:
                        samples.best = self.judge(step, samples.pass_rate, control)
                    emit(samples)
            self.step_ended = time.monotonic()  # a checkpoint's save time counts from here

        def on_log(self, args, tstate, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            now, step, tokens, trained = time.monotonic(), tstate.global_step, self.tokens(), self.trained_s()
            self.window.append((now, step, tokens, trained))
            self.window = self.window[-20:]
            t0, s0, k0, r0 = self.window[0]
            rate = (tokens - k0) / (trained - r0) if trained > r0 and tokens > k0 else None
            step_s = (now - t0) / (step - s0) if step > s0 else None  # the ETA: wall time, evals included
            eta = step_s * (tstate.max_steps - step) if step_s is not None else None
            loss = self.last_loss = logs.get("loss")
            emit(ev.Step(step=step, max_steps=tstate.max_steps, epoch=logs.get("epoch", tstate.epoch), loss=loss,
                         lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"), tokens=tokens,
                         tokens_per_s=rate, elapsed_s=self.elapsed(), train_s=round(trained, 3), eta_s=eta,
                         memory_mb=memory_in_use_mb(device)))
            for name, value in (("loss", loss), ("grad_norm", logs.get("grad_norm"))):
                if isinstance(value, float) and not math.isfinite(value) and not self.nan_warned:
                    self.nan_warned = True
                    emit(ev.Warning(message=(
                        f"{name} became {value} at step {step}: lower the learning rate "
                        f"(training.learning_rate = {project.training.learning_rate:g}), or check the data "
                        "for broken rows (smolora data check)")))

        def on_evaluate(self, args, tstate, control, metrics=None, **kwargs):
            value = (metrics or {}).get("eval_loss")
            best = value is not None and math.isfinite(value) and (state.best_eval is None or value < state.best_eval)
            if best:
                state.best_eval = value
            emit(ev.Eval(step=tstate.global_step, eval_loss=value, best=best))
            if state.tracker is not None and state.tracker.metric == "eval_loss":
                self.judge(tstate.global_step, value, control)
            pending, self.pending = self.pending, None
            if pending is not None and pending.step == tstate.global_step:
                finite = value if value is not None and math.isfinite(value) else None
                pending.best = self.judge(pending.step, pending.pass_rate, control, tiebreak=finite)
                emit(pending)

        def on_train_end(self, args, tstate, control, **kwargs):
            if self.pending is not None:  # answers whose eval never came (a stop in between): not lost
                emit(self.pending)
                self.pending = None

        def on_save(self, args, tstate, control, **kwargs):
            step = tstate.global_step
            path = folder / "checkpoints" / f"checkpoint-{step}"
            if not path.is_dir() or not tstate.is_world_process_zero:
                return
            import json

            give_normal_modes(path)
            atomic_write_text(path / COMPLETE_MARKER, json.dumps({
                "step": step, "tokens": self.tokens(), "elapsed_s": self.elapsed(), **state.marker(),
                "train_s": self.trained_s(),
                "samples_s": self.samples_s()}))
            save_s = time.monotonic() - getattr(self, "step_ended", time.monotonic())
            emit(ev.Checkpoint(step=step, path=str(path), save_s=round(save_s, 3)))
            rotate_checkpoints(folder, project.training.keep_checkpoints, state.best_step)

    return SmoloraCallback()


def rotate_checkpoints(folder: Path, keep: int, best_step: int | None) -> None:
    import shutil

    complete = [(step, path) for step, path, ok in checkpoints(folder) if ok]
    doomed = complete[:-keep] if keep > 0 else []
    for step, path in doomed:
        if step != best_step:
            shutil.rmtree(path, ignore_errors=True)
