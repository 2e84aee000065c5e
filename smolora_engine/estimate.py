"""What a base model is made of, and how much memory a LoRA fine-tune of it needs, without loading it.

`read_facts` reads a Hugging Face model folder's config.json and the headers of
its safetensors files (names and shapes, never the weights): the parameter
count and every linear layer an adapter can target. `estimate_training` turns
those facts and a project's settings into a memory estimate, broken down the
way a person tunes it (rank, batch size, length, checkpointing, precision).

Light (no torch): the TUI imports it and recomputes the estimate as settings are typed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GIB = 1024 ** 3
# The tensor names of embeddings and output heads: 2-D weights that are not adapter targets.
NOT_LINEAR = ("embed", "wte", "wpe", "lm_head", "embed_out", "output.weight", "shared")
# The training loss's logits are made this many positions at a time where the head stays frozen (training/loss.py).
LOSS_CHUNK = 128
# Config keys of models that change their logits after the head (a soft cap, a scale): their loss comes from
# the whole logits, as transformers computes them (training/trainer.py).
LOGITS_CHANGED = ("final_logit_softcapping", "logit_scale")
HEADS = ("lm_head", "embed_out")  # output heads' module names: an adapter on one trains the head
# Python and torch themselves (with the CUDA context on a GPU): rough figures, not in the model's files.
RUNTIME_BYTES = {"cpu": int(0.6 * GIB), "cuda": int(0.5 * GIB), "mps": int(0.6 * GIB)}


class FactsError(ValueError):
    """The folder is not a model this module can read."""


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    params: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    # Linear layers by their module name (the last part, as PEFT's target_modules takes it):
    # name -> [in_features, out_features, how many].
    linear: dict[str, list[int]] = field(default_factory=dict)
    # whether the logits are the output head's as it gives them (else the model scales or caps them)
    plain_logits: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe_layer(self, name: str) -> str:
        fan_in, fan_out, count = self.linear[name]
        return f"{name}  {fan_in}→{fan_out} ×{count}"


def _first(config: dict, *keys: str, default: int = 0) -> int:
    for key in keys:
        if isinstance(config.get(key), int):
            return config[key]
    return default


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: tensor name -> {dtype, shape, data_offsets}."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise FactsError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise FactsError(f"{path}: not a safetensors file (header length {length})")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def read_facts(folder: Path) -> ModelFacts:
    """The facts of the Hugging Face model in `folder` (config.json and safetensors headers only)."""
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FactsError(f"{config_path}: {exc}") from exc
    config = {**config.get("text_config", {}), **config}  # multimodal configs keep the decoder's inside
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head", default=1)
    vocab = _first(config, "vocab_size")
    facts = dict(
        architecture=(config.get("architectures") or [config.get("model_type", "unknown")])[0],
        hidden=hidden, layers=layers, heads=heads, vocab=vocab,
        kv_heads=_first(config, "num_key_value_heads", default=heads),
        intermediate=_first(config, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
        plain_logits=not any(config.get(key) for key in LOGITS_CHANGED) and config.get("logits_scaling", 1) == 1,
    )
    files = sorted(folder.glob("*.safetensors"))
    if not files:  # pytorch_model.bin only: counts from the config, no layer list
        params = layers * 12 * hidden * hidden + vocab * hidden
        return ModelFacts(params=params, **facts)
    params, linear = 0, {}
    for file in files:
        for name, tensor in safetensors_header(file).items():
            shape = tensor.get("shape") or []
            count = 1
            for dim in shape:
                count *= dim
            params += count
            if len(shape) == 2 and name.endswith(".weight") and not any(part in name for part in NOT_LINEAR) \
                    and not (vocab and vocab in shape):
                leaf = name.rsplit(".", 2)[-2]
                fan_out, fan_in = shape
                entry = linear.setdefault(leaf, [fan_in, fan_out, 0])
                entry[2] += 1
    return ModelFacts(params=params, linear=dict(sorted(linear.items())), **facts)


@dataclass(frozen=True)
class Estimate:
    """Bytes of each part of a training step's peak memory."""

    device: str
    dtype: str
    weights: int
    adapter_params: int
    adapter: int  # adapter weights, their gradients and AdamW's two moments (float32)
    activations: int
    logits: int
    runtime: int
    checkpointing: bool = True
    checkpointing_reason: str = ""
    checkpoint_every: int = 1  # with checkpointing: every layer (1), or only every n-th one
    packing: Any = None  # the recipe's Packing, when estimated for a project

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.activations + self.logits + self.runtime

    def parts(self) -> list[tuple[str, int]]:
        return [("weights", self.weights), ("adapter + optimizer", self.adapter),
                ("activations", self.activations), ("logits", self.logits), ("runtime", self.runtime)]

    def describe(self) -> str:
        parts = ", ".join(f"{name} {gib(size)}" for name, size in self.parts())
        return (f"≈ {gib(self.total)} to train on {self.device} in {self.dtype} "
                f"({self.adapter_params:,} adapter parameters): {parts}")


def gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB / 10 else f"{size / 1024 ** 2:.0f} MiB"


def targeted(facts: ModelFacts, targets: list[str]) -> dict[str, list[int]]:
    """The linear layers `targets` selects, as PEFT matches them (a module's name, or 'all-linear')."""
    if any(t == "all-linear" for t in targets):
        return dict(facts.linear)
    leaves = {t.rsplit(".", 1)[-1] for t in targets}
    return {name: shape for name, shape in facts.linear.items() if name in leaves}


def unmatched_targets(linear_names, targets: list[str]) -> list[str]:
    """The named targets that match no linear layer (PEFT adapts the others without a word)."""
    names = set(linear_names)
    return [t for t in targets if t != "all-linear" and t.rsplit(".", 1)[-1] not in names]


def targets_problem(linear_names, targets: list[str], model: str) -> str | None:
    """What to say when some of lora.target_modules match nothing in `model` (fused layers, another family)."""
    missing = unmatched_targets(linear_names, targets)
    if not missing:
        return None
    names = sorted(set(linear_names))
    return (f"lora.target_modules: {', '.join(missing)} match no linear layer of {model} (its layers: "
            f"{', '.join(names)}), so they get no adapter; use ['all-linear'] or names from that list")


def resolve_dtype(dtype: str, device: str) -> str:
    """Where 'auto' lands: the precision probe's choice once it has run here (precision.py), else
    bfloat16 on CUDA and float32 elsewhere, as before any probe."""
    if dtype != "auto":
        return dtype
    from .precision import cached_probe

    known = cached_probe(device) if device == "cpu" else None
    return known.chosen if known else "bfloat16" if device == "cuda" else "float32"


def estimate_training(facts: ModelFacts, *, r: int, targets: list[str], use_dora: bool, dropout: float,
                      batch_size: int, max_length: int, gradient_checkpointing: bool,
                      device: str = "cpu", dtype: str = "auto", checkpoint_every: int = 1) -> Estimate:
    """Peak memory of one training step on full-length batches (the worst case the settings allow).

    Per token and layer a decoder keeps its inputs (h), the attention projections (h + 2 kv),
    the attention output and residuals (about 6 h) and the MLP's intermediate tensors (about 4 I);
    with gradient checkpointing only each checkpointed layer's input is kept (every layer's, or with
    `checkpoint_every` n every n-th one's, the others keeping all of theirs), plus one layer recomputed
    at a time. The loss's logits: _loss_bytes.
    """
    dtype = resolve_dtype(dtype, device)
    size = BYTES.get(dtype, 4)
    layers = targeted(facts, targets)
    adapter_params = sum(count * r * (fan_in + fan_out) + (count * fan_out if use_dora else 0)
                         for fan_in, fan_out, count in layers.values())
    tokens = batch_size * max_length
    h, kv_dim = facts.hidden, facts.hidden * facts.kv_heads // max(facts.heads, 1)
    lora_per_layer = sum((r + (fan_in if dropout > 0 else 0)) * count
                         for fan_in, _out, count in layers.values()) / max(facts.layers, 1)
    per_layer = size * (8 * h + 2 * kv_dim + 4 * facts.intermediate + lora_per_layer)
    if gradient_checkpointing:
        checkpointed = -(-facts.layers // max(checkpoint_every, 1))  # layers 0, n, 2n, ... (transformers' choice)
        activations = tokens * (checkpointed * h * size + (facts.layers - checkpointed + 1) * per_layer)
    else:
        activations = tokens * facts.layers * per_layer
    return Estimate(
        device=device, dtype=dtype, weights=facts.params * size, adapter_params=adapter_params,
        adapter=adapter_params * 16, activations=int(activations), logits=_loss_bytes(facts, targets, tokens, size),
        runtime=RUNTIME_BYTES.get(device, RUNTIME_BYTES["cpu"]),
    )


def _loss_bytes(facts: ModelFacts, targets: list[str], tokens: int, size: int) -> int:
    """The loss's memory at its peak. Where the head stays frozen and gives the logits as they are, the
    training loss makes them LOSS_CHUNK positions at a time (training/loss.py): a chunk's float32 logits
    and, in half precision, the head's output or the softmax cast back, with the trained positions' hidden
    states and their gradient. Otherwise all the logits at once, in the weights' dtype and in float32, with
    their log-probabilities and gradient."""
    head_trained = any(t.rsplit(".", 1)[-1] in HEADS for t in targets)
    if facts.plain_logits and not head_trained:
        return (min(tokens, LOSS_CHUNK) * facts.vocab * (4 + (size if size < 4 else 0))
                + 2 * tokens * facts.hidden * size)
    return tokens * facts.vocab * (size + 12)


def estimate_for(facts: ModelFacts, project: Any, device: str, longest: int | None = None,
                 dtype: str | None = None, free_mb: float | None = None) -> Estimate:
    """`estimate_training` with a project's settings (`device` is where 'auto' lands on this machine).

    With `longest` (the data's longest sample in tokens) batches are that long when shorter than
    max_length: the peak of training on this data rather than the worst case the settings allow.
    `dtype` is the precision a worker has chosen (default: the project's, resolved for the device).
    The batch is what the recipe feeds one forward pass (packed samples, or batch_size), and
    gradient checkpointing `auto` is resolved against `free_mb` (the memory free for training).
    """
    from .training.recipe import (
        PARTIAL_EVERY,
        partial_checkpointing_supported,
        plan_checkpointing,
        plan_packing,
        plan_partial,
    )

    lora, training = project.lora, project.training
    if project.model.device != "auto":
        device = project.model.device
    length = min(training.max_length, longest or training.max_length)
    packing = plan_packing(training.packing, training.batch_size, training.grad_accum, length)

    def estimate(checkpointing: bool, every: int = 1) -> Estimate:
        return estimate_training(
            facts, r=lora.r, targets=list(lora.target_modules), use_dora=lora.use_dora, dropout=lora.dropout,
            batch_size=packing.micro_batch, max_length=length, gradient_checkpointing=checkpointing,
            device=device, dtype=dtype or project.model.dtype, checkpoint_every=every)

    without = estimate(False)
    checkpointing, reason = plan_checkpointing(training.gradient_checkpointing, without.total / 2**20, free_mb)
    every = 1
    if checkpointing:
        every, partial = plan_partial(training.gradient_checkpointing,
                                      {n: estimate(True, n).total / 2**20 for n in PARTIAL_EVERY}, free_mb,
                                      partial_checkpointing_supported())
        reason += partial
    chosen = estimate(True, every) if checkpointing else without
    return replace(chosen, checkpointing=checkpointing, checkpointing_reason=reason, checkpoint_every=every,
                   packing=packing)
