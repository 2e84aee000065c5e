"""`notify.command`: a shell command the worker runs when a run ends, so a notice needs no app attached.

It gets the run's outcome as environment variables (SMOLORA_STATUS: finished,
stopped or failed; SMOLORA_RUN_ID, SMOLORA_PROJECT, SMOLORA_STEP, SMOLORA_LOSS,
SMOLORA_PASS_RATE, SMOLORA_REASON, SMOLORA_RUN_DIR; a value not known is empty).
It runs in its own process group, is killed with its children after
notify.timeout_s, and its failure is logged, never fatal. A worker killed outright
(SIGKILL, the machine going down) cannot run it: `smolora runs --follow` and the
app see such a run as crashed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Callable

from .. import events as ev


def outcome_env(project: str, run_id: str, folder: Path, final: ev.Event | None) -> dict[str, str]:
    def text(value) -> str:
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    status, step, loss, rate, reason = "failed", None, None, None, "the worker ended without a final event"
    if isinstance(final, ev.Finished):
        status, step, loss, rate, reason = "finished", final.step, final.loss, final.pass_rate, final.reason
    elif isinstance(final, ev.Stopped):
        status, step, reason = "stopped", final.step, final.reason
    elif isinstance(final, ev.Error):
        reason = final.message
    return {"SMOLORA_STATUS": status, "SMOLORA_RUN_ID": run_id, "SMOLORA_PROJECT": project,
            "SMOLORA_STEP": text(step), "SMOLORA_LOSS": text(loss), "SMOLORA_PASS_RATE": text(rate),
            "SMOLORA_REASON": reason or "", "SMOLORA_RUN_DIR": str(folder)}


def run_notify(command: str, env: dict[str, str], timeout_s: float, emit: Callable[[ev.Event], object]) -> bool:
    """Run the command with `env` added; a log event says how it went. True when it exited 0 in time."""
    try:
        proc = subprocess.Popen(command, shell=True, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        emit(ev.Warning(message=f"notify.command could not start: {exc}"))
        return False
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
        except ProcessLookupError:
            pass
        proc.communicate()
        emit(ev.Warning(message=f"notify.command did not finish within {timeout_s:g} s and was killed "
                                "(raise notify.timeout_s, or make the command return sooner)"))
        return False
    last = (output or b"").decode("utf-8", "replace").strip().splitlines()[-1:]
    if proc.returncode != 0:
        emit(ev.Warning(message=f"notify.command failed (exit {proc.returncode})"
                                + (f": {last[0][:200]}" if last else "")))
        return False
    emit(ev.Log(message=f"notify.command ran ({env.get('SMOLORA_STATUS', '')})"))
    return True
