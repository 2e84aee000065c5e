"""`smolora queue run`: train the queue's entries one after another with the normal worker.

One runner per user: it holds queue-runner.lock for its life (the OS drops the lock if
it dies), and a second one refuses, naming the first. Each entry's run is an ordinary
run of its project (its own folder, events.jsonl, checkpoints), trained by the same
worker `smolora train` starts, so the dashboard, `smolora runs` and resume work on it.
A failed or crashed run marks its entry and the runner goes on with the next one. A
runner that is killed leaves its entry `running` in the file; whoever reads the queue
next sees from the run folder that it crashed, and `smolora queue retry` resumes it
from its newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from .. import paths
from ..fsutil import atomic_write_text
from ..locks import holding
from ..project_load import blocking, project_from_dict
from ..runs import new_run_id, run_dir, running_holder, summarize
from .queue_file import RUN_STATUS_TO_ENTRY, Entry, QueueError, editing, entry_status, read_queue, \
    runner_holder, runner_lock_file, runner_log_file, runner_pid

POLL_S = 0.5
BUSY_POLL_S = 5.0


class RunnerBusy(QueueError):
    """Another runner holds the queue."""


def runner_lock(log: str = ""):
    """Hold the queue's runner lock for the life of this process (a second runner is refused, named)."""
    def refused(holder: str) -> RunnerBusy:
        return RunnerBusy(f"the queue already has a runner ({holder}); stop it with `smolora queue stop` "
                          "or let it finish")
    who = f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}" + (f"; log {log}" if log else "")
    return holding(runner_lock_file(), who, refused)


def start_runner_detached() -> int:
    """Start a runner in its own session (it outlives the terminal and the SSH link); return its pid."""
    if holder := runner_holder():
        raise RunnerBusy(f"the queue already has a runner ({holder})")
    log_path = runner_log_file()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "smolora_engine.cli", "queue", "run", "--log", str(log_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and proc.poll() is None and runner_holder() is None:
        time.sleep(0.05)
    if proc.poll() not in (None, 0):
        raise QueueError(f"the runner did not start; see {log_path}")
    return proc.pid


def stop_runner() -> str:
    """SIGTERM the runner: it asks its run to stop at a checkpoint, marks the entry stopped, and ends."""
    pid = runner_pid()
    if pid is None:
        raise QueueError("no runner is running the queue")
    os.kill(pid, signal.SIGTERM)
    return f"asked the runner (pid {pid}) to stop; its run saves a checkpoint and can be retried"


class Runner:
    """The loop: pick the next entry whose project is free, train it, record how it ended, repeat."""

    def __init__(self, say: Callable[[str], object] = print):
        self.say = say
        self.stopping = threading.Event()
        self.worker: subprocess.Popen | None = None

    def ask_to_stop(self, *_args) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            if self.worker is not None and self.worker.poll() is None:
                self.say("stopping: the run saves a checkpoint at the end of its step")
                with contextlib.suppress(ProcessLookupError):
                    self.worker.send_signal(signal.SIGTERM)

    def run(self, log: str = "") -> int:
        """Train until no entry is pending; 0 when every entry trained, 1 when one failed or crashed."""
        with runner_lock(log):
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self.ask_to_stop)
            self.settle()
            trained = failed = 0
            waiting_said: set[int] = set()
            while not self.stopping.is_set():
                entry, busy = self.next_entry()
                for blocked, holder in busy:
                    if blocked.id not in waiting_said:
                        self.say(f"entry {blocked.id} waits: project {blocked.project!r} is training ({holder})")
                        waiting_said.add(blocked.id)
                if entry is None and not busy:
                    break
                if entry is None:
                    self.stopping.wait(BUSY_POLL_S)
                    self.settle()
                    continue
                status = self.train(entry)
                trained += status == "done"
                failed += status in ("failed", "crashed")
            left = sum(1 for _ in self.pending())
            self.say(f"queue runner ends: {trained} trained, {failed} failed or crashed"
                     + (f", {left} still pending" if left else ""))
            return 1 if failed else 0

    def pending(self) -> list[Entry]:
        return read_queue().pending()

    def settle(self) -> None:
        """Entries the file says are running but whose run has ended (a runner that died): record how."""
        with editing() as queue:
            for entry in queue.entries:
                if entry.status == "running":
                    status, note = entry_status(entry, runner_alive=False)
                    if status != "running":
                        entry.status, entry.message, entry.ended = status, note, entry.ended or time.time()

    def next_entry(self) -> tuple[Entry | None, list[tuple[Entry, str]]]:
        """The first pending entry whose project is not training, and the pending ones that wait."""
        busy = []
        with editing() as queue:
            for entry in queue.pending():
                holder = running_holder(entry.project)
                if holder is None:
                    entry.message = ""
                    return entry, busy
                entry.message = f"waits: the project is training ({holder})"
                busy.append((entry, holder))
        return None, busy

    def update(self, entry_id: int, **changes) -> None:
        with editing() as queue:
            entry = queue.get(entry_id)
            for key, value in changes.items():
                setattr(entry, key, value)

    def train(self, entry: Entry) -> str:
        project, problems = project_from_dict(entry.settings, entry.project)
        bad = [p.message for p in blocking(problems)]
        if not paths.project_file(entry.project).exists():
            bad.append(f"project {entry.project!r} no longer exists ({paths.project_file(entry.project)})")
        if bad:
            message = "; ".join(bad)
            self.update(entry.id, status="failed", message=message, ended=time.time())
            self.say(f"entry {entry.id} ({entry.project}) failed before training: {message}")
            return "failed"
        resume = entry.run_id if entry.resume and entry.run_id else None
        run_id = resume or new_run_id(entry.project)
        folder = run_dir(entry.project, run_id)
        if resume is None:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "run.toml", project.to_toml())
        self.update(entry.id, status="running", run_id=run_id, resume=False, started=time.time(), ended=None,
                    message="")
        how = f"resumes run {run_id}" if resume else f"run {run_id}"
        self.say(f"entry {entry.id}: {entry.project} {entry.describe_overrides()} -> {how}")
        from ..training.launch import launcher_command, worker_command

        cmd = launcher_command(project, worker_command(entry.project, run_id, resume, None))
        with open(folder / "worker.log", "ab") as log:
            self.worker = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if self.stopping.is_set():  # asked to stop while it was starting
            self.worker.send_signal(signal.SIGTERM)
        while self.worker.poll() is None:
            time.sleep(POLL_S)
        code, self.worker = self.worker.returncode, None
        if not (folder / "events.jsonl").exists() and running_holder(entry.project):
            # Another training of the project began between the check and the start: wait for it.
            if resume is None:
                shutil.rmtree(folder, ignore_errors=True)
            self.update(entry.id, status="pending", run_id=resume, resume=resume is not None,
                        message="waits: the project started training elsewhere")
            return "pending"
        info = summarize(entry.project, run_id)
        status = RUN_STATUS_TO_ENTRY.get(info.status, "crashed")
        if status == "running":  # the worker process ended without a final event
            status = "crashed"
        note = info.error or ("" if status in ("done", "stopped") else f"the worker exited with code {code}; "
                              f"see {folder / 'worker.log'}")
        self.update(entry.id, status=status, message=note, ended=time.time())
        self.say(f"entry {entry.id}: run {run_id} {info.describe()}" + (f" ({note})" if note else ""))
        return status
