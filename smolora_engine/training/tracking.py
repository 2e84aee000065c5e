"""`training.report_to`: the run's figures also go to TensorBoard or trackio, in the run folder.

events.jsonl stays the source of truth: a tracker gets the same events, after they are
written, and logs their figures under the same names the dashboard uses. A tracker that
fails mid-run is dropped with one warning; the run goes on.

    runs/<id>/tensorboard/   event files (`tensorboard --logdir runs/<id>/tensorboard`)
    runs/<id>/trackio/       trackio's local database (`TRACKIO_DIR=runs/<id>/trackio trackio show`)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .. import events as ev
from ..project import Project
from ..project_load import tracker_missing
from .errors import TrainingRefused


def scalars(event: ev.Event) -> tuple[int, dict[str, float]] | None:
    """(step, {name: value}) of the figures an event carries, or None when it carries none."""
    if isinstance(event, ev.Step):
        values = {"train/loss": event.loss, "train/learning_rate": event.lr, "train/grad_norm": event.grad_norm,
                  "train/tokens_per_s": event.tokens_per_s, "train/memory_mb": event.memory_mb,
                  "train/tokens": float(event.tokens) if event.tokens else None}
        return event.step, {k: float(v) for k, v in values.items() if v is not None}
    if isinstance(event, ev.Eval) and event.eval_loss is not None:
        return event.step, {"eval/loss": float(event.eval_loss)}
    if isinstance(event, ev.Samples) and event.pass_rate is not None:
        return event.step, {"eval/base_pass_rate" if event.base else "eval/pass_rate": float(event.pass_rate)}
    return None


class TensorBoardTracker:
    def __init__(self, folder: Path, project: Project, run_id: str, resuming: bool):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
        if not resuming:
            self.writer.add_text("settings", "```toml\n" + project.to_toml() + "\n```", 0)

    def __call__(self, event: ev.Event) -> None:
        if found := scalars(event):
            step, values = found
            for name, value in values.items():
                self.writer.add_scalar(name, value, step, walltime=event.time)
        if event.kind in ev.FINAL_KINDS:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TrackioTracker:
    def __init__(self, folder: Path, project: Project, run_id: str, resuming: bool):
        os.environ["TRACKIO_DIR"] = str(folder / "trackio")  # read when trackio is first imported
        import trackio

        from ..compare import flatten

        self.trackio = trackio
        trackio.init(project=project.name, name=run_id, config=flatten(project.to_dict()),
                     resume="allow" if resuming else "never", embed=False)

    def __call__(self, event: ev.Event) -> None:
        if found := scalars(event):
            step, values = found
            self.trackio.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()


TRACKERS: dict[str, Callable[..., Any]] = {"tensorboard": TensorBoardTracker, "trackio": TrackioTracker}


def open_tracker(project: Project, folder: Path, run_id: str, resuming: bool):
    """The run's tracker, or None for report_to = none; TrainingRefused saying how to install a missing one."""
    kind = project.training.report_to
    if kind == "none":
        return None
    if missing := tracker_missing(kind):
        raise TrainingRefused(missing)
    return TRACKERS[kind](folder, project, run_id, resuming)
