"""The project: every setting of one fine-tune, with its default, its one-line doc and its check.

A project is saved as TOML (written with tomli-w, atomically; projects.py). Reading one,
with every problem named, is project_load.py; a setting by its dotted key, the presets and
the reference docs are project_fields.py. Unknown keys are kept here (written back on
save), never silently dropped.

This module is light (no torch): the TUI imports it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import tomli_w

from .evaluation.checks import checks_problem

SCHEMA_VERSION = 1

# A check takes the value (already of the right type) and returns what is wrong, or None.
Check = Callable[[Any], "str | None"]


def setting(default: Any, doc: str, check: Check | None = None, choices: tuple[str, ...] = (),
            warn: Check | None = None) -> Any:
    """A dataclass field with a default, a one-line doc, an optional check or set of choices, and an
    optional `warn`: a value that is valid but far outside the sensible range is saved with a warning."""
    meta = {"doc": doc, "check": check, "choices": choices, "warn": warn}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def positive_int(v: int) -> str | None:
    return None if v > 0 else "a positive integer"


def non_negative_int(v: int) -> str | None:
    return None if v >= 0 else "an integer >= 0"


def positive_number(v: float) -> str | None:
    return None if math.isfinite(v) and v > 0 else "a positive number"


def non_negative_number(v: float) -> str | None:
    return None if math.isfinite(v) and v >= 0 else "a number >= 0"


def fraction_below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else "a number from 0 up to (not including) 1"


def non_empty_list(v: list) -> str | None:
    return None if v else "a non-empty list of strings"


def column_names(v: dict) -> str | None:
    return None if all(isinstance(name, str) for name in v.values()) else "a table of column names (strings)"


def outside(low: float, high: float, usual: str, below: str, above: str) -> Check:
    """A warning for values outside [low, high]: what usually works, and what happens otherwise."""
    def check(v: float) -> str | None:
        if v < low:
            return f"far below the usual range ({usual}): {below}"
        if v > high:
            return f"far above the usual range ({usual}): {above}"
        return None
    return check


@dataclass
class ModelSettings:
    base: str = setting(
        "smollm2-135m-instruct",
        "Base model: 'smollm2-135m-instruct' (embedded, works offline), a local Hugging Face "
        "model folder, or a hub id already in the local Hugging Face cache.",
    )
    trust_remote_code: bool = setting(
        False, "Allow the model's own Python code to run (only for models you trust)."
    )
    device: str = setting(
        "auto", "Where to train and run: auto picks cuda, then mps, then cpu.",
        choices=("auto", "cuda", "mps", "cpu"),
    )
    dtype: str = setting(
        "auto", "Precision of the frozen weights and their compute (the adapter's weights and optimizer state "
        "stay float32; in bfloat16 its products run in bfloat16, as torch.autocast computes them): auto is "
        "bfloat16 where a probe of this machine shows it trains faster at the same loss, float32 otherwise.",
        choices=("auto", "float32", "bfloat16", "float16"),
    )


@dataclass
class DataSettings:
    path: str = setting("", "The training data: a file or folder (txt, md, jsonl, json, csv, tsv, parquet, "
                            "a `save_to_disk` folder) or a cached hub dataset id.")
    eval_path: str = setting("", "A separate evaluation file; when empty, eval_ratio of the data is held out.")
    format: str = setting(
        "auto", "How to read the data: auto decides from the file extension.",
        choices=("auto", "text", "jsonl", "json", "csv", "tsv", "parquet", "arrow", "hub"),
    )
    shape: str = setting(
        "auto", "What each row is: auto detects it from the columns.",
        choices=("auto", "text", "instruction", "prompt_completion", "chat"),
    )
    text_split: str = setting(
        "line", "For text files: one sample per line, per paragraph (blank-line separated) or per file.",
        choices=("line", "paragraph", "file"),
    )
    columns: dict = setting(
        {}, "Column mapping for non-standard names, e.g. {text = \"body\"} or {prompt = \"ask\", completion = \"reply\"}.",
        column_names,
    )
    pair_format: str = setting(
        "auto", "Prompt/completion rows: chat renders them as a user and an assistant turn through the model's "
        "chat template, raw as prompt + completion (for base models); auto: chat when the model has a template.",
        choices=("auto", "chat", "raw"),
    )
    system_prompt: str = setting(
        "", "System message for conversations that have none (empty: the chat template's own default). "
        "Chat, serve and the Ollama Modelfile use the one the run trained with.",
    )
    template_options: dict = setting(
        {}, "Extra variables for the chat template, e.g. {enable_thinking = false} for Qwen3; "
        "used in training and in chat alike.",
    )
    chunk_size: int = setting(0, "Split long texts into pieces of this many units (0: no chunking).", non_negative_int)
    chunk_unit: str = setting("tokens", "What chunk_size counts: tokens (model tokenizer) or words (as SmoLoRA).",
                              choices=("tokens", "words"))
    dedupe: bool = setting(True, "Drop exact duplicate samples (the count is reported).")
    eval_ratio: float = setting(0.1, "Fraction of the data held out for evaluation when no eval_path is given.",
                                fraction_below_one)
    split_seed: int = setting(42, "Seed of the train/eval split.", non_negative_int)
    over_length: str = setting(
        "truncate", "Samples longer than training.max_length are truncated or dropped (counted either way).",
        choices=("truncate", "drop"),
    )


@dataclass
class LoraSettings:
    r: int = setting(16, "LoRA rank: the size of the adapter matrices.", positive_int, warn=outside(
        1, 512, "4 to 256", "", "the adapter grows toward the model's own size, with its memory and time"))
    alpha: float = setting(32.0, "LoRA alpha: the adapter's scale is alpha / r (or alpha / sqrt(r) with rslora).",
                           positive_number)
    dropout: float = setting(0.0, "Dropout on the adapter's input (0 is fastest; small data may like 0.05).",
                             fraction_below_one)
    target_modules: list = setting(
        ["all-linear"],
        "Linear layers that get an adapter, by module name (q_proj, qkv_proj, ...), or ['all-linear']: every "
        "linear layer of the decoder, whatever the architecture calls them, except the output head.",
        non_empty_list,
    )
    use_dora: bool = setting(False, "Weight-decomposed LoRA (DoRA): often better, slower per step.")
    use_rslora: bool = setting(False, "Rank-stabilised LoRA: scale alpha / sqrt(r), steadier at high ranks.")


@dataclass
class TrainingSettings:
    epochs: float = setting(1.0, "Passes over the training data (ignored when max_steps > 0).", positive_number)
    max_steps: int = setting(0, "Optimizer steps to train for; 0 means use epochs.", non_negative_int)
    learning_rate: float = setting(5e-4, "Peak learning rate.", positive_number, warn=outside(
        1e-6, 1e-2, "1e-5 to 1e-3 for LoRA", "the adapter will barely change",
        "the loss will likely diverge to NaN"))
    scheduler: str = setting("cosine", "Learning-rate schedule after warmup.",
                             choices=("cosine", "linear", "constant", "constant_with_warmup"))
    warmup_ratio: float = setting(0.05, "Fraction of the steps spent warming the learning rate up.",
                                  fraction_below_one)
    weight_decay: float = setting(0.0, "AdamW weight decay on the adapter weights.", non_negative_number)
    batch_size: int = setting(1, "Sequences per forward pass (1 avoids padding on CPU).", positive_int)
    grad_accum: int = setting(8, "Forward passes per optimizer step; effective batch = batch_size x grad_accum.",
                              positive_int)
    max_length: int = setting(1024, "Longest sample in tokens.", positive_int)
    packing: str = setting(
        "auto", "Padding-free packing: the samples of a step share rows (position ids restart per sample, "
        "attention never crosses them), so no token is padding; auto packs where the model's attention allows.",
        choices=("auto", "on", "off"))
    shared_prefix: str = setting(
        "auto", "A packed row holds the untrained tokens every sample starts with (such as a chat template's "
        "system prompt) once, and each sample reads that copy: the same loss and gradients from fewer tokens; "
        "auto shares them where the attention allows (per-sample sdpa).", choices=("auto", "off"))
    gradient_checkpointing: str = setting(
        "auto", "Recompute activations in the backward pass: much less memory, 20-40 % slower on CPU; "
        "auto turns it on only when a step would not fit comfortably in free memory without it, and then "
        "only on every 4th, 3rd or 2nd layer where that is enough.",
        choices=("auto", "on", "off"))
    eval_steps: int = setting(50, "Evaluate every this many steps when there is an eval split (0: only at the end).",
                              non_negative_int)
    save_steps: int = setting(50, "Save a resumable checkpoint every this many steps.", positive_int)
    keep_checkpoints: int = setting(3, "Checkpoints kept (the best one is always kept).", positive_int)
    early_stopping_patience: int = setting(
        0, "Stop after this many evals without improvement (0: never stop early).", non_negative_int)
    early_stopping_metric: str = setting(
        "auto", "What improves: eval_loss (lower), pass_rate of the eval checks (higher); "
        "auto: pass_rate when there are checks, else eval_loss. It also picks the best checkpoint.",
        choices=("auto", "eval_loss", "pass_rate"))
    keep_best: bool = setting(
        True, "Write the best checkpoint's adapter at the end (by early_stopping_metric), not the last one.")
    logging_steps: int = setting(1, "Emit a step event every this many optimizer steps.", positive_int)
    seed: int = setting(42, "Random seed of the run.", non_negative_int)
    report_to: str = setting(
        "none", "Also log the run's figures to TensorBoard or trackio, in the run folder beside events.jsonl "
        "(an optional extra: pip install 'smolora-tui[tensorboard]' or 'smolora-tui[trackio]').",
        choices=("none", "tensorboard", "trackio"))
    launcher: str = setting("none", "Multi-process launcher for several GPUs (or CPU processes).",
                            choices=("none", "torchrun", "accelerate"))
    num_processes: int = setting(1, "Processes started by the launcher.", positive_int)


@dataclass
class EvalSettings:
    prompts: str = setting(
        "", "Prompts the model answers at each eval: a JSONL, JSON or CSV file (prompt or messages, optional "
        "reference and checks per row) or a text file (a prompt per line); empty: the eval split's first rows.")
    samples: int = setting(4, "Prompts answered at each eval (0: none).", non_negative_int)
    max_new_tokens: int = setting(64, "Longest answer in tokens (greedy).", positive_int)
    checks: list = setting(
        [], "Checks on every answer: 'contains:TEXT', 'not_contains:TEXT', 'regex:PATTERN', 'max_words:N', "
        "'json'; a prompt's own checks come from its row.", checks_problem)
    time_limit_s: float = setting(60.0, "Seconds the answers may take at each eval; longer answers are cut.",
                                  positive_number)


@dataclass
class NotifySettings:
    command: str = setting(
        "", "Shell command the worker runs when a run ends (ntfy, a webhook, mail), with SMOLORA_STATUS, "
        "SMOLORA_RUN_ID, SMOLORA_PROJECT, SMOLORA_STEP, SMOLORA_LOSS, SMOLORA_PASS_RATE and SMOLORA_REASON set.")
    timeout_s: float = setting(30.0, "Seconds the command may run before it is killed.", positive_number)
    desktop: bool = setting(True, "The app also sends a desktop notification (notify-send, osascript) "
                                  "when a run it shows ends.")
    bell: bool = setting(True, "The app rings the terminal bell when a run it shows ends.")


@dataclass
class OutputSettings:
    export_format: str = setting("gguf", "Export format for llama.cpp / Ollama.", choices=("gguf",))
    export_quant: str = setting("q8_0", "GGUF tensor type (k-quants need llama.cpp's quantizer).",
                                choices=("q4_k_m", "q5_k_m", "q6_k", "q8_0", "f16", "q4_0", "q4_1", "q5_0", "q5_1"))


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "data": DataSettings,
    "lora": LoraSettings,
    "training": TrainingSettings,
    "eval": EvalSettings,
    "notify": NotifySettings,
    "output": OutputSettings,
}


@dataclass
class Project:
    name: str
    schema_version: int = SCHEMA_VERSION
    description: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    # Keys this version does not know, kept as found so a save never loses them.
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": self.schema_version, "name": self.name}
        if self.description:
            out["description"] = self.description
        for section in SECTIONS:
            out[section] = asdict(getattr(self, section))
        _merge(out, self.unknown)
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @property
    def effective_batch(self) -> int:
        return self.training.batch_size * self.training.grad_accum


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    unknown_key: bool = False
    warning: bool = False  # a valid value worth questioning: saved, and shown with the warning

    def __str__(self) -> str:
        return self.message


class ProjectError(Exception):
    """A project file that cannot be read, or settings that do not validate."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []


def _merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
              list: "a list of strings", dict: "a table"}
