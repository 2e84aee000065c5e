"""Starting and stopping workers: the command line, the multi-process launcher, detach, stop."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import os
from typing import Callable

from ..fsutil import atomic_write_text
from ..project import Project
from ..run_text import duration
from ..runs import list_run_ids, new_run_id, process_alive, run_dir, running_holder, summarize
from .errors import TrainingRefused
from .worker import resolve_resume


def worker_command(project: str, run_id: str | None, resume: str | None, max_steps: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "smolora_engine.cli", "train", "--project", project]
    if run_id:
        cmd += ["--run-id", run_id]
    if resume:
        cmd += ["--resume", resume]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    return cmd


def launcher_command(project: Project, inner: list[str]) -> list[str]:
    """Wrap the worker in the project's multi-process launcher (torchrun or accelerate)."""
    t = project.training
    if t.launcher == "none" or t.num_processes <= 1:
        return inner
    module_args = inner[2:]  # after "python -m"
    if t.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={t.num_processes}", "-m", *module_args]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(t.num_processes),
            "-m", *module_args]


def start_detached(project_name: str, resume: str | None = None, max_steps: int | None = None) -> str:
    """Start the worker in its own session (it outlives the TUI and the SSH link); return the run id."""
    from ..projects import load_project

    if holder := running_holder(project_name):
        raise TrainingRefused(f"project {project_name!r} is already training ({holder})")
    if resume:
        run_id = resolve_resume(project_name, resume)
        resume = run_id
    else:
        run_id = new_run_id(project_name)
    project = load_project(project_name)
    folder = run_dir(project_name, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(folder / "run.toml", project.to_toml())
    cmd = launcher_command(project, worker_command(project_name, run_id, resume, max_steps))
    with open(folder / "worker.log", "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return run_id


def stop_run(project_name: str, timeout: float | None = None, kill: bool = False,
             say: Callable[[str], object] = lambda _line: None) -> str:
    """SIGTERM the running worker (checkpoint at the next step boundary); SIGKILL only after the grace.

    The grace (`timeout`, else `RunInfo.stop_grace()`) follows the run's measured step and checkpoint
    times, so a slow step is not cut short. `kill` skips it. The answer names the checkpoint that
    really exists, or says there is none.
    """
    import psutil

    running = [r for r in (summarize(project_name, i) for i in list_run_ids(project_name)) if r.status == "running"]
    if not running:
        raise TrainingRefused(f"project {project_name!r} has no running training")
    info = running[-1]
    grace = 0.0 if kill else info.stop_grace() if timeout is None else timeout
    proc = psutil.Process(info.pid)
    group = [proc, *proc.children(recursive=True)]
    alive = group
    if not kill:
        say(f"asked run {info.run_id} to stop: it saves a checkpoint at the end of the step in progress; "
            f"killed if it has not stopped in {duration(grace)}")
        for p in group:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _gone, alive = psutil.wait_procs(group, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + 10
    while alive and process_alive(info.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)  # gone (or a zombie) before its status is read
    after = summarize(project_name, info.run_id)
    where = (f"it can be resumed from checkpoint-{after.resumable_step} (step {after.resumable_step})"
             if after.resumable_step is not None else
             "it has no complete checkpoint, so there is nothing to resume; start a new run")
    if alive:
        how = "was killed" if kill else f"did not stop within {duration(grace)} and was killed"
        return f"run {info.run_id} {how} at step {after.step}; {where}"
    return f"run {info.run_id} stopped at step {after.step}; {where}"
