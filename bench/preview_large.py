"""Preview the head of a 1 GB JSONL file: time and memory, against a 1 MB file in the same process.

The ratio shows that a preview's cost does not grow with the file: about 1.0 is the goal.
Usage: python bench/preview_large.py [--gb 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from smolora_engine.data.preview import preview  # noqa: E402


def write_jsonl(path: Path, size: int) -> None:
    row = json.dumps({"messages": [{"role": "user", "content": "What is the capital of France? " * 4},
                                   {"role": "assistant", "content": "Paris is the capital of France. " * 8}]})
    line = (row + "\n").encode()
    with open(path, "wb") as handle:
        block = line * max(1, (1 << 20) // len(line))
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)


def timed_preview(path: Path, repeats: int = 5) -> tuple[float, int]:
    best = float("inf")
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = preview(str(path), n=50)
        best = min(best, time.perf_counter() - started)
        rows = len(result.rows)
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small, big = Path(folder) / "small.jsonl", Path(folder) / "big.jsonl"
        write_jsonl(small, 1 << 20)
        write_jsonl(big, int(args.gb * (1 << 30)))
        base_s, _ = timed_preview(small)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        big_s, rows = timed_preview(big)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size_gb = os.path.getsize(big) / (1 << 30)
    print(f"preview of {rows} rows: 1 MB file {base_s * 1000:.1f} ms, {size_gb:.2f} GB file {big_s * 1000:.1f} ms")
    print(f"peak memory growth for the big file: {(rss_after - rss_before) / 1024:.1f} MB "
          f"(process peak {rss_after / 1024:.0f} MB)")
    print(f"ratio: {big_s / base_s:.2f}")


if __name__ == "__main__":
    main()
