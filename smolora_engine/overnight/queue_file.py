"""The queue: one JSON file per user, across projects, read and rewritten under a lock.

Each entry holds the settings it will train with, frozen when it was added (the project
with the entry's overrides applied), so what runs overnight is what was queued even if
the project is edited meanwhile. Light: the TUI imports this (standard library and runs.py).

    data_dir()/queue.json          the entries
    data_dir()/queue.lock          held while the file is read and rewritten
    data_dir()/queue-runner.lock   held by the one runner for its life
    data_dir()/queue-runner.log    what a detached runner says
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from .. import paths
from ..fsutil import atomic_write_text
from ..locks import lock_holder
from ..runs import RunInfo, run_dir, summarize

# pending: waits its turn; running: its worker is training; done: finished; failed: the run failed
# (bad data, out of memory, ...); crashed: the worker or the runner died mid-run; stopped: asked to stop.
STATUSES = ("pending", "running", "done", "failed", "crashed", "stopped")
RUN_STATUS_TO_ENTRY = {"finished": "done", "failed": "failed", "crashed": "crashed", "stopped": "stopped",
                       "running": "running", "starting": "running"}


class QueueError(Exception):
    """A queue operation that cannot be done (no such entry, a running entry moved, ...)."""


def queue_file() -> Path:
    return paths.data_dir() / "queue.json"


def runner_lock_file() -> Path:
    return paths.data_dir() / "queue-runner.lock"


def runner_log_file() -> Path:
    return paths.data_dir() / "queue-runner.log"


def runner_holder() -> str | None:
    """Who runs the queue now ("pid N since ...; log ..."), or None when no runner does."""
    return lock_holder(runner_lock_file())


def runner_pid() -> int | None:
    holder = runner_holder()
    if holder and holder.startswith("pid "):
        with contextlib.suppress(ValueError):
            return int(holder.split()[1])
    return None


@dataclass
class Entry:
    id: int
    project: str
    overrides: dict[str, Any] = field(default_factory=dict)  # "lora.r": 16, as given
    settings: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole project, frozen
    status: str = "pending"
    run_id: str | None = None
    resume: bool = False  # the next start resumes run_id from its newest complete checkpoint
    added: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    message: str = ""  # why it failed, or what it waits for
    sweep: str = ""  # the sweep that queued it ("lora.r=8,16 ...")

    @classmethod
    def from_dict(cls, raw: dict) -> "Entry":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def describe_overrides(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.overrides.items()) or "(the project's settings)"

    def run_info(self) -> RunInfo | None:
        if self.run_id and (run_dir(self.project, self.run_id) / "run.toml").exists():
            return summarize(self.project, self.run_id)
        return None


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and "," not in value and " " not in value else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(json.dumps(v) if isinstance(v, str) else str(v) for v in value) + "]"
    return str(value)


@dataclass
class Queue:
    entries: list[Entry] = field(default_factory=list)
    next_id: int = 1

    def get(self, entry_id: int) -> Entry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise QueueError(f"the queue has no entry {entry_id}; `smolora queue` lists them")

    def add(self, project: str, overrides: dict[str, Any], settings: dict[str, Any], sweep: str = "") -> Entry:
        entry = Entry(self.next_id, project, dict(overrides), settings, sweep=sweep)
        self.next_id += 1
        self.entries.append(entry)
        return entry

    def pending(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "pending"]

    def to_dict(self) -> dict:
        return {"version": 1, "next_id": self.next_id, "entries": [asdict(e) for e in self.entries]}


def read_queue() -> Queue:
    path = queue_file()
    if not path.exists():
        return Queue()
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise QueueError(f"{path} cannot be read ({exc}); move it aside to start an empty queue") from exc
    entries = [Entry.from_dict(e) for e in raw.get("entries", [])]
    return Queue(entries, int(raw.get("next_id", max((e.id for e in entries), default=0) + 1)))


@contextlib.contextmanager
def editing() -> Iterator[Queue]:
    """Read the queue under its lock, let the caller change it, and write it back atomically.

    An exception inside leaves the file as it was.
    """
    lock = paths.data_dir() / "queue.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            queue = read_queue()
            yield queue
            atomic_write_text(queue_file(), json.dumps(queue.to_dict(), indent=1, default=str) + "\n")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_entry(entry_id: int) -> Entry:
    with editing() as queue:
        entry = queue.get(entry_id)
        if entry_status(entry, runner_holder() is not None)[0] == "running":
            raise QueueError(f"entry {entry_id} is running (run {entry.run_id}); stop it first with "
                             f"`smolora stop --project {entry.project}`")
        queue.entries.remove(entry)
        return entry


def move_entry(entry_id: int, to: int) -> list[Entry]:
    """Move a pending entry to place `to` (1 = next to run) among the pending ones; return them in order."""
    with editing() as queue:
        entry = queue.get(entry_id)
        if entry.status != "pending":
            raise QueueError(f"entry {entry_id} is {entry.status}: only pending entries can be moved")
        pending = queue.pending()
        if not 1 <= to <= len(pending):
            raise QueueError(f"--to must be between 1 and {len(pending)} (the pending entries), got {to}")
        pending.remove(entry)
        pending.insert(to - 1, entry)
        order = iter(pending)  # the pending ones take the pending places in their new order
        queue.entries = [next(order) if e.status == "pending" else e for e in queue.entries]
        return pending


def retry_entry(entry_id: int) -> Entry:
    """A failed, crashed or stopped entry waits again: resumed where its run has a checkpoint, else anew."""
    with editing() as queue:
        entry = queue.get(entry_id)
        status, _note = entry_status(entry, runner_holder() is not None)
        if status in ("pending", "running", "done"):
            raise QueueError(f"entry {entry_id} is {status}: nothing to retry")
        info = entry.run_info()
        entry.resume = bool(info and info.resumable)
        if not entry.resume:
            entry.run_id = None
        entry.status, entry.message, entry.ended = "pending", "", None
        return entry


_UNREAD: Any = object()


def entry_status(entry: Entry, runner_alive: bool, info: RunInfo | None = _UNREAD) -> tuple[str, str]:
    """(status, note) as things stand: a `running` entry whose runner and worker are gone has crashed.

    The file says what the runner last wrote; the run folder (`info`, read here unless given) says
    what happened since.
    """
    if entry.status != "running":
        return entry.status, entry.message
    info = entry.run_info() if info is _UNREAD else info
    if info is None:
        return ("running", "starting") if runner_alive else ("crashed", "the runner stopped before the run began")
    status = RUN_STATUS_TO_ENTRY.get(info.status, info.status)
    if status == "running" and not runner_alive:
        return "running", "its runner is gone; the worker goes on alone"
    note = info.error if status == "failed" else ""
    if status == "crashed" and not runner_alive:
        note = "the runner and its worker died mid-run"
    return status, note

