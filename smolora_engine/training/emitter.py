"""The run's events, written from any thread, and the heartbeat that says the worker is alive."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .. import events as ev
from ..run_text import console_text, describe_event
from ..runs import HEARTBEAT_S


class Emitter:
    """Writes the run's events.jsonl; with `echo`, also says each one on stdout (the console, or worker.log)."""

    def __init__(self, path: Path, echo: bool = False):
        self._writer = ev.EventWriter(path)
        self._lock = threading.Lock()
        self._echo = echo
        self.step: int | None = None
        self.final: ev.Event | None = None  # the run's last finished, stopped or error event
        self._trackers: list = []  # training.report_to: each gets every event once it is written

    def add_tracker(self, tracker) -> None:
        with self._lock:
            self._trackers.append(tracker)

    def __call__(self, event: ev.Event) -> ev.Event:
        with self._lock:
            written = self._write(event)
            for tracker in list(self._trackers):
                try:
                    tracker(written)
                except Exception as exc:  # the run goes on without it; events.jsonl has everything
                    self._trackers.remove(tracker)
                    self._write(ev.Warning(message=f"training.report_to stopped logging ({type(exc).__name__}: "
                                                   f"{exc}); the run goes on, events.jsonl has every figure"))
            return written

    def _write(self, event: ev.Event) -> ev.Event:
        written = self._writer.emit(event)
        if event.kind in ev.FINAL_KINDS:
            self.final = event
        described = describe_event(event) if self._echo else None
        if described:
            print(console_text(*described), flush=True)
        return written

    def close(self) -> None:
        with self._lock:
            for tracker in self._trackers:
                try:
                    tracker.close()
                except Exception as exc:
                    print(f"warning: closing training.report_to's log failed: {exc}", flush=True)
            self._trackers = []
            self._writer.close()


class Heartbeat(threading.Thread):
    def __init__(self, emit: Emitter):
        super().__init__(daemon=True, name="smolora-heartbeat")
        self.emit = emit
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            self.emit(ev.Heartbeat(pid=os.getpid(), step=self.emit.step))
