"""The recipe chosen for this machine (recipe.py) put to work: on the PEFT model before its trainer is made,
then on the trainer's rows. The worker, the SmoLoRA-compatible trainer and the benches take these
steps alike, so that what a bench measures is what a run does."""

from __future__ import annotations

from .attention import apply_attention
from .memory import keep_freed_memory
from .recipe import Recipe
from .row_padding import pad_rows
from .shared_prefix import share_prefixes


def prepare_model(model, recipe: Recipe) -> int:
    """Attention as the recipe chose it, adapters that keep their half-precision input once
    (lean_adapters.py), and, without checkpointing, glibc told to keep freed memory between steps.
    Returns how many adapters keep their input once (0 in float32)."""
    from .lean_adapters import lean_adapters  # torch at import: not for the CLI's light commands

    apply_attention(model, recipe)
    lean = lean_adapters(model)
    if not recipe.checkpointing:
        keep_freed_memory()
    return lean


def prepare_trainer(trainer, recipe: Recipe) -> None:
    """The trainer's collator made to feed the recipe's rows: a shared prefix computed once per row,
    and rows padded to the recipe's multiple."""
    share_prefixes(trainer, recipe)
    pad_rows(trainer, recipe)
