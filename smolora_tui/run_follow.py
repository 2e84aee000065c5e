"""Follow a project's training runs from their events.jsonl files, without the UI thread.

`ProjectRuns.poll()` reads what each run's file gained since the last call (an
`EventTail` per run, so a long run is never re-read) and keeps, per run, the
curves and the latest figures the dashboard draws. Poll it from a thread; the
UI takes `snapshot()`s a few times a second when `dirty` is set, so however fast
events arrive the screen redraws at its own pace.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from smolora_engine import events as ev
from smolora_engine.runs import RunInfo, RunTracker, checkpoints, list_run_ids, run_dir

LOG_LINES = 500
STATUS_EVERY_S = 1.0


@dataclass
class LogLine:
    level: str  # info | warning | error
    text: str


@dataclass
class RunHistory:
    """Everything the dashboard shows about one run."""

    run_id: str
    steps: list[int] = field(default_factory=list)
    losses: list[float | None] = field(default_factory=list)
    lrs: list[float | None] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_losses: list[float | None] = field(default_factory=list)
    last_step: ev.Step | None = None
    started: ev.Started | None = None
    loading: str = ""
    best_eval: tuple[int, float] | None = None
    estimate_mb: float | None = None
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_total: int = 0  # lines ever logged (the UI writes those past what it has shown)
    disk_checkpoints: list[tuple[int, bool]] = field(default_factory=list)  # (step, complete)
    info: RunInfo | None = None

    def add(self, event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            self.steps.append(event.step)
            self.losses.append(event.loss)
            self.lrs.append(event.lr)
            self.last_step, self.loading = event, ""
        elif isinstance(event, ev.Eval):
            self.eval_steps.append(event.step)
            self.eval_losses.append(event.eval_loss)
            if event.best and event.eval_loss is not None:
                self.best_eval = (event.step, event.eval_loss)
        elif isinstance(event, ev.Started):
            self.started = event
            if event.resumed_from is not None:  # the curve continues from the checkpoint
                self._truncate(event.resumed_from)
                self._log("info", f"resumed from step {event.resumed_from} (pid {event.pid})")
            else:
                self._log("info", f"started on {event.device} ({event.dtype}), pid {event.pid}, model {event.model}")
        elif isinstance(event, ev.Loading):
            self.loading = event.message
            self._log("info", event.message)
        elif isinstance(event, ev.MemoryEstimate):
            self.estimate_mb = event.estimate_mb
        elif isinstance(event, ev.Checkpoint):
            self._log("info", f"checkpoint at step {event.step}")
        elif isinstance(event, ev.Log):
            self._log(event.level if event.level in ("warning", "error") else "info", event.message)
        elif isinstance(event, ev.Warning):
            self._log("warning", event.message)
        elif isinstance(event, ev.Error):
            self._log("error", event.message + (f"\n  what to do: {event.hint}" if event.hint else ""))
        elif isinstance(event, ev.Stopped):
            self._log("info", f"stopped at step {event.step} ({event.reason or 'asked to stop'})"
                      + (", checkpoint saved" if event.checkpoint else ""))
        elif isinstance(event, ev.Finished):
            self._log("info", f"finished at step {event.step}; adapter in {event.path}")

    def _truncate(self, step: int) -> None:
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.losses[keep:], self.lrs[keep:]
        keep = sum(1 for s in self.eval_steps if s <= step)
        del self.eval_steps[keep:], self.eval_losses[keep:]

    def _log(self, level: str, text: str) -> None:
        self.log.append(LogLine(level, text))
        self.log_total += 1

    def copy(self) -> RunHistory:
        """A copy the UI can read while the poller goes on (the curves are copied, events are not kept)."""
        clone = RunHistory(self.run_id, list(self.steps), list(self.losses), list(self.lrs),
                           list(self.eval_steps), list(self.eval_losses), self.last_step, self.started,
                           self.loading, self.best_eval, self.estimate_mb, deque(self.log, maxlen=LOG_LINES),
                           self.log_total, list(self.disk_checkpoints), self.info)
        return clone


class _Followed:
    def __init__(self, project: str, run_id: str):
        self.tail = ev.EventTail(run_dir(project, run_id) / "events.jsonl")
        self.tracker = RunTracker(project, run_id)
        self.history = RunHistory(run_id)


class ProjectRuns:
    """Every run of one project, followed incrementally. Thread-safe: poll in one thread, read in another."""

    def __init__(self, project: str):
        self.project = project
        self._runs: dict[str, _Followed] = {}
        self._lock = threading.Lock()
        self._last_status = 0.0
        self.dirty = True
        self.events_read = 0

    def poll(self, force_status: bool = False) -> bool:
        """Read new events (and, each second, statuses from the processes and the disk); True if anything changed."""
        changed = False
        for run_id in list_run_ids(self.project):
            if run_id not in self._runs:
                with self._lock:
                    self._runs[run_id] = _Followed(self.project, run_id)
                changed = True
        for followed in list(self._runs.values()):
            new = followed.tail.read_new()
            if new:
                with self._lock:
                    for event in new:
                        followed.tracker.feed(event)
                        followed.history.add(event)
                self.events_read += len(new)
                changed = True
        now = time.monotonic()
        if force_status or changed or now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            for followed in list(self._runs.values()):
                changed |= self._refresh_status(followed)
        if changed:
            self.dirty = True
        return changed

    def _refresh_status(self, followed: _Followed) -> bool:
        info = followed.tracker.resolve()
        on_disk = [(step, complete) for step, _path, complete in checkpoints(info.folder)]
        before = followed.history.info
        key = (info.status, info.resumable_step, info.step)
        with self._lock:
            followed.history.info = RunInfo(**{**info.__dict__, "events": []})
            changed = on_disk != followed.history.disk_checkpoints
            followed.history.disk_checkpoints = on_disk
        return changed or before is None or key != (before.status, before.resumable_step, before.step)

    def request_status(self) -> None:
        """Have the next poll read the statuses now (after starting or stopping a run)."""
        self._last_status = 0.0

    def run_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def infos(self) -> list[RunInfo]:
        with self._lock:
            return [f.history.info for _id, f in sorted(self._runs.items()) if f.history.info is not None]

    def history(self, run_id: str) -> RunHistory | None:
        with self._lock:
            followed = self._runs.get(run_id)
            return followed.history.copy() if followed else None

    def running(self) -> RunInfo | None:
        for info in self.infos():
            if info.status in ("running", "starting"):
                return info
        return None
