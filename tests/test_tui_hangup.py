"""The app in a real terminal (a pseudo-terminal) exits when that terminal hangs up, even when no SIGHUP
reaches it (as under make): it does not spin on the end-of-file its terminal reads from then on."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")


def _read_until_drawn(master: int, timeout: float = 60.0) -> bytes:
    """What the app wrote until it drew its first screen (the picker's title)."""
    seen, deadline = b"", time.monotonic() + timeout
    while b"smolora" not in seen:
        assert time.monotonic() < deadline, seen[-500:]
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            seen += os.read(master, 65536)
    return seen


def test_the_app_exits_when_its_terminal_hangs_up(smolora_home):
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    # its own session, without this terminal as its controlling one: the hangup sends it no SIGHUP
    app = subprocess.Popen([sys.executable, "-m", "smolora_tui"], stdin=slave, stdout=slave, stderr=slave,
                           env=env, start_new_session=True)
    os.close(slave)
    try:
        _read_until_drawn(master)
        os.close(master)  # the terminal goes away
        assert app.wait(timeout=20) is not None
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
