"""The recipe chosen for the machine at hand: precision, padding-free packing, gradient checkpointing.

Each choice comes with the reason the worker logs (and the settings screen shows):
- precision: `model.dtype = "auto"` follows a probe of this machine (precision.py);
- packing: the samples of one optimizer step are concatenated into rows of at most
  PACK_TOKENS tokens, with position ids restarting at each sample, so attention never
  crosses samples (transformers builds the block-diagonal mask from the position ids)
  and no sample is padded. The samples per optimizer step (batch_size x grad_accum)
  and the loss (a sum over trained tokens divided by their count over the whole step)
  stay what they are unpacked; only the number of forward passes changes;
- attention on packed rows: flash-attention's varlen kernels where the model loaded them (CUDA
  with flash-attn installed); on CPU and MPS sdpa once per sample (attention.py), since sdpa
  alone would compute each row's whole square under the mask; on CUDA without flash-attn, sdpa
  under the mask (a per-sample loop there is unmeasured: no GPU was at hand);
- a shared prefix: where per-sample sdpa runs, the untrained tokens every sample starts with
  (a chat template's system prompt) are computed once per packed row (shared_prefix.py);
- row padding: on a CPU, each packed row ends with a few pad tokens that bring it to a multiple
  of 32, so that a run's tensors come in a few sizes and the memory one pass frees fits the next
  (row_padding.py);
- gradient checkpointing `auto`: off when the step fits comfortably in free memory
  without it (it costs about 20-40 % on CPU), on otherwise; and where checkpointing only every
  n-th layer is enough to fit (n of 4, 3 or 2, the largest that fits), only those, which
  recomputes less (on ~270-token samples on an EPYC: 251 tokens/s every 2nd layer against 296
  off and 185 every layer, at a peak RSS of 1.65 GB against 2.07 and 1.35).

Light: no torch at import (the settings screen uses the planning functions).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..data.prefix import MIN_SHARED
from .row_padding import plan_row_padding

PACK_TOKENS = 1024  # tokens per packed row: long enough to keep the matmuls busy, short enough to bound a
# pass's activations: on an EPYC, rows of ~540 tokens trained samples of ~270 tokens 14 % faster than rows of
# ~1080, in 1.3 GB less (measured before attention.py, when sdpa still computed each row's whole square)
COMFORTABLE = 0.5  # checkpointing auto stays off while the step needs at most half the free memory
PARTIAL_EVERY = (4, 3, 2)  # auto may checkpoint only every n-th layer, the largest n whose step fits
SEGMENTS = "sdpa_segments"  # attention.NAME, named here without importing torch
PACKED_ATTENTION = ("sdpa", SEGMENTS, "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclass(frozen=True)
class Packing:
    packed: bool
    micro_batch: int  # samples per forward pass
    accum: int  # forward passes per optimizer step
    reason: str


@dataclass(frozen=True)
class Recipe:
    dtype: str
    dtype_reason: str
    packing: Packing
    checkpointing: bool
    checkpointing_reason: str
    attention: str | None = None  # the attention implementation to train with (None: as loaded)
    attention_reason: str = ""
    shared_prefix: int = 0  # leading tokens a packed row computes once (0: each sample computes its own)
    shared_prefix_reason: str = ""
    row_multiple: int = 1  # packed rows padded to a multiple of this many tokens (row_padding.py; 1: not padded)
    row_multiple_reason: str = ""
    checkpoint_every: int = 1  # with checkpointing: every layer (1), or only every n-th one

    def lines(self) -> list[str]:
        p = self.packing
        passes = f"{p.accum} pass{'es' if p.accum != 1 else ''} per step"
        shape = (f"{p.micro_batch} samples per packed row x {passes}" if p.packed
                 else f"batch {p.micro_batch} x {passes}")
        return [f"precision: {self.dtype} ({self.dtype_reason})",
                f"packing: {'on' if p.packed else 'off'}, {shape} ({p.reason})",
                f"gradient checkpointing: {checkpointing_label(self.checkpointing, self.checkpoint_every)} "
                f"({self.checkpointing_reason})",
                *([f"attention: {self.attention} ({self.attention_reason})"] if self.attention else []),
                *([f"shared prefix: {'on' if self.shared_prefix else 'off'} ({self.shared_prefix_reason})"]
                  if p.packed and self.shared_prefix_reason else []),
                *([f"row padding: {self.row_multiple_reason}"] if self.row_multiple > 1 else [])]


def plan_attention(packing: Packing, attention: str | None, device: str = "cpu") -> tuple[str | None, str]:
    """The attention that keeps packed samples apart at the least cost, with the reason."""
    if attention is None:
        return None, ""
    if not packing.packed:
        return attention, "as loaded: rows are not packed"
    if attention == "sdpa" and device == "cuda":  # per-sample launches, each reading the bounds back: not measured
        return attention, ("as loaded: the mask keeps packed samples apart; install flash-attn for varlen kernels "
                           "that skip the masked blocks")
    if attention == "sdpa":
        return SEGMENTS, ("sdpa once per packed sample: without a varlen kernel sdpa would compute the whole row "
                          "and mask the rest away")
    if attention.startswith("flash_attention"):
        return attention, "its varlen kernels attend within each packed sample"
    return attention, "as loaded: the mask transformers builds keeps packed samples apart"


def plan_shared_prefix(packing: Packing, attention: str | None, shared: int, longest: int,
                       window: int | None = None, setting: str = "auto") -> tuple[int, str]:
    """How many leading tokens a packed row computes once, with the reason: the untrained tokens every
    sample starts with, where per-sample sdpa lets several samples read one prefix."""
    if not packing.packed:
        return 0, ""
    if setting == "off":
        return 0, "training.shared_prefix = off"
    if shared < MIN_SHARED:
        return 0, (f"the samples share only {shared} untrained tokens at the start" if shared
                   else "the samples do not start with the same untrained tokens")
    if attention != SEGMENTS:
        return 0, (f"every sample starts with the same {shared} untrained tokens, but only per-sample sdpa lets "
                   f"several samples read one copy; this run uses {attention}")
    if window and longest > window:
        return 0, (f"a sliding window of {window} tokens is shorter than the longest sample ({longest}): those "
                   "layers keep samples apart by a mask")
    return shared, (f"the {shared} untrained tokens every sample starts with are computed once per packed row, "
                    f"not once per sample")


def plan_packing(setting: str, batch_size: int, grad_accum: int, longest: int,
                 attention: str | None = None) -> Packing:
    """How the samples of one optimizer step are fed: packed rows, or batches as the settings say."""
    if setting == "off":
        return Packing(False, batch_size, grad_accum, "training.packing = off")
    if attention is not None and attention not in PACKED_ATTENTION:
        return Packing(False, batch_size, grad_accum,
                       f"packing needs sdpa, eager or flash attention to keep packed samples apart; this model "
                       f"uses {attention}")
    group = batch_size * grad_accum
    if group == 1:
        return Packing(False, 1, 1, "one sample per step: nothing to pack")
    fits = max(1, PACK_TOKENS // max(longest, 1))
    micro = max(d for d in range(1, group + 1) if group % d == 0 and d <= fits)
    if micro == 1:
        return Packing(False, 1, group, f"samples up to {longest} tokens: no two fit in a {PACK_TOKENS}-token row")
    return Packing(True, micro, group // micro,
                   f"{group} samples per step, the longest {longest} tokens, rows of up to {PACK_TOKENS}")


def plan_checkpointing(setting: str, without_mb: float | None, available_mb: float | None) -> tuple[bool, str]:
    """Whether to recompute activations: as set, or (auto) only when the step would not fit comfortably."""
    if setting in ("on", "off"):
        return setting == "on", f"training.gradient_checkpointing = {setting}"
    if without_mb is None:
        return True, "auto: the memory a step needs is not known for this model, so the safe choice"
    if available_mb is None:
        return True, "auto: the memory free on this machine is not known, so the safe choice"
    need, free = without_mb / 1024, available_mb / 1024
    if without_mb <= COMFORTABLE * available_mb:
        return False, f"auto: the step needs about {need:.1f} GiB without it, {free:.1f} GiB is free"
    return True, f"auto: without it the step would need about {need:.1f} GiB of the {free:.1f} GiB free"


def checkpointing_label(checkpointing: bool, every: int = 1) -> str:
    if not checkpointing:
        return "off"
    if every <= 1:
        return "on"
    return f"on every {every}{'nd' if every == 2 else 'rd' if every == 3 else 'th'} layer"


@functools.cache
def partial_checkpointing_supported() -> bool:
    """Whether transformers' Trainer can checkpoint only every n-th layer (`every_n_layers` of
    activation_checkpointing_kwargs, there in 5.25). Read once: the settings screen estimates at every key."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(part) for part in version("transformers").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (5, 25)


def plan_partial(setting: str, every_mb: dict[int, float], available_mb: float | None,
                 supported: bool = True) -> tuple[int, str]:
    """Where `auto` turned checkpointing on because the step would not fit comfortably without it: the
    largest n (fewest layers recomputed) for which checkpointing only every n-th layer fits comfortably
    (`every_mb`: the step's memory for each n), with what to add to the reason; (1, "") for every layer."""
    if setting != "auto" or available_mb is None or not supported:
        return 1, ""
    for every in sorted(every_mb, reverse=True):
        if every_mb[every] <= COMFORTABLE * available_mb:
            label = checkpointing_label(True, every).removeprefix("on ")
            return every, f"; {label} is enough (about {every_mb[every] / 1024:.1f} GiB) and recomputes less"
    return 1, ""


def choose_recipe(project, choice, longest: int, model_config, estimate, shared: int = 0) -> Recipe:
    """The worker's recipe: the device choice's precision, packing for this model's attention and
    data, the prefix its rows share (`shared`: the data's untrained leading tokens), and
    checkpointing as the memory estimate (made with checkpointing auto resolved) says."""
    t = project.training
    attention = getattr(model_config, "_attn_implementation", None)
    if project.model.trust_remote_code:
        attention = "its own code"  # remote code may build its own mask, blind to packed position ids
    packing = plan_packing(t.packing, t.batch_size, t.grad_accum, min(longest, t.max_length), attention)
    every = 1
    if estimate is not None:
        checkpointing, reason, every = estimate.checkpointing, estimate.checkpointing_reason, estimate.checkpoint_every
    else:
        checkpointing, reason = plan_checkpointing(t.gradient_checkpointing, None, None)
    trained_with, attention_reason = plan_attention(packing, attention, choice.device)
    window = getattr(model_config, "sliding_window", None)
    return Recipe(choice.dtype, choice.dtype_reason, packing, checkpointing, reason, trained_with, attention_reason,
                  *plan_shared_prefix(packing, trained_with, shared, min(longest, t.max_length),
                                      window if isinstance(window, int) else None, t.shared_prefix),
                  *plan_row_padding(packing, choice.device), checkpoint_every=every)


def plan_run(project, choice, longest: int, model_config, shared: int = 0):
    """The recipe for a run on this machine, with the memory estimate behind its checkpointing
    choice and the free memory it was weighed against: (recipe, estimate or None, free MB or None)."""
    from .memory import available_memory_mb, estimate_memory_mb

    available = available_memory_mb(choice.device)
    estimate = estimate_memory_mb(project, longest, choice.device, choice.dtype, available)
    return choose_recipe(project, choice, longest, model_config, estimate, shared), estimate, available
