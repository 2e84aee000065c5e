"""How a training run's heap grows step after step, with packed rows of every length and with rows padded
to a multiple of 32 tokens (training/row_padding.py).

The worker's recipe trains the embedded model on chat samples whose answers run from 2 to 9
sentences (about 100 to 350 tokens, so packed rows of every length, as real data gives), once as
the recipe plans it and once with its row padding off, alternately, each in a fresh process. After
each optimizer step it records the process's RSS and glibc's heap: its extent (what malloc has taken
from the system) and what of it is in use. It prints each run's figures every few steps, then the
medians over pairs: the heap and RSS after the last step, the heap's growth over the second half
of the run (MB per step), and tokens/s, with the padded run's ratios to the unpadded one.

Linux (glibc) only: elsewhere malloc's figures are not there to read.

Usage: python bench/heap_growth.py [--pairs 1] [--steps 16] [--unpacked]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = ("rows of every length", "rows padded to 32")
TOPICS = ["rivers", "mountains", "bridges", "libraries", "gardens", "volcanoes", "harbours", "forests"]


def spread_rows(n: int) -> list[dict]:
    """Chat examples with answers of 2 to 9 sentences: rows of many lengths."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        sentences = 2 + (i * 5) % 8
        answer = " ".join(f"{topic.capitalize()} like number {i} are visited for reason {j}: they are old, they "
                          f"change with the seasons, and each has a story locals tell." for j in range(sentences))
        rows.append({"messages": [{"role": "user", "content": f"Tell me about {topic} number {i}."},
                                  {"role": "assistant", "content": answer}]})
    return rows


def heap_mb() -> tuple[float, float]:
    """(glibc heap extent, in use) in MB: all arenas, mmapped blocks included."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = Info
    info = mallinfo2()
    return (info.arena + info.hblkhd) / 2**20, (info.uordblks + info.hblkhd) / 2**20


def worker(mode: str, steps: int, out: Path, unpacked: bool = False) -> None:
    import dataclasses

    import psutil
    from transformers import TrainerCallback

    from smolora_engine.project import Project
    from smolora_engine.quiet import quiet_libraries
    from smolora_engine.training.apply_recipe import prepare_trainer
    from smolora_engine.training.trainer import make_trainer_class
    from train_throughput import counting, smolora_run

    def adjust(plan):
        return plan if mode == MODES[1] else dataclasses.replace(plan, row_multiple=1, row_multiple_reason="")

    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / "train.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in spread_rows(steps * 8)))
        project = Project(name="heap")
        project.data.path, project.data.eval_ratio = str(train_file), 0
        project.training.max_steps = steps
        if unpacked:  # a batch of one sample per pass, as samples too long to pair are fed
            project.training.packing = "off"
        peft_model, tokenizer, dataset, plan, args = smolora_run(project, folder, adjust)
        process, marks = psutil.Process(), []

        class Record(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                extent, in_use = heap_mb()
                marks.append({"time": time.perf_counter(), "tokens": trainer.counted, "heap": extent,
                              "in_use": in_use, "rss": process.memory_info().rss / 2**20})

        trainer = counting(make_trainer_class())(model=peft_model, args=args, train_dataset=dataset,
                                                 processing_class=tokenizer, callbacks=[Record()])
        prepare_trainer(trainer, plan)
        trainer.train()
    first, last = marks[0], marks[-1]
    out.write_text(json.dumps({"marks": marks, "tokens_per_s": (last["tokens"] - first["tokens"])
                               / (last["time"] - first["time"]), "recipe": " / ".join(plan.lines())}))


def summary(run: dict) -> dict:
    marks = run["marks"]
    half = len(marks) // 2
    return {"heap": marks[-1]["heap"], "rss": marks[-1]["rss"], "in_use": marks[-1]["in_use"],
            "growth": (marks[-1]["heap"] - marks[half - 1]["heap"]) / (len(marks) - half),
            "tokens_per_s": run["tokens_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps of 8 samples per run")
    parser.add_argument("--unpacked", action="store_true",
                        help="packing off: each pass one sample, padded to a multiple of 32 or not")
    parser.add_argument("--worker", choices=MODES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.out, args.unpacked)
        return
    if not sys.platform.startswith("linux"):
        raise SystemExit("heap_growth reads glibc's malloc figures: Linux only")
    from smolora_engine.models import ensure_model

    ensure_model("smollm2-135m-instruct")
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        for pair in range(1, args.pairs + 1):
            for mode in MODES:
                out = Path(folder) / "run.json"
                subprocess.run([sys.executable, __file__, "--worker", mode, "--steps", str(args.steps),
                                "--out", str(out), *(["--unpacked"] if args.unpacked else [])], check=True)
                run = json.loads(out.read_text())
                if pair == 1 and mode == MODES[1]:
                    print(f"recipe: {run['recipe']}")
                shown = [m for i, m in enumerate(run["marks"], 1) if i % 4 == 0 or i == 1]
                print(f"pair {pair} {mode:>20}: heap after steps " + ", ".join(
                    f"{m['heap']:.0f}" for m in shown) + f" MB (every 4th); {run['tokens_per_s']:.1f} tokens/s",
                    flush=True)
                results[mode].append(summary(run))
    medians = {mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for mode, runs in results.items()}
    for mode, m in medians.items():
        print(f"{mode:>20}: after {args.steps} steps heap {m['heap']:.0f} MB (in use {m['in_use']:.0f}), "
              f"RSS {m['rss']:.0f} MB; heap growth over the second half {m['growth']:.1f} MB/step; "
              f"{m['tokens_per_s']:.1f} tokens/s")
    plain, padded = medians[MODES[0]], medians[MODES[1]]
    print(f"ratio padded/unpadded: heap {padded['heap'] / plain['heap']:.2f}, RSS {padded['rss'] / plain['rss']:.2f}, "
          f"tokens/s {padded['tokens_per_s'] / plain['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
