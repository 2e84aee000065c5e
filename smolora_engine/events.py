"""The event protocol between workers (train, merge, export, serve) and their readers.

Versioned JSON Lines: one object per line, `{"v": 1, "kind": ..., "time": ..., ...}`.
This module defines every kind (as dataclasses), writes them and reads them.
NaN and infinity are written as null. The reader tolerates a half-written last
line (it is left for the next read) and keeps unknown kinds as `Unknown`.

Light on purpose (standard library only): the TUI imports it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, IO, Iterator

VERSION = 1


@dataclass
class Event:
    kind: ClassVar[str] = ""
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, **{k: _clean(v) for k, v in asdict(self).items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass
class Started(Event):
    kind: ClassVar[str] = "started"
    run_id: str = ""
    project: str = ""
    pid: int = 0
    pid_start: float | None = None  # the process start time, to tell a reused pid apart
    model: str = ""
    device: str = ""
    dtype: str = ""
    resumed_from: int | None = None
    dtype_reason: str = ""  # why this precision (the probe's figures, or "set in the project")


@dataclass
class Loading(Event):
    kind: ClassVar[str] = "loading"
    message: str = ""
    progress: float | None = None  # 0..1 when known


@dataclass
class Step(Event):
    kind: ClassVar[str] = "step"
    step: int = 0
    max_steps: int = 0
    epoch: float | None = None
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens: int = 0
    tokens_per_s: float | None = None  # over the last steps' own time (not evals, answers, saves between)
    elapsed_s: float | None = None
    train_s: float | None = None  # the run's seconds in training steps so far (None: a run from before)
    eta_s: float | None = None
    memory_mb: float | None = None


@dataclass
class Eval(Event):
    kind: ClassVar[str] = "eval"
    step: int = 0
    eval_loss: float | None = None
    best: bool = False


@dataclass
class Samples(Event):
    """The model's answers to the eval prompts: the base before step 1 (`base`), then at each eval.

    Each answer is {"prompt", "where", "reference", "answer", "checks": [{"check", "passed"}], "passed"},
    `passed` null for a prompt without checks; `pass_rate` is over the prompts that have checks
    (null when none has).
    """

    kind: ClassVar[str] = "samples"
    step: int = 0
    base: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)
    pass_rate: float | None = None
    checked: int = 0
    best: bool = False  # the best pass rate so far (when pass_rate is the run's metric)
    seconds: float | None = None
    cut_short: bool = False  # eval.time_limit_s ended the answers early
    cached: bool = False  # the base model's answers kept from an earlier run (evaluation/answer_cache.py)


@dataclass
class Checkpoint(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""
    save_s: float | None = None  # from the end of the step to the checkpoint on disk (a stop waits for it)


@dataclass
class Heartbeat(Event):
    kind: ClassVar[str] = "heartbeat"
    pid: int = 0
    step: int | None = None


@dataclass
class Log(Event):
    kind: ClassVar[str] = "log"
    message: str = ""
    level: str = "info"


@dataclass
class Warning(Event):  # noqa: A001 - the protocol's own name
    kind: ClassVar[str] = "warning"
    message: str = ""


@dataclass
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str = ""
    hint: str = ""
    id: str = ""  # serve: the request that failed


@dataclass
class MemoryEstimate(Event):
    kind: ClassVar[str] = "memory_estimate"
    estimate_mb: float = 0.0
    available_mb: float | None = None
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class Progress(Event):
    """Progress of a merge or export worker."""

    kind: ClassVar[str] = "progress"
    stage: str = ""
    message: str = ""
    fraction: float | None = None


@dataclass
class Stopped(Event):
    kind: ClassVar[str] = "stopped"
    step: int = 0
    checkpoint: str | None = None
    reason: str = ""


@dataclass
class Finished(Event):
    kind: ClassVar[str] = "finished"
    step: int = 0
    path: str = ""  # the adapter (train) or the written artifact (merge/export)
    loss: float | None = None
    eval_loss: float | None = None
    tokens: int = 0
    elapsed_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    adapter_step: int | None = None  # the step whose weights the adapter holds (training.keep_best)
    pass_rate: float | None = None  # the last eval's pass rate, and the best one
    best_pass_rate: float | None = None
    reason: str = ""  # why it ended before max_steps (early stopping), else ""


@dataclass
class Token(Event):
    kind: ClassVar[str] = "token"
    id: str = ""
    text: str = ""


@dataclass
class Done(Event):
    kind: ClassVar[str] = "done"
    id: str = ""
    text: str = ""
    tokens: int = 0
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    cancelled: bool = False


@dataclass
class Ready(Event):
    """The serve worker has loaded its models and reads requests."""

    kind: ClassVar[str] = "ready"
    models: list[str] = field(default_factory=list)
    system: str = ""  # the system message a conversation without one gets ("" when the template adds none)
    system_from: str = ""  # whose rendering that is: "run ID" (as it trained) or "the project's settings"


@dataclass
class Unknown(Event):
    """A kind this version does not know (a newer writer): kept, not dropped."""

    kind: ClassVar[str] = "unknown"
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)


KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (Started, Loading, Step, Eval, Samples, Checkpoint, Heartbeat, Log, Warning, Error, MemoryEstimate,
                Progress, Stopped, Finished, Token, Done, Ready)
}
FINAL_KINDS = ("stopped", "finished", "error")


def from_dict(data: dict[str, Any]) -> Event:
    kind = data.get("kind", "")
    cls = KINDS.get(kind)
    if cls is None:
        return Unknown(name=str(kind), data=data, time=data.get("time") or 0.0)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def parse_line(line: str) -> Event | None:
    """One line to an event; None for a blank or unreadable line."""
    line = line.strip()
    if not line:
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return from_dict(data)
    except TypeError:
        return None


class EventWriter:
    """Append events to a JSON Lines file (or stream), one flushed line each."""

    def __init__(self, target: Path | IO[str]):
        if isinstance(target, (str, Path)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[str] = open(target, "a", encoding="utf-8")
            self._owned = True
        else:
            self._handle, self._owned = target, False

    def emit(self, event: Event) -> Event:
        self._handle.write(event.to_json() + "\n")
        self._handle.flush()
        return event

    def close(self) -> None:
        if self._owned:
            try:
                os.fsync(self._handle.fileno())
            except OSError:
                pass
            self._handle.close()


class EventTail:
    """Follow a growing events file: each `read_new()` returns the complete lines added since."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unterminated last line waits for its end
        events = []
        for raw in lines:
            event = parse_line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events


def read_events(path: Path) -> list[Event]:
    """Every complete event in the file (a half-written last line is ignored)."""
    return EventTail(path).read_new()


def iter_stream(stream: IO[str]) -> Iterator[Event]:
    for line in stream:
        event = parse_line(line)
        if event is not None:
            yield event
