"""Where one training step's time goes: the worker's recipe profiled by kind of op, in fp32 and bf16.

Trains the embedded model with the project defaults (the worker's trainer, packing and
loss) on the demo's short chat samples, or the bench's ~280-token ones, profiles one
optimizer step after two warm-up steps with torch.profiler, and prints the step's self
CPU time split by kind of op (matmuls, attention, the loss through the LM head,
dtype casts, other elementwise work, the optimizer) and the ten most expensive ops.
Each dtype runs in its own process, so one does not warm the other's caches.

Usage: python bench/profile_step.py [--data short|long] [--dtypes float32,bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

KINDS = [  # (kind, substrings of the op name), first match wins
    ("optimizer", ("optimizer.", "adamw", "_foreach_", "_fused_adam")),
    ("loss (LM head + cross-entropy)", ("_frozenheadcrossentropy", "logsumexp", "log_softmax", "nll_loss",
                                        "cross_entropy", "exp_")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "onednn")),
    ("dtype casts and copies", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous")),
    ("elementwise and other", ("",)),
]


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next(kind for kind, needles in KINDS if any(n in lowered for n in needles))


def profile(dtype: str, data_name: str, out: Path) -> None:
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import TrainerCallback, set_seed

    from smolora_engine.data import prepare
    from smolora_engine.device import DeviceChoice
    from smolora_engine.models import load_model
    from smolora_engine.project import Project
    from smolora_engine.quiet import quiet_libraries
    from smolora_engine.training.apply_recipe import prepare_model, prepare_trainer
    from smolora_engine.training.recipe import plan_run
    from smolora_engine.training.trainer import lora_config, make_trainer_class, training_args
    from train_throughput import data_set

    quiet_libraries()
    rows, _ = data_set(data_name, 32)
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / "train.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        project = Project(name="profile")
        project.data.path, project.data.eval_ratio = str(train_file), 0
        project.training.max_steps = 4
        model, tokenizer = load_model(project.model.base, device="cpu", dtype=dtype)
        model.config.use_cache = False
        data = prepare(project.data, tokenizer, project.training.max_length)
        set_seed(0)
        model = get_peft_model(model, lora_config(project))
        plan, _estimate, _free = plan_run(project, DeviceChoice("cpu", dtype, "profile", "as profiled"),
                                          max(len(r.input_ids) for r in data.train), model.config,
                                          data.report.shared_prefix)
        prepare_model(model, plan)
        args = training_args(project, Path(folder), "cpu", plan, has_eval=False)
        args.save_strategy = "no"
        holder: dict = {}

        class Profiled(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == 2:  # after two warm-up steps
                    holder["profiler"] = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    holder["profiler"].__enter__()

            def on_step_end(self, args, state, control, **kwargs):
                if "profiler" in holder and "events" not in holder:
                    holder["profiler"].__exit__(None, None, None)
                    holder["events"] = holder["profiler"].key_averages()

        dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in data.train],
                                     "labels": [r.labels for r in data.train]})
        trainer = make_trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                       callbacks=[Profiled()])
        prepare_trainer(trainer, plan)
        trainer.train()
    by_kind: dict[str, float] = defaultdict(float)
    ops = []
    for event in holder["events"]:
        ms = event.self_cpu_time_total / 1000
        by_kind[kind_of(event.key)] += ms
        ops.append((ms, event.key, event.count))
    ops.sort(reverse=True)
    out.write_text(json.dumps({"dtype": dtype, "recipe": plan.lines(), "by_kind": by_kind,
                               "top": ops[:10], "tokens": sum(len(r.input_ids) for r in data.train[:8])}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=("short", "long"), default="short")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--worker")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        profile(args.worker, args.data, args.out)
        return
    from smolora_engine.precision import cpu_bf16_flags, cpu_model

    print(f"CPU: {cpu_model()}; bf16/AMX flags: {', '.join(cpu_bf16_flags()) or 'none'}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in args.dtypes.split(","):
            out = Path(folder) / f"{dtype}.json"
            subprocess.run([sys.executable, __file__, "--worker", dtype, "--data", args.data, "--out", str(out)],
                           check=True, stdout=subprocess.DEVNULL)
            result = json.loads(out.read_text())
            total = sum(result["by_kind"].values())
            print(f"\n{dtype}: one optimizer step ({result['tokens']} tokens), {total:.0f} ms of self CPU time")
            print("  " + "\n  ".join(result["recipe"]))
            for kind, _ in KINDS:
                ms = result["by_kind"].get(kind, 0.0)
                print(f"  {kind:>32}: {ms:8.1f} ms  {ms / total:6.1%}")
            print("  most expensive ops:")
            for ms, name, count in result["top"]:
                print(f"    {ms:8.1f} ms  {name} x{count}")


if __name__ == "__main__":
    main()
