"""Follow a project's training runs from their events.jsonl files, without the UI thread.

`ProjectRuns.poll()` reads what each run's file gained since the last call (an
`EventTail` per run, so a long run is never re-read) and keeps, per run, the
curves and the latest figures the dashboard draws. Poll it from a thread; the
UI takes `snapshot()`s a few times a second when `dirty` is set, so however fast
events arrive the screen redraws at its own pace.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Sequence

from smolora_engine import events as ev
from smolora_engine.run_text import describe_event
from smolora_engine.runs import RunInfo, RunTracker, checkpoints, list_run_ids, run_dir

LOG_LINES = 500
SAMPLE_EVALS = 200  # evals whose answers are kept (the base model's always are)
MAX_POINTS = 400  # a chart is only so many cells wide
SMOOTHING = 0.6  # the weight of the loss curve's running average (TensorBoard's slider)
STATUS_EVERY_S = 1.0


def thin(xs: Sequence, ys: Sequence, limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most about `limit` points (bucket means of the finite values), from whole arrays."""
    curve = Curve(limit)
    for x, y in zip(xs, ys):
        curve.add(x, y)
    return curve.points()


class Curve:
    """A curve kept small as it grows: at most 2 x `limit` buckets, each the mean of `width` points.

    Adding a point is O(1) (amortized): when the buckets fill up, neighbours are merged
    and the width doubles. Drawing reads at most 2 x `limit` points, however long the run.
    Missing values (NaN, infinity) are left out, never drawn as zero.
    """

    def __init__(self, limit: int = MAX_POINTS):
        self.limit, self.width = limit, 1
        self.xs: list = []
        self.sums: list[float] = []
        self.counts: list[int] = []  # finite values in each bucket
        self.filled: list[int] = []  # points in each bucket

    def add(self, x, y: float) -> None:
        good = math.isfinite(y)
        if self.filled and self.filled[-1] < self.width:
            self.xs[-1] = x
            self.filled[-1] += 1
            if good:
                self.sums[-1] += y
                self.counts[-1] += 1
        else:
            self.xs.append(x)
            self.sums.append(y if good else 0.0)
            self.counts.append(1 if good else 0)
            self.filled.append(1)
        if len(self.xs) > 2 * self.limit:
            self._halve()

    def _halve(self) -> None:
        pairs = range(0, len(self.xs) - 1, 2)
        self.xs = [self.xs[i + 1] for i in pairs]
        self.sums = [self.sums[i] + self.sums[i + 1] for i in pairs]
        self.counts = [self.counts[i] + self.counts[i + 1] for i in pairs]
        self.filled = [self.filled[i] + self.filled[i + 1] for i in pairs]
        self.width *= 2

    def truncate(self, x) -> None:
        """Forget the points after `x` (a run resumed from a checkpoint there); a bucket reaching past it goes too."""
        keep = len(self.xs)
        while keep and self.xs[keep - 1] > x:
            keep -= 1
        del self.xs[keep:], self.sums[keep:], self.counts[keep:], self.filled[keep:]

    def points(self) -> tuple[list, list]:
        keep = [i for i, count in enumerate(self.counts) if count]
        return [self.xs[i] for i in keep], [self.sums[i] / self.counts[i] for i in keep]


@dataclass
class LogLine:
    level: str  # info | warning | error
    text: str


@dataclass
class RunHistory:
    """Everything the dashboard shows about one run, in memory bounded however long the run."""

    run_id: str
    last_step: ev.Step | None = None
    started: ev.Started | None = None
    loading: str = ""
    best_eval: tuple[int, float] | None = None
    last_eval: float | None = None
    estimate_mb: float | None = None
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_total: int = 0  # lines ever logged (the UI writes those past what it has shown)
    disk_checkpoints: list[tuple[int, bool]] = field(default_factory=list)  # (step, complete)
    info: RunInfo | None = None
    base_samples: ev.Samples | None = None  # the base model's answers, before step 1
    samples: list[ev.Samples] = field(default_factory=list)  # the answers at each eval, oldest first
    finished: ev.Finished | None = None
    best_pass_step: int | None = None  # the best checkpoint's step when the pass rate picks it
    # The curves, each kept at most 2 x MAX_POINTS buckets (see Curve); a snapshot carries their points.
    curves: dict[str, Curve] = field(default_factory=lambda: {"loss": Curve(), "smoothed": Curve(), "eval": Curve(),
                                                                "pass_rate": Curve()})
    plot_loss: tuple[list, list] = ([], [])
    plot_smoothed: tuple[list, list] = ([], [])
    plot_eval: tuple[list, list] = ([], [])
    plot_pass_rate: tuple[list, list] = ([], [])
    _ema: tuple[float, float] = (0.0, 0.0)  # the running average and its debiasing weight

    def add(self, event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            loss = _number(event.loss)
            self.curves["loss"].add(event.step, loss)
            self.curves["smoothed"].add(event.step, self._smooth(loss))
            self.last_step, self.loading = event, ""
            return  # the figures show the step; the log would drown in them
        if isinstance(event, ev.Eval):
            self.curves["eval"].add(event.step, _number(event.eval_loss))
            self.last_eval = event.eval_loss
            if event.best and event.eval_loss is not None:
                self.best_eval = (event.step, event.eval_loss)
        elif isinstance(event, ev.Samples):
            if event.base:
                self.base_samples = event
            else:
                self.samples = [*self.samples[-(SAMPLE_EVALS - 1):], event]
                if event.best:
                    self.best_pass_step = event.step
                if event.pass_rate is not None:
                    self.curves["pass_rate"].add(event.step, event.pass_rate)
        elif isinstance(event, ev.Finished):
            self.finished = event
        elif isinstance(event, ev.Started):
            self.started = event
            if event.resumed_from is not None:  # the curve continues from the checkpoint
                for curve in self.curves.values():
                    curve.truncate(event.resumed_from)
                self.samples = [s for s in self.samples if s.step <= event.resumed_from]
        elif isinstance(event, ev.Loading):
            self.loading = event.message
        elif isinstance(event, ev.MemoryEstimate):
            self.estimate_mb = event.estimate_mb
        described = describe_event(event)
        if described:
            self._log(*described)

    def _smooth(self, loss: float) -> float:
        """TensorBoard's exponential moving average, debiased at the start; NaN (a missing loss) is skipped."""
        if not math.isfinite(loss):
            return math.nan
        last, norm = self._ema
        last, norm = last * SMOOTHING + (1 - SMOOTHING) * loss, norm * SMOOTHING + (1 - SMOOTHING)
        self._ema = (last, norm)
        return last / norm

    def _log(self, level: str, text: str) -> None:
        self.log.append(LogLine(level, text))
        self.log_total += 1

    def snapshot(self) -> RunHistory:
        """A copy the UI can read while the poller goes on, with the curves' points."""
        clone = RunHistory(self.run_id, self.last_step, self.started, self.loading, self.best_eval, self.last_eval,
                           self.estimate_mb, deque(self.log, maxlen=LOG_LINES), self.log_total,
                           list(self.disk_checkpoints), self.info, self.base_samples, list(self.samples),
                           self.finished, self.best_pass_step, {})
        clone.plot_loss = self.curves["loss"].points()
        clone.plot_smoothed = self.curves["smoothed"].points()
        clone.plot_eval = self.curves["eval"].points()
        clone.plot_pass_rate = self.curves["pass_rate"].points()
        return clone


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


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
        grew = set()
        for run_id, followed in list(self._runs.items()):
            new = followed.tail.read_new()
            if new:
                with self._lock:
                    for event in new:
                        followed.tracker.feed(event)
                        followed.history.add(event)
                self.events_read += len(new)
                grew.add(run_id)
        changed |= bool(grew)
        now = time.monotonic()
        if force_status or changed or now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            for run_id, followed in list(self._runs.items()):
                # A run that ended and wrote nothing new cannot change: no process or folder checks for it.
                if force_status or run_id in grew or followed.tracker.final is None or followed.history.info is None:
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
            followed.history.info = replace(info, events=[])
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
        """What to draw of a run."""
        with self._lock:
            followed = self._runs.get(run_id)
            return followed.history.snapshot() if followed else None

    def running(self) -> RunInfo | None:
        for info in self.infos():
            if info.status in ("running", "starting"):
                return info
        return None
