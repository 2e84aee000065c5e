"""Start-up: from launching `smolora-tui --project demo` to its first frame on the terminal.

The app runs in a pseudo-terminal (100 x 30), as in a real terminal; the clock
stops when the project screen's tab bar appears in its output. Baselines run the
same way in the same session: a bare Python start, and Python importing Textual.
Prints the median of --rounds launches of each and the ratio.

Usage: python bench/first_frame.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def launch(cmd: list[str], marker: bytes | None, env: dict, timeout: float = 30.0) -> float:
    """Seconds from launch until `marker` is written to the terminal (or the process exits, when None)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the terminal closed: the process ended
                    proc.wait()
                    if marker is None:
                        return time.perf_counter() - started
                    break
                if marker is not None and marker in seen:
                    return time.perf_counter() - started
            if marker is None and proc.poll() is not None:
                return time.perf_counter() - started
        raise SystemExit(f"no {marker!r} within {timeout} s; the output ended with {seen[-300:]!r}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", default="settings", help="the mode the project opens on (remembered per project)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SMOLORA_HOME": home, "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color",
               "COLUMNS": "100", "LINES": "30"}
        subprocess.run([sys.executable, "-m", "smolora_engine.cli", "demo", "--setup"], env=env, check=True,
                       capture_output=True)
        subprocess.run([sys.executable, "-c", f"from smolora_tui.state import update_state; "
                        f"update_state(modes={{'demo': {args.mode!r}}})"], env=env, check=True)
        app = [sys.executable, "-m", "smolora_tui", "--project", "demo"]
        python = [sys.executable, "-c", "pass"]
        textual = [sys.executable, "-c", "import textual.app, textual.widgets"]
        launch(app, b"Settings", env)  # warm the file cache once
        runs: dict[str, list[float]] = {"app": [], "python": [], "textual": []}
        for _ in range(args.rounds):
            runs["python"].append(launch(python, None, env))
            runs["textual"].append(launch(textual, None, env))
            runs["app"].append(launch(app, b"Settings", env))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"first frame of smolora-tui --project demo (opening on {args.mode}): median {med['app'] * 1000:.0f} ms "
          f"(runs: {', '.join(f'{v * 1000:.0f}' for v in runs['app'])} ms)")
    print(f"baselines: bare python {med['python'] * 1000:.0f} ms, python + import textual "
          f"{med['textual'] * 1000:.0f} ms")
    print(f"ratio app / (python + textual import): {med['app'] / med['textual']:.2f}")
    print(f"target (first frame under 1 s): {'met' if med['app'] < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
