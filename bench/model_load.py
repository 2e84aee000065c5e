"""Model load: smolora's `load_model` against plain `AutoModelForCausalLM.from_pretrained`, same folder.

The embedded model is converted once (not timed); then each loader runs in a fresh
process (--rounds times, alternating), timing the import of transformers plus the
load, as a worker pays it. Prints the medians and the ratio.

Usage: python bench/model_load.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMED = {
    "smolora": "from smolora_engine.models import load_model; load_model('smollm2-135m-instruct')",
    "plain": "from transformers import AutoModelForCausalLM, AutoTokenizer; "
             "AutoModelForCausalLM.from_pretrained(FOLDER); AutoTokenizer.from_pretrained(FOLDER)",
}


def timed(code: str, env: dict) -> float:
    script = f"import time; t = time.perf_counter(); FOLDER = {env['FOLDER']!r}; {code}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SMOLORA_HOME": home, "HF_HUB_OFFLINE": "1"}
        folder = subprocess.run([sys.executable, "-c", "from smolora_engine.models import ensure_model; "
                                 "print(ensure_model('smollm2-135m-instruct'))"],
                                capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.strip()
        env["FOLDER"] = folder.splitlines()[-1]
        times: dict[str, list[float]] = {name: [] for name in TIMED}
        for _ in range(args.rounds):
            for name, code in TIMED.items():
                times[name].append(timed(code, env))
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, values in times.items():
        print(f"{name:>8}: median {med[name]:.2f} s to load in a fresh process "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"ratio: {med['smolora'] / med['plain']:.2f}  (smolora / plain from_pretrained; 1.00 = same)")


if __name__ == "__main__":
    main()
