"""Model load: smolora's `load_model` against plain `AutoModelForCausalLM.from_pretrained`, same model.

The embedded model is converted once (not timed), and its bf16 copy made once (models.py, not
timed); then each loader runs in a fresh process (--rounds times, alternating), timing the import
of transformers plus the load, as a worker pays it, and taking the process's peak RSS. In float32
both read the same folder; in bf16 plain `from_pretrained(dtype=torch.bfloat16)` casts the float32
weights as it loads them, where smolora maps its bf16 copy. Prints the medians and the ratios.

Usage: python bench/model_load.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMED = {
    "float32": {
        "smolora": "from smolora_engine.models import load_model; load_model('smollm2-135m-instruct')",
        "plain": "from transformers import AutoModelForCausalLM, AutoTokenizer; "
                 "AutoModelForCausalLM.from_pretrained(FOLDER); AutoTokenizer.from_pretrained(FOLDER)",
    },
    "bfloat16": {
        "smolora": "from smolora_engine.models import load_model; "
                   "load_model('smollm2-135m-instruct', dtype='bfloat16')",
        "plain": "import torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
                 "AutoModelForCausalLM.from_pretrained(FOLDER, dtype=torch.bfloat16); "
                 "AutoTokenizer.from_pretrained(FOLDER)",
    },
}


def measured(code: str, env: dict) -> dict:
    """Seconds to run `code` in a fresh process, and that process's peak RSS in MB."""
    script = (f"import json, resource, time; t = time.perf_counter(); FOLDER = {env['FOLDER']!r}; {code}; "
              "print(json.dumps({'s': time.perf_counter() - t, "
              "'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SMOLORA_HOME": home, "HF_HUB_OFFLINE": "1"}
        folder = subprocess.run([sys.executable, "-c", "from smolora_engine.models import ensure_model; "
                                 "ensure_model('smollm2-135m-instruct', dtype='bfloat16'); "
                                 "print(ensure_model('smollm2-135m-instruct'))"],
                                capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.strip()
        env["FOLDER"] = folder.splitlines()[-1]
        runs = {(dtype, name): [] for dtype, loaders in TIMED.items() for name in loaders}
        for _ in range(args.rounds):
            for dtype, loaders in TIMED.items():
                for name, code in loaders.items():
                    runs[dtype, name].append(measured(code, env))
    for dtype, loaders in TIMED.items():
        med = {name: {key: statistics.median(r[key] for r in runs[dtype, name]) for key in ("s", "peak")}
               for name in loaders}
        for name in loaders:
            seconds = ", ".join(f"{r['s']:.2f}" for r in runs[dtype, name])
            print(f"{dtype} {name:>8}: median {med[name]['s']:.2f} s to load in a fresh process, peak RSS "
                  f"{med[name]['peak']:.0f} MB (runs: {seconds} s)")
        print(f"{dtype} ratio: time {med['smolora']['s'] / med['plain']['s']:.2f}, peak RSS "
              f"{med['smolora']['peak'] / med['plain']['peak']:.2f}  (smolora / plain from_pretrained; 1.00 = same)")


if __name__ == "__main__":
    main()
