"""Run the engine's CLI (`smolora ...`) as a child process: the app never imports torch itself."""

from __future__ import annotations

import asyncio
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


async def run_engine(*args: str) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *engine_command(*args), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # its screen or the app went away: the answer is not wanted
        if proc.returncode is None:
            proc.kill()
        await reap(proc)
        raise
    return Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a killed child to exit while the event loop still runs its pipes.

    The task may be cancelled again meanwhile (its screen closes, then the app cancels every
    worker): a killed process ends within milliseconds, so those cancels wait for it too.
    """
    while True:
        try:
            await proc.wait()
            return
        except asyncio.CancelledError:
            continue
