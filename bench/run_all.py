"""`make bench`: every benchmark, one after the other, then one table.

Each script runs in its own process with its own baseline (see its docstring);
its output streams as it goes, and the summary lines are gathered at the end
with the machine they ran on. `--quick` skips the slow ones (training
throughput against the SmoLoRA recipe and plain TRL: about 20 minutes on 2 cores;
the step profile: about 2 minutes; the demo: about 5 minutes).

Usage: python bench/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = [  # (name, script and arguments, slow)
    ("training tokens/s vs the SmoLoRA recipe and plain TRL", ["train_throughput.py", "--pairs", "2"], True),
    ("heap growth over a run, rows of every length vs padded rows", ["heap_growth.py"], True),
    ("one training step by kind of op", ["profile_step.py"], True),
    ("GGUF export of the embedded model at every type", ["export_types.py"], True),
    ("GGUF export of every model family (tiny random models)", ["export_families.py"], True),
    ("TUI first frame", ["first_frame.py"], False),
    ("event flood (2,000 events/s)", ["event_flood.py", "--seconds", "20"], False),
    ("preview of a 1 GB JSONL", ["preview_large.py"], False),
    ("data check", ["data_check.py"], False),
    ("model load", ["model_load.py"], False),
    ("inference vs plain generate", ["inference.py"], False),
    ("demo quality", ["demo_quality.py"], True),
]
SUMMARY = re.compile(r"ratio|median| MiB, |target|first frame|demo quality|rows/s|RSS|key latency|preview of|event flood",
                     re.IGNORECASE)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    try:
        import torch

        accel = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        torch_version = torch.__version__
    except ImportError:
        accel, torch_version = "?", "?"
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {accel}; "
            f"Python {platform.python_version()}, torch {torch_version}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the slow benchmarks")
    parser.add_argument("--only", nargs="*", help="scripts to run, e.g. first_frame.py")
    args = parser.parse_args()
    results = []
    for name, command, slow in BENCHES:
        if (args.quick and slow) or (args.only and command[0] not in args.only):
            continue
        print(f"\n=== {name}: bench/{' '.join(command)}", flush=True)
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / command[0]), *command[1:]], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip())
        proc.wait()
        summary = [line.strip() for line in lines if SUMMARY.search(line) and not line.startswith(" ")]
        if proc.returncode:
            summary = [f"FAILED (exit {proc.returncode}): {lines[-1] if lines else ''}"]
        results.append((name, summary, time.monotonic() - started))
    print(f"\n## Benchmarks\n\nMachine: {machine()}\n")
    print("| benchmark | result | took |\n|---|---|---|")
    for name, summary, seconds in results:
        print(f"| {name} | {'<br>'.join(summary) or '(no summary line)'} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
