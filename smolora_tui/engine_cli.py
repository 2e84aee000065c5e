"""Run the engine's CLI (`smolora ...`) as a child process: the app never imports torch itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "smolora_engine.cli", *args]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The last error line the CLI printed (it prints `error: ...` and a hint)."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return "\n".join(lines[-3:]) if lines else f"exited with status {self.returncode}"


def spawn(*args: str, stdin: int = asyncio.subprocess.DEVNULL, limit: int = 2**16):
    """Start `smolora ARGS` in its own process group (so `reap` can end it with whatever it started)."""
    return asyncio.create_subprocess_exec(
        *engine_command(*args), stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, limit=limit)


async def run_engine(*args: str) -> Result:
    proc = await spawn(*args)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # its screen or the app went away: the answer is not wanted
        await reap(proc)
        raise
    return Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


async def reap(proc: asyncio.subprocess.Process, *readers: asyncio.Task) -> None:
    """Kill a child (and its process group) and wait, while the event loop still runs, until it has
    exited and its pipes are closed: a transport left to a closed loop is a leak.

    `readers` are tasks still reading its pipes; they are cancelled first. The task may be
    cancelled again meanwhile (its screen closes, then the app cancels every worker): a killed
    process ends within milliseconds, so those cancels wait for it too.
    """
    for reader in readers:
        reader.cancel()
    with contextlib.suppress(ProcessLookupError, PermissionError):  # also what it started, holding its pipes
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    while True:
        try:
            await asyncio.gather(*readers, return_exceptions=True)
            await proc.communicate()  # drains what is left, so both pipes reach their end
            return
        except asyncio.CancelledError:
            continue
