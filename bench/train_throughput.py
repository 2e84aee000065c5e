"""Training speed: smolora's default recipe against SmoLoRA's, on the embedded model and the same tokens.

Runs the two recipes alternately (A B A B ...), each in a fresh process, and prints
tokens/s and peak memory of each, the loss each reaches after the same tokens,
the fraction of this CPU's measured matmul FLOP/s that each reaches, and the
median ratio as `ratio: X.XX`. This machine is noisy: only pairs run back to back
give a ratio worth quoting.

- smolora recipe: SFTTrainer with the project defaults (LoRA r=16 on all linear
  layers, gradient checkpointing, batch 1 x accumulation 8), the loss from the LM
  head at the trained positions only, computed a chunk of positions at a time
  through the frozen head (smolora_engine/training/loss.py).
- SmoLoRA recipe: SFTTrainer, batch 1 x accumulation 8, fp32, LoRA r=8 alpha 16
  dropout 0.1 on q_proj/v_proj, max length 1024, TRL's defaults otherwise
  (gradient checkpointing on, TRL's own loss path).

Both get the same pre-tokenized examples with the same label masks (loss on the
answers), so both train on the same tokens. Tokens/s counts every input token
after the first optimizer step (warm-up excluded).

Usage: python bench/train_throughput.py [--pairs 2] [--examples 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOPICS = ["rivers", "mountains", "bridges", "libraries", "gardens", "volcanoes", "harbours", "forests",
          "deserts", "glaciers", "islands", "canals", "lighthouses", "markets", "orchards", "observatories"]


def bench_rows(n: int) -> list[dict]:
    """Chat examples of about 280 tokens each, like the measurements in PERF-NOTES."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me about {topic} number {i}, and why people visit them."
        answer = " ".join(
            f"{topic.capitalize()} like number {i} are visited for reason {j}: they are old, they change with "
            f"the seasons, and each one has a story that locals like to tell."
            for j in range(6))
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def matmul_gflops() -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    reps = 10
    for _ in range(reps):
        a @ b
    return 2 * 2048**3 * reps / (time.perf_counter() - started) / 1e9


def worker(recipe: str, examples: int, out: Path) -> None:
    import torch
    from transformers import TrainerCallback

    from smolora_engine.data import prepare
    from smolora_engine.models import load_model
    from smolora_engine.project import DataSettings, Project
    from smolora_engine.training.memory import keep_freed_memory
    from smolora_engine.training.trainer import lora_config, make_trainer_class

    if recipe == "smolora" and not Project(name="bench").training.gradient_checkpointing:
        keep_freed_memory()
    torch.manual_seed(0)
    model, tokenizer = load_model("smollm2-135m-instruct")
    model.config.use_cache = False
    with tempfile.TemporaryDirectory() as folder:
        data_file = Path(folder) / "bench.jsonl"
        data_file.write_text("\n".join(json.dumps(r) for r in bench_rows(examples)) + "\n")
        data = prepare(DataSettings(path=str(data_file), eval_ratio=0), tokenizer, 1024)
        from datasets import Dataset
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed
        from trl import SFTConfig, SFTTrainer

        dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in data.train],
                                     "labels": [r.labels for r in data.train]})
        project = Project(name="bench")
        set_seed(0)
        common = dict(output_dir=folder, per_device_train_batch_size=1, gradient_accumulation_steps=8,
                      max_steps=len(dataset) // 8, logging_steps=1, save_strategy="no", report_to="none",
                      disable_tqdm=True, use_cpu=True, max_length=1024, seed=0, data_seed=0)
        if recipe == "smolora":
            args = SFTConfig(learning_rate=project.training.learning_rate, lr_scheduler_type="constant",
                             gradient_checkpointing=project.training.gradient_checkpointing, **common)
            peft_model = get_peft_model(model, lora_config(project))
            base_cls = make_trainer_class()
        else:
            args = SFTConfig(learning_rate=2e-4, lr_scheduler_type="constant", optim="adamw_torch", **common)
            peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, bias="none",
                                                          task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"]))
            base_cls = SFTTrainer

        class Counting(base_cls):
            counted = 0

            def compute_loss(self, model, inputs, *a, **kw):
                if model.training:
                    self.counted += int(inputs["input_ids"].numel())
                return super().compute_loss(model, inputs, *a, **kw)

        marks: list[tuple[float, int]] = []
        losses: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                marks.append((time.perf_counter(), trainer.counted))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    losses.append(float(logs["loss"]))

        trainer = Counting(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer,
                           callbacks=[Clock()])
        trainer.train()
    (t0, k0), (t1, k1) = marks[0], marks[-1]
    trainable, total = peft_model.get_nb_trainable_parameters()
    out.write_text(json.dumps({
        "recipe": recipe, "tokens_per_s": (k1 - k0) / (t1 - t0), "tokens": k1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": statistics.mean(losses[-2:]), "losses": losses, "parameters": total,
    }))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--worker", choices=("smolora", "smoLoRA-recipe"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.examples, args.out)
        return
    from smolora_engine.models import ensure_model

    ensure_model("smollm2-135m-instruct")
    gflops = matmul_gflops()
    results: dict[str, list[dict]] = {"smoLoRA-recipe": [], "smolora": []}
    with tempfile.TemporaryDirectory() as folder:
        for pair in range(args.pairs):
            for recipe in ("smoLoRA-recipe", "smolora"):
                out = Path(folder) / f"{recipe}-{pair}.json"
                subprocess.run([sys.executable, __file__, "--worker", recipe, "--examples", str(args.examples),
                                "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
                result = json.loads(out.read_text())
                results[recipe].append(result)
                print(f"pair {pair + 1} {recipe:>15}: {result['tokens_per_s']:7.1f} tokens/s, "
                      f"peak {result['peak_rss_mb']:6.0f} MB, loss after {result['tokens']} tokens "
                      f"{result['final_loss']:.4f}", flush=True)
    ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(results["smoLoRA-recipe"], results["smolora"])]
    limit = gflops * 1e9 / (4 * results["smolora"][0]["parameters"])
    for recipe, runs in results.items():
        rate = statistics.median(r["tokens_per_s"] for r in runs)
        print(f"{recipe:>15}: median {rate:.1f} tokens/s, peak {max(r['peak_rss_mb'] for r in runs):.0f} MB, "
              f"final loss {statistics.mean(r['final_loss'] for r in runs):.4f}, "
              f"{rate / limit:.0%} of the FLOP limit ({limit:.0f} tokens/s at {gflops:.0f} GFLOP/s)")
    print(f"ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
