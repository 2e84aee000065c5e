"""Memory: what training uses, what is free, the settings screen's estimate, and what to lower."""

from __future__ import annotations

import ctypes
import sys

from ..project import Project


MMAP_THRESHOLD_MAX = 32 << 20  # the largest M_MMAP_THRESHOLD glibc takes on a 64-bit machine


def keep_freed_memory(mapped_from: int | None = None) -> None:
    """Ask glibc to keep freed memory instead of returning it (and page-faulting it back) every step.

    Worth it without gradient checkpointing, where every step allocates and frees
    large activations; with checkpointing it only raises the peak (see the bench).
    Blocks of `mapped_from` bytes and more (the loss's chunk of logits: loss.py) still get a
    mapping of their own, returned when freed: in the heap, each pass's few such blocks left
    holes the next pass's smaller activations filled, so that the heap grew past them (on
    ~270-token samples, an AMD EPYC: peak RSS about 40 MB lower, tokens/s the same).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    if mapped_from:
        libc.mallopt(M_MMAP_THRESHOLD, min(mapped_from, MMAP_THRESHOLD_MAX))
    else:
        libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def memory_in_use_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def available_memory_mb(device: str) -> float | None:
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return free / 2**20
    import psutil

    return psutil.virtual_memory().available / 2**20


def estimate_memory_mb(project: Project, longest: int, device: str, dtype: str,
                       free_mb: float | None = None):
    """The settings screen's estimate (estimate.py) for the longest sample this run really has, with
    checkpointing `auto` resolved against `free_mb`; None when the model's facts cannot be read."""
    from ..estimate import FactsError, estimate_for, read_facts
    from ..models import ensure_model

    try:
        facts = read_facts(ensure_model(project.model.base))  # loaded already: no conversion happens here
    except FactsError:
        return None
    return estimate_for(facts, project, device, longest=longest, dtype=dtype, free_mb=free_mb)


def estimate_detail(estimate) -> dict[str, float]:
    """An estimate's parts and total in MB, as the memory event carries them."""
    mb = 2**20
    detail = {name: size / mb for name, size in estimate.parts()}
    detail["total"] = estimate.total / mb
    return detail


def memory_advice(project: Project, recipe=None) -> str:
    """Which settings to lower when training does not fit, most effective first."""
    t = project.training
    advice = []
    every_layer = (recipe.checkpointing and recipe.checkpoint_every == 1 if recipe is not None
                   else t.gradient_checkpointing == "on")
    if not every_layer:
        advice.append("set training.gradient_checkpointing = \"on\" (every layer)")
    if recipe is not None and recipe.packing.packed and recipe.packing.micro_batch > t.batch_size:
        advice.append(f"set training.packing = \"off\" (a pass then holds {t.batch_size} sample(s), "
                      f"not {recipe.packing.micro_batch})")
    if t.batch_size > 1:
        advice.append(f"lower training.batch_size (now {t.batch_size}) and raise training.grad_accum")
    advice.append(f"lower training.max_length (now {t.max_length})")
    if project.lora.r > 8:
        advice.append(f"lower lora.r (now {project.lora.r})")
    return ", or ".join(advice)
