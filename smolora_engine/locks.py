"""Locks held for a process's life: an flock on a file that also says who holds it.

The OS drops the lock when its holder dies, so a crashed worker or runner never leaves
a stale lock; the text ("pid N, run R") is only there to name the holder in a refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Callable, Iterator


def lock_holder(path: Path) -> str | None:
    """Who holds the lock at `path` (the text it wrote), or None when it is free."""
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def holding(path: Path, who: str, refused: Callable[[str], Exception]) -> Iterator[None]:
    """Hold the lock at `path`, writing `who` in it; raise `refused(holder)` when another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise refused(holder) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(who)
        handle.flush()
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
