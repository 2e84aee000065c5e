"""Training speed: smolora's recipe against SmoLoRA's and a strong plain-TRL one, on the same tokens.

Three recipes train the embedded model on the same examples, alternately (A B C A B C ...),
each in a fresh process, on two data sets: the demo's short chat samples (about 76 tokens)
and chat samples of about 280 tokens. For each run it prints trained (non-pad) tokens/s
after the first optimizer step, peak RSS while training (taken before the held-out loss, which is
the bench's own measurement, not the recipe's) with the most malloc had handed out (glibc; the RSS also holds the
libraries, memory-mapped weights and the freed blocks malloc keeps), and the loss on held-out answers after training
(the same held-out rows and the same answer-token loss for every recipe). Then this CPU's
model and bf16/AMX flags, its fp32 and bf16 matmul GFLOP/s, the fraction of the limit in the
dtype each recipe uses (4 x parameters FLOPs per token computed: a shared prefix counts once per
row there, once per sample in tokens/s), and the medians over pairs as
`ratio vs smolora-recipe: X.XX` and `ratio vs trl-strong: Y.YY`.

- smolora-recipe: SmoLoRA's trainer as its seed writes it. SFTTrainer on a text field (the
  chat-formatted example), batch 1 x accumulation 8, fp32, LoRA r=8 alpha 16 dropout 0.1 on
  q_proj/v_proj, max length 1024, learning rate 2e-4, TRL's defaults otherwise (gradient
  checkpointing on, TRL's loss path, the loss on every token).
- trl-strong: what a knowledgeable user of plain TRL + PEFT runs. Prompt-completion data (the
  loss on the answers), packing with `bfd` (padding-free), the weights in bf16 where this
  machine's probe found it faster (PEFT keeps the adapter in fp32), LoRA r=16 alpha 32 on all
  linear layers, no gradient checkpointing, fused AdamW, learning rate 2e-4, TRL's packing
  length (1024) and one packed row per step.
- smolora: the training worker's own recipe for the project defaults on this machine
  (training/recipe.py: the probed precision, step-level padding-free packing, checkpointing
  auto; the loss from the LM head at trained positions only, training/loss.py).

Usage: python bench/train_throughput.py [--pairs 2] [--short 128] [--long 48] [--data short|long]
                                       [--set training.gradient_checkpointing=on ...]
(--set changes a project setting of the smolora recipe only, as `smolora config` would.)
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

RECIPES = ("smolora-recipe", "trl-strong", "smolora")
HELDOUT = 16
TOPICS = ["rivers", "mountains", "bridges", "libraries", "gardens", "volcanoes", "harbours", "forests",
          "deserts", "glaciers", "islands", "canals", "lighthouses", "markets", "orchards", "observatories"]


def long_rows(n: int, start: int = 0) -> list[dict]:
    """Chat examples of about 280 tokens each, like the measurements in PERF-NOTES."""
    rows = []
    for i in range(start, start + n):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me about {topic} number {i}, and why people visit them."
        answer = " ".join(
            f"{topic.capitalize()} like number {i} are visited for reason {j}: they are old, they change with "
            f"the seasons, and each one has a story that locals like to tell."
            for j in range(6))
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def short_rows() -> list[dict]:
    from smolora_engine.demo import demo_train_file

    return [json.loads(line) for line in demo_train_file().read_text().splitlines() if line.strip()]


def data_set(name: str, examples: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): the held-out rows are never trained on."""
    if name == "short":
        rows = short_rows()
        if examples + HELDOUT > len(rows):
            raise SystemExit(f"the demo data has {len(rows)} rows: --short at most {len(rows) - HELDOUT}")
        return rows[:examples], rows[-HELDOUT:]
    return long_rows(examples), long_rows(HELDOUT, start=10_000)


def matmul_gflops(dtype_name: str, seconds: float = 2.0) -> float:
    """GFLOP/s of 1024^3 matmuls in this dtype, measured for about `seconds` after one warm-up (bf16
    without bf16 units runs at a few GFLOP/s: a fixed count of products would take minutes)."""
    import torch

    n = 1024
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, started = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - started < seconds:
        a @ b
        reps += 1
        if time.perf_counter() - started > 5 * seconds:
            break
    return 2 * n**3 * reps / (time.perf_counter() - started) / 1e9


def cpu_facts() -> tuple[str, list[str]]:
    from smolora_engine.precision import cpu_bf16_flags, cpu_model

    return cpu_model(), cpu_bf16_flags()


def counting(base_cls):
    """The trainer class, counting the non-pad tokens of each training forward pass: the data's (every
    sample with its whole prefix) and those the machine computed (a shared prefix once per row)."""
    from smolora_engine.training.row_padding import computed_tokens
    from smolora_engine.training.shared_prefix import tokens_saved

    class Counting(base_cls):
        counted = computed = 0

        def compute_loss(self, model, inputs, *a, **kw):
            if model.training:
                computed = computed_tokens(inputs)  # row padding not counted
                self.computed += computed
                self.counted += computed + tokens_saved(inputs)  # a shared prefix counts once per sample
            return super().compute_loss(model, inputs, *a, **kw)

    return Counting


class HeapInUse:
    """The most memory glibc's malloc had handed out (in use, not merely kept), sampled every 10 ms
    while training. Beside the peak RSS, which also holds the libraries, weights mapped from their
    file (a float32 model loaded as stored) and the freed blocks malloc keeps. None where malloc is
    not glibc's (macOS)."""

    def __init__(self):
        import ctypes
        import threading

        class Info(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

        self.peak_mb: float | None = None
        try:
            self._mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        except (OSError, AttributeError):
            return
        self._mallinfo2.restype = Info
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            info = self._mallinfo2()
            self.peak_mb = max(self.peak_mb, (info.uordblks + info.hblkhd) / 2**20)

    def stop(self) -> float | None:
        if self.peak_mb is not None:
            self._stop.set()
            self._thread.join()
        return self.peak_mb


def heldout_loss(model, rows) -> float:
    """Mean cross-entropy over the answer tokens of the held-out rows (their labels)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row.input_ids])
            labels = torch.tensor([row.labels])
            n = int((labels[:, 1:] != -100).sum())
            loss = model(input_ids=ids, labels=labels, use_cache=False).loss
            total, count = total + float(loss) * n, count + n
    return total / max(count, 1)


def smolora_run(project, folder: str, adjust=None):
    """The training worker's recipe for `project` on this CPU, ready for the trainer: (PEFT model, tokenizer,
    dataset, recipe, training arguments). `adjust` may change the planned recipe (heap_growth.py)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import set_seed

    from smolora_engine.data import prepare
    from smolora_engine.device import choose_device
    from smolora_engine.models import load_model
    from smolora_engine.training.apply_recipe import prepare_model
    from smolora_engine.training.recipe import plan_run
    from smolora_engine.training.trainer import lora_config, training_args

    choice = choose_device("cpu", project.model.dtype, for_training=True)
    model, tokenizer = load_model(project.model.base, device="cpu", dtype=choice.dtype)
    model.config.use_cache = False
    data = prepare(project.data, tokenizer, project.training.max_length)
    dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in data.train],
                                 "labels": [r.labels for r in data.train]})
    set_seed(project.training.seed)
    peft_model = get_peft_model(model, lora_config(project))
    plan, _estimate, _free = plan_run(project, choice, max(len(r.input_ids) for r in data.train),
                                      model.config, data.report.shared_prefix)
    if adjust is not None:
        plan = adjust(plan)
    prepare_model(peft_model, plan)
    args = training_args(project, Path(folder), "cpu", plan, has_eval=False)
    args.save_strategy, args.logging_steps = "no", 1
    return peft_model, tokenizer, dataset, plan, args


def worker(recipe: str, data_name: str, examples: int, out: Path, settings: list[str]) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from smolora_engine.data import prepare
    from smolora_engine.device import choose_device
    from smolora_engine.models import load_model
    from smolora_engine.project import DataSettings, Project
    from smolora_engine.project_fields import parse_assignment, set_value
    from smolora_engine.project_load import blocking
    from smolora_engine.quiet import quiet_libraries
    from smolora_engine.training.apply_recipe import prepare_trainer
    from smolora_engine.training.trainer import make_trainer_class

    quiet_libraries()
    train_rows, held_rows = data_set(data_name, examples)
    steps = examples // 8
    with tempfile.TemporaryDirectory() as folder:
        train_file, held_file = Path(folder) / "train.jsonl", Path(folder) / "heldout.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
        held_file.write_text("".join(json.dumps(r) + "\n" for r in held_rows))
        common = dict(output_dir=folder, logging_steps=1, save_strategy="no", report_to="none",
                      disable_tqdm=True, use_cpu=True, seed=0, data_seed=0)
        if recipe == "smolora":
            project = Project(name="bench")
            project.data.path = str(train_file)
            project.data.eval_ratio = 0
            project.training.max_steps = steps
            for assignment in settings:
                project, problems = set_value(project, *parse_assignment(assignment))
                if blocking(problems):
                    raise SystemExit("; ".join(str(p) for p in blocking(problems)))
            peft_model, tokenizer, dataset, plan, args = smolora_run(project, folder)
            dtype = plan.dtype
            trainer_cls, extra = counting(make_trainer_class()), {}
            described = " / ".join(plan.lines())
        else:
            strong = recipe == "trl-strong"
            dtype = choose_device("cpu", "auto", for_training=True).dtype if strong else "float32"
            model, tokenizer = load_model("smollm2-135m-instruct", device="cpu", dtype=dtype)
            model.config.use_cache = False
            set_seed(0)
            if strong:
                dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                                             for r in train_rows])
                lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                                  target_modules="all-linear")
                renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
                # TRL turns bf16 autocast on by default (SFTConfig.bf16 = None means True), also on CPU: where
                # the probe found bf16 slower (an EPYC without AMX: 1 GFLOP/s) that ran this recipe at 2 % of
                # its speed, so the choice is explicit, as the probe made it
                args = SFTConfig(learning_rate=2e-4, lr_scheduler_type="constant", optim="adamw_torch_fused",
                                 bf16=dtype == "bfloat16", fp16=False,
                                 packing=True, packing_strategy="bfd", per_device_train_batch_size=1,
                                 gradient_accumulation_steps=1, max_length=1024, num_train_epochs=1,
                                 **{"activation_checkpointing" if renamed else "gradient_checkpointing": False},
                                 **common)
            else:
                dataset = Dataset.from_list([{"text": tokenizer.apply_chat_template(r["messages"], tokenize=False)}
                                             for r in train_rows])
                lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, bias="none", task_type="CAUSAL_LM",
                                  target_modules=["q_proj", "v_proj"])
                args = SFTConfig(per_device_train_batch_size=1, gradient_accumulation_steps=8, learning_rate=2e-4,
                                 max_steps=steps, optim="adamw_torch", fp16=False, bf16=False, max_length=1024,
                                 dataset_text_field="text", **common)
            peft_model = get_peft_model(model, lora)
            trainer_cls, extra = counting(SFTTrainer), {}
            described = (f"{dtype}, packing bfd rows of 1024, all-linear r16, checkpointing off, fused AdamW"
                         if strong else "fp32, batch 1 x 8, q/v r8, TRL defaults (checkpointing on)")

        marks: list[tuple[float, int, int]] = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                marks.append((time.perf_counter(), trainer.counted, trainer.computed))

        torch.manual_seed(0)
        trainer = trainer_cls(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer,
                              callbacks=[Clock()], **extra)
        if recipe == "smolora":
            prepare_trainer(trainer, plan)
        heap = HeapInUse()
        trainer.train()
        in_use_mb = heap.stop()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # training's, not the held-out loss's
        held = prepare(DataSettings(path=str(held_file), eval_ratio=0), tokenizer, 1024).train
        loss = heldout_loss(peft_model, held)
    if len(marks) < 2:
        raise SystemExit(f"{recipe} trained {len(marks)} optimizer step(s): tokens/s needs two or more, so give "
                         f"--{data_name} at least 16 examples (8 per step)")
    (t0, k0, c0), (t1, k1, c1) = marks[0], marks[-1]
    _trainable, total = peft_model.get_nb_trainable_parameters()
    out.write_text(json.dumps({
        "recipe": recipe, "tokens_per_s": (k1 - k0) / (t1 - t0), "tokens": k1, "steps": len(marks),
        "computed_per_s": (c1 - c0) / (t1 - t0),
        "peak_rss_mb": peak_mb, "peak_in_use_mb": in_use_mb, "heldout_loss": loss,
        "parameters": total, "dtype": dtype, "described": described,
    }))


def in_use(result: dict) -> str:
    """What of a run's peak RSS malloc had handed out, where that is known."""
    return f" (in use {result['peak_in_use_mb']:.0f})" if result.get("peak_in_use_mb") else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--short", type=int, default=128, help="training examples of the short data set")
    parser.add_argument("--long", type=int, default=48, help="training examples of the long data set")
    parser.add_argument("--worker", choices=RECIPES)
    parser.add_argument("--data", choices=("short", "long"), help="one data set only (and the worker's)")
    parser.add_argument("--examples", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a project setting of the smolora recipe (repeatable)")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.examples, args.out, args.set)
        return
    from smolora_engine.device import choose_device
    from smolora_engine.models import ensure_model

    ensure_model("smollm2-135m-instruct")
    choose_device("cpu", "auto", for_training=True)  # the probe, once, before any run is timed
    model, flags = cpu_facts()
    gflops = {"float32": matmul_gflops("float32"), "bfloat16": matmul_gflops("bfloat16")}
    print(f"CPU: {model}; bf16/AMX flags: {', '.join(flags) or 'none'}; {os.cpu_count()} cores; "
          f"matmul 1024^3: {gflops['float32']:.0f} GFLOP/s fp32, {gflops['bfloat16']:.0f} GFLOP/s bf16", flush=True)
    ratios: dict[str, list[float]] = {"smolora-recipe": [], "trl-strong": []}
    with tempfile.TemporaryDirectory() as folder:
        for data_name, examples in (("short", args.short), ("long", args.long)):
            if args.data and data_name != args.data:  # one data set only
                continue
            results: dict[str, list[dict]] = {r: [] for r in RECIPES}
            for pair in range(args.pairs):
                for recipe in RECIPES:
                    out = Path(folder) / f"{data_name}-{recipe}-{pair}.json"
                    subprocess.run([sys.executable, __file__, "--worker", recipe, "--data", data_name,
                                    "--examples", str(examples), "--out", str(out),
                                    *(f"--set={a}" for a in args.set)], check=True,
                                   stdout=subprocess.DEVNULL)
                    r = json.loads(out.read_text())
                    results[recipe].append(r)
                    print(f"{data_name} pair {pair + 1} {recipe:>14}: {r['tokens_per_s']:7.1f} tokens/s, "
                          f"peak {r['peak_rss_mb']:6.0f} MB{in_use(r)}, held-out answer loss "
                          f"{r['heldout_loss']:.4f} after {r['tokens']} tokens in {r['steps']} steps", flush=True)
            print(f"{data_name} data ({examples} examples):")
            for recipe, runs in results.items():
                rate = statistics.median(r["tokens_per_s"] for r in runs)
                computed = statistics.median(r["computed_per_s"] for r in runs)
                limit = gflops[runs[0]["dtype"]] * 1e9 / (4 * runs[0]["parameters"])
                shared = (f" (computing {computed:.1f}: a shared prefix once per row)"
                          if computed < 0.99 * rate else "")
                peak = max(runs, key=lambda r: r["peak_rss_mb"])
                print(f"  {recipe:>14}: median {rate:7.1f} tokens/s{shared}, peak "
                      f"{peak['peak_rss_mb']:.0f} MB{in_use(peak)}, held-out loss "
                      f"{statistics.mean(r['heldout_loss'] for r in runs):.4f}, computing at {computed / limit:.0%} "
                      f"of the {runs[0]['dtype']} limit ({limit:.0f} tokens/s); {runs[0]['described']}")
            for baseline in ratios:
                pair_ratios = [b["tokens_per_s"] / a["tokens_per_s"]
                               for a, b in zip(results[baseline], results["smolora"])]
                ratios[baseline] += pair_ratios
                print(f"  ratio vs {baseline} on {data_name} data: {statistics.median(pair_ratios):.2f}")
    for baseline, values in ratios.items():
        print(f"ratio vs {baseline}: {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
