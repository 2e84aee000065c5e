"""A notice when a run the app watches ends: the terminal bell, a Textual notification, a desktop one.

Only a run seen running (or starting) and then seen ended gets one, so opening a
project with old runs rings nothing; a run whose worker died shows as crashed and
is noticed like the rest. The desktop notification uses `notify-send` where a
display is reachable, `osascript` on macOS, or nothing (over SSH the remote
machine's desktop is not the user's); `notify.desktop` and `notify.bell` turn
them off, and `notify.command` (run by the worker itself) covers the app being closed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from smolora_engine.runs import RunInfo

LIVE = ("running", "starting")
ENDED = ("finished", "stopped", "failed", "crashed")


class EndWatch:
    """Remembers each run's last status; `ended()` gives the runs seen live that have ended since."""

    def __init__(self):
        self._status: dict[str, str] = {}

    def ended(self, infos: list[RunInfo]) -> list[RunInfo]:
        out = []
        for info in infos:
            before = self._status.get(info.run_id)
            self._status[info.run_id] = info.status
            if before in LIVE and info.status in ENDED:
                out.append(info)
        return out


def notice_text(info: RunInfo, pass_rate: float | None = None, reason: str = "") -> tuple[str, str, str]:
    """(title, message, severity) of the notice."""
    title = f"run {info.run_id} {info.status}"
    parts = [f"step {info.step}/{info.max_steps or '?'}"]
    if info.loss is not None:
        parts.append(f"loss {info.loss:.4f}")
    if pass_rate is not None:
        parts.append(f"pass rate {pass_rate:.0%}")
    if reason:
        parts.append(reason)
    if info.status == "crashed":
        parts.append("the worker died without a final event"
                     + (f"; resumable at step {info.resumable_step}" if info.resumable_step is not None else ""))
    elif info.status == "failed" and info.error:
        parts.append(info.error)
    severity = {"finished": "information", "stopped": "warning"}.get(info.status, "error")
    return title, " · ".join(parts), severity


def desktop_command(title: str, message: str) -> list[str] | None:
    """The command that shows a desktop notification here, or None where there is no desktop to reach."""
    if sys.platform == "darwin" and shutil.which("osascript"):
        quoted = [s.replace("\\", "\\\\").replace('"', '\\"') for s in (message, title)]
        return ["osascript", "-e", f'display notification "{quoted[0]}" with title "{quoted[1]}"']
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which("notify-send"):
        return ["notify-send", "--app-name=smolora-tui", title, message]
    return None


def desktop_notify(title: str, message: str, timeout_s: float = 5.0) -> bool:
    """Show a desktop notification (blocking, bounded: call it from a thread); False when none was shown."""
    command = desktop_command(title, message)
    if command is None:
        return False
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout_s).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def notify_settings(project: str):
    """The project's `notify` settings as saved (the defaults while its file cannot be read)."""
    from smolora_engine.project import NotifySettings
    from smolora_engine.projects import load_project

    try:
        return load_project(project).notify
    except Exception:  # a project file being edited: the defaults
        return NotifySettings()
