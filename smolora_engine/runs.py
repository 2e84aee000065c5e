"""Training runs on disk: the run folder is the source of truth.

    runs/<id>/run.toml        the frozen settings of the run
    runs/<id>/events.jsonl    every event, appended by the worker
    runs/<id>/worker.log      the worker's own stdout/stderr
    runs/<id>/checkpoints/checkpoint-<step>/   resumable checkpoints (complete ones hold COMPLETE_MARKER)
    runs/<id>/adapter/        the final LoRA adapter

Status comes from the events plus liveness: a run whose worker is gone (pid
checked against its start time) without a final event is `crashed`. How events read
as text is run_text.py. Light: the TUI imports this (psutil and the standard library only).
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import paths
from .events import Checkpoint, Eval, Event, EventTail, Finished, Heartbeat, Samples, Started, Step, Stopped, \
    read_events
from .events import Error as ErrorEvent
from .locks import holding, lock_holder
from .run_text import describe_event

COMPLETE_MARKER = "smolora-complete.json"
HEARTBEAT_S = 5.0
STOP_GRACE_FLOOR_S = 60.0
DEFAULT_SAVE_S = 10.0
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def new_run_id(project: str) -> str:
    """`YYYYMMDD-HHMMSS-PID`, made unique in the project: a second run started in the same second by
    the same process gets `-2`, `-3`, ... rather than the first run's folder."""
    base = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"
    run_id, n = base, 1
    while run_dir(project, run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def run_dir(project: str, run_id: str) -> Path:
    return paths.runs_dir(project) / run_id


def list_run_ids(project: str) -> list[str]:
    folder = paths.runs_dir(project)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "run.toml").exists())


def checkpoints(folder: Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) of every checkpoint folder, oldest first."""
    root = folder / "checkpoints"
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        match = _CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            out.append((int(match.group(1)), child, (child / COMPLETE_MARKER).is_file()))
    return sorted(out)


def latest_complete_checkpoint(folder: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint, and the incomplete ones newer than it (to warn about)."""
    skipped = []
    for step, path, complete in reversed(checkpoints(folder)):
        if complete:
            return path, skipped
        skipped.append(path)
    return None, skipped


def process_alive(pid: int, started: float | None) -> bool:
    """Is `pid` still the process that wrote `started` as its start time (not a reused pid)?"""
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_start_time(pid: int | None = None) -> float | None:
    try:
        return psutil.Process(pid or os.getpid()).create_time()
    except psutil.Error:
        return None


@dataclass
class RunInfo:
    project: str
    run_id: str
    folder: Path
    status: str = "unknown"  # running | finished | stopped | crashed | failed | starting
    pid: int = 0
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    pass_rate: float | None = None  # the last eval's pass rate of the eval checks (None: no checks, or none yet)
    last_heartbeat: float | None = None
    resumable_step: int | None = None
    adapter: str | None = None
    error: str = ""
    started: float | None = None
    step_s: float | None = None  # the slowest recent step, measured (seconds)
    save_s: float | None = None  # the slowest checkpoint save, measured (seconds)
    events: list[Event] = field(default_factory=list, repr=False)

    def stop_grace(self) -> float:
        """Seconds a stop waits for the step in progress and its checkpoint before it kills the worker.

        From the run's own measured step and save times, with room to spare and a floor: a model
        whose steps take minutes is given minutes. Before the first step is measured: the floor,
        plus a default for the save.
        """
        step = self.step_s or 0.0
        save = self.save_s if self.save_s is not None else DEFAULT_SAVE_S
        return max(STOP_GRACE_FLOOR_S, 1.5 * step + 2.0 * save + 15.0)

    def why_not_resumable(self, start: str) -> str | None:
        """Why this run cannot be resumed (`start` says how to start a new one), or None when it can."""
        if self.status in ("running", "starting"):
            return f"run {self.run_id} is still {self.status}: nothing to resume"
        if self.status == "finished":
            return f"run {self.run_id} finished at step {self.step}: nothing to resume; {start}"
        if self.resumable_step is None:
            return (f"run {self.run_id} ({self.status} at step {self.step}) has no complete checkpoint to "
                    f"resume from; {start}")
        return None

    @property
    def resumable(self) -> bool:
        return self.resumable_step is not None and self.status in ("crashed", "stopped", "failed")

    def describe(self) -> str:
        text = f"{self.status}, step {self.step}/{self.max_steps or '?'}"
        if self.loss is not None:
            text += f", loss {self.loss:.4f}"
        if self.pass_rate is not None:
            text += f", pass rate {self.pass_rate:.0%}"
        if self.resumable:
            text += f", resumable at step {self.resumable_step}"
        return text

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "pid": self.pid, "step": self.step,
                "max_steps": self.max_steps, "loss": self.loss, "eval_loss": self.eval_loss,
                "pass_rate": self.pass_rate,
                "resumable_step": self.resumable_step, "adapter": self.adapter, "error": self.error,
                "folder": str(self.folder), "last_heartbeat": self.last_heartbeat}


class RunTracker:
    """A run's status built up one event at a time (the TUI follows a growing events.jsonl with it)."""

    def __init__(self, project: str, run_id: str):
        self.info = RunInfo(project, run_id, run_dir(project, run_id))
        self._final: Event | None = None
        self._pid_start: float | None = None
        self._last_step: tuple[int, float] | None = None  # (step, elapsed_s) of the last step event
        self._step_times: list[float] = []
        self.count = 0

    def feed(self, event: Event) -> None:
        info = self.info
        self.count += 1
        if isinstance(event, Started):
            info.pid, self._pid_start, info.started = event.pid, event.pid_start, event.time
            self._final, self._last_step = None, None  # a resume starts a new segment of the same run
        elif isinstance(event, Step):
            info.step, info.max_steps, info.loss = event.step, event.max_steps, event.loss
            self._time_step(event)
        elif isinstance(event, Checkpoint):
            if event.save_s is not None:
                info.save_s = max(info.save_s or 0.0, event.save_s)
        elif isinstance(event, Eval):
            info.eval_loss = event.eval_loss
        elif isinstance(event, Samples):
            if not event.base:
                info.pass_rate = event.pass_rate
        elif isinstance(event, Heartbeat):
            info.last_heartbeat = event.time
        elif isinstance(event, (Finished, Stopped, ErrorEvent)):
            self._final = event

    def _time_step(self, event: Step) -> None:
        """Seconds per step between two step events of one segment (a resume restarts the count)."""
        last, self._last_step = self._last_step, (event.step, event.elapsed_s) if event.elapsed_s is not None else None
        if last is None or event.elapsed_s is None or event.step <= last[0] or event.elapsed_s < last[1]:
            return
        self._step_times = [*self._step_times[-9:], (event.elapsed_s - last[1]) / (event.step - last[0])]
        self.info.step_s = max(self._step_times)

    @property
    def final(self) -> Event | None:
        return self._final

    def resolve(self) -> RunInfo:
        """The status now: final event, else whether the worker process is alive; and the resume point."""
        info, final, folder = self.info, self._final, self.info.folder
        info.adapter, info.error = None, ""
        if isinstance(final, Finished):
            info.status, info.adapter = "finished", final.path
        elif isinstance(final, Stopped):
            info.status = "stopped"
        elif isinstance(final, ErrorEvent):
            info.status, info.error = "failed", final.message
        elif process_alive(info.pid, self._pid_start):
            info.status = "running"
        elif not self.count:
            info.status = "starting" if (folder / "run.toml").exists() and _young(folder) else "crashed"
        else:
            info.status = "crashed"
        checkpoint, _skipped = latest_complete_checkpoint(folder)
        info.resumable_step = int(checkpoint.name.split("-")[1]) if checkpoint is not None else None
        return info


def summarize(project: str, run_id: str, events: list[Event] | None = None) -> RunInfo:
    events = read_events(run_dir(project, run_id) / "events.jsonl") if events is None else events
    tracker = RunTracker(project, run_id)
    for event in events:
        tracker.feed(event)
    info = tracker.resolve()
    info.events = events
    return info


def follow_run(project: str, run_id: str, say, poll_s: float = 0.5) -> RunInfo:
    """Say a run's whole history, then each new event, until it ends (finished, stopped, failed or crashed).

    `say(level, text)` gets each line `describe_event` makes. Following only reads: leaving
    (Ctrl+C) does not touch the run.
    """
    tail, tracker = EventTail(run_dir(project, run_id) / "events.jsonl"), RunTracker(project, run_id)

    def read() -> None:
        for event in tail.read_new():
            tracker.feed(event)
            if described := describe_event(event):
                say(*described)

    while True:
        read()
        if tracker.resolve().status not in ("running", "starting"):
            read()  # what the worker wrote just before it ended
            return tracker.resolve()
        time.sleep(poll_s)


def _young(folder: Path, seconds: float = 30.0) -> bool:
    return time.time() - (folder / "run.toml").stat().st_mtime < seconds


def list_runs(project: str) -> list[RunInfo]:
    return [summarize(project, run_id) for run_id in list_run_ids(project)]


def read_run_settings(project: str, run_id: str) -> dict:
    with open(run_dir(project, run_id) / "run.toml", "rb") as handle:
        return tomllib.load(handle)


# ------------------------------------------------------------------ one training per project

def lock_path(project: str) -> Path:
    return paths.project_data_dir(project) / "train.lock"


class AlreadyRunning(Exception):
    pass


def running_holder(project: str) -> str | None:
    """Who holds the project's training lock ("pid N, run R"), or None when it is free."""
    return lock_holder(lock_path(project))


def training_lock(project: str, run_id: str):
    """Hold the project's training lock for the life of the worker (released by the OS if it dies)."""
    def refused(holder: str) -> AlreadyRunning:
        return AlreadyRunning(f"project {project!r} is already training ({holder}); "
                              f"stop it with `smolora stop --project {project}` or wait for it")
    return holding(lock_path(project), f"pid {os.getpid()}, run {run_id}", refused)


# ------------------------------------------------------------------ picking an adapter

class NoAdapter(Exception):
    """No finished run (or no such checkpoint) to merge, export or chat with."""


def resolve_adapter(project: str, run_id: str | None = None, checkpoint: int | None = None) -> tuple[str, Path]:
    """(run id, adapter folder): the run's final adapter, or one of its complete checkpoints.

    Without `run_id`, the newest run that has what is asked for (an adapter, or the checkpoint).
    """
    candidates = [run_id] if run_id else list(reversed(list_run_ids(project)))
    if run_id and not (run_dir(project, run_id) / "run.toml").exists():
        raise NoAdapter(f"project {project!r} has no run {run_id!r}; `smolora runs --project {project}` lists them")
    for rid in candidates:
        folder = run_dir(project, rid)
        if checkpoint is None:
            if (folder / "adapter" / "adapter_config.json").is_file():
                return rid, folder / "adapter"
            continue
        for step, path, complete in checkpoints(folder):
            if step == checkpoint and complete and (path / "adapter_config.json").is_file():
                return rid, path
    where = f"run {run_id}" if run_id else f"project {project!r}"
    if checkpoint is not None:
        raise NoAdapter(f"{where} has no complete checkpoint at step {checkpoint}; "
                        f"`smolora runs --project {project}` lists the runs")
    raise NoAdapter(f"{where} has no finished training run with an adapter yet: train first "
                    f"(`smolora train --project {project}`), or pick a checkpoint with --checkpoint STEP")


def run_base_model(project: str, run_id: str) -> tuple[str, bool]:
    """The base model a run trained on (from its frozen settings), and trust_remote_code."""
    model = read_run_settings(project, run_id).get("model", {})
    return str(model.get("base", "")), bool(model.get("trust_remote_code", False))
