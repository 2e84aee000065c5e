"""Rows per second of the data doctor (`smolora data check`) with the embedded model's tokenizer.

Baseline in the same process: reading and shaping only (no tokenizer), so the ratio shows
what tokenizing and rendering with the chat template costs.
Usage: python bench/data_check.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from smolora_engine.data import check_data  # noqa: E402
from smolora_engine.models import load_tokenizer  # noqa: E402
from smolora_engine.project import DataSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.jsonl"
        with open(path, "w") as handle:
            for i in range(args.rows):
                handle.write(json.dumps({"messages": [
                    {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{i} plus {i} is {2 * i}. " * 3}]}) + "\n")
        settings = DataSettings(path=str(path))
        started = time.perf_counter()
        check_data(settings)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        report = check_data(settings, tokenizer, 1024)
        full_s = time.perf_counter() - started
    print(f"read + shape only: {args.rows / read_s:,.0f} rows/s")
    print(f"data check with tokens: {args.rows / full_s:,.0f} rows/s ({report.rows_kept} rows, "
          f"{report.tokens['per_epoch']:,} tokens)")
    print(f"ratio: {full_s / read_s:.2f}")


if __name__ == "__main__":
    main()
