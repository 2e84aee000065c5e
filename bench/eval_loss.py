"""The eval loss of a packed run: packed rows (training/packed_eval.py) against the HF loop, one sample per batch.

The embedded model with the project's default adapter (its B weights set to small random
values, so the adapter changes the answers) evaluates the demo's chat samples, the worker's
recipe choosing the rows, in one process: the two ways alternate, `--repeats` times each.
Prints each way's median seconds, the ratio, and both losses (which must agree).

Usage: python bench/eval_loss.py [--samples 25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=25, help="eval samples (the demo's split has 25)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    from datasets import Dataset
    from peft import get_peft_model

    from smolora_engine.data import prepare
    from smolora_engine.demo import demo_project
    from smolora_engine.device import choose_device
    from smolora_engine.models import load_model
    from smolora_engine.precision import cpu_model
    from smolora_engine.quiet import quiet_libraries
    from smolora_engine.training.apply_recipe import prepare_model, prepare_trainer
    from smolora_engine.training.recipe import plan_run
    from smolora_engine.training.trainer import (
        lora_config,
        make_trainer_class,
        training_args,
    )

    quiet_libraries()
    project = demo_project()
    choice = choose_device("cpu", project.model.dtype, for_training=True)
    model, tokenizer = load_model(project.model.base, device="cpu", dtype=choice.dtype)
    model.config.use_cache = False
    data = prepare(project.data, tokenizer, project.training.max_length)
    rows = (data.eval + data.train)[:args.samples]
    dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config(project))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.01)
    recipe, _estimate, _free = plan_run(project, choice, max(len(r.input_ids) for r in rows), model.config,
                                        data.report.shared_prefix)
    prepare_model(model, recipe)
    with tempfile.TemporaryDirectory() as folder:
        trainer = make_trainer_class()(model=model, args=training_args(project, Path(folder), "cpu", recipe, True),
                                       train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer)
        prepare_trainer(trainer, recipe)
        print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; {choice.dtype}; {len(rows)} eval samples; "
              f"{' / '.join(recipe.lines()[1:2])}", flush=True)
        seconds: dict[str, list[float]] = {"packed rows": [], "one sample per batch": []}
        losses: dict[str, float] = {}
        trainer.evaluate()  # warm-up
        for _ in range(args.repeats):
            for way, times in seconds.items():
                trainer.packed_eval = way == "packed rows"
                started = time.perf_counter()
                losses[way] = trainer.evaluate()["eval_loss"]
                times.append(time.perf_counter() - started)
        for way, times in seconds.items():
            print(f"  {way:>20}: median {statistics.median(times):6.2f} s "
                  f"({', '.join(f'{t:.2f}' for t in times)}), eval loss {losses[way]:.6f}")
        packed, loop = (statistics.median(t) for t in seconds.values())
        print(f"ratio packed rows vs one sample per batch: {loop / packed:.2f}")


if __name__ == "__main__":
    main()
