"""The recipe chosen for this machine (recipe.py) put to work: on the PEFT model before its trainer is made,
then on the trainer's rows. The worker, the SmoLoRA-compatible trainer and the benches take these
steps alike, so that what a bench measures is what a run does."""

from __future__ import annotations

from .attention import apply_attention, recast_attention_inputs
from .memory import keep_freed_memory
from .recipe import SEGMENTS, Recipe
from .row_padding import pad_rows
from .shared_prefix import share_prefixes


def prepare_model(model, recipe: Recipe) -> list[str]:
    """Attention as the recipe chose it, adapters that keep their half-precision input once
    (lean_adapters.py), and, without checkpointing, gated MLPs that keep their activation for the
    backward pass no longer (lean_mlp.py), norms and attention that keep no float32 copies of their
    half-precision inputs, and norm outputs the lean adapters keep as the norm's input (saved_casts.py),
    and glibc told to keep freed memory between steps.
    Returns what was made lean, as lines for the run's log."""
    import torch

    from .lean_adapters import lean_adapters  # torch at import: not for the CLI's light commands
    from .lean_mlp import lean_mlps
    from .loss import chunk_logits_bytes
    from .saved_casts import lean_norms

    apply_attention(model, recipe)
    lines = []
    lean = lean_adapters(model)
    if lean:
        lines.append(f"adapters: {lean} keep their {recipe.dtype} input once for the backward pass, not a float32 "
                     "copy each")
    if not recipe.checkpointing:
        mlps = lean_mlps(model)
        if mlps:
            lines.append(f"MLPs: {mlps} keep their gate and up projection for the backward pass, which computes the "
                         "activation and its product with the up projection again")
        weights = model.get_input_embeddings().weight  # what the layers compute in, as loaded
        half = weights.dtype in (torch.bfloat16, torch.float16)
        norms = lean_norms(model)
        if norms and half:
            lines.append(f"norms: {norms} keep their {recipe.dtype} input for the backward pass, which makes the "
                         "float32 copy again" + (", and their output for the adapters that read it" if lean else ""))
        marked = recast_attention_inputs(model)
        # attention.py computes a half-precision sample's attention in float32 on a CPU only
        if marked and half and recipe.attention == SEGMENTS and weights.device.type == "cpu":
            lines.append(f"attention per sample: float32 copies of its {recipe.dtype} query, key and value are cast "
                         "again in the backward pass, not kept")
        head = model.get_output_embeddings()
        keep_freed_memory(chunk_logits_bytes(head) if head is not None else None)
    return lines


def prepare_trainer(trainer, recipe: Recipe) -> None:
    """The trainer's collator made to feed the recipe's rows: a shared prefix computed once per row,
    and rows padded to the recipe's multiple."""
    share_prefixes(trainer, recipe)
    pad_rows(trainer, recipe)
