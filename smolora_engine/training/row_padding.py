"""Packed rows padded to a multiple of ROW_MULTIPLE tokens, so a run's tensors come in a few sizes.

Every packed row has its own length, and so does every activation, gradient and temporary of its
pass. On a CPU, memory freed by one pass is reused by the next only where the next pass asks for
blocks that fit: glibc's malloc splits a freed block for a slightly smaller request and leaves the
rest, and per-shape caches (oneDNN's primitives) settle between the pieces. Step after step the
heap spread: on an AMD EPYC, ~500-token rows of random lengths grew it by about 90 MB per step
with no end in sight (1.9 GB after 4 steps, 3.4 GB after 24), where rows of one length, or of three
lengths, stopped at 1.8-1.9 GB after 8 steps (bench/heap_growth.py measures it).

The padding is one more segment at the end of the row: pad tokens at positions 0, 1, ..., with no
labels. Attention keeps it apart as it keeps any packed sample apart (sdpa per segment, a varlen
kernel, or transformers' mask from the positions), so no sample reads it; having no labels it adds
nothing to the loss or the gradients. A run's token counts (tokens/s) are the data's, without it.
"""

from __future__ import annotations

ROW_MULTIPLE = 32  # at most 32 row lengths up to 1,024 tokens; at most 31 pad tokens (about 6 % of a
# 500-token row, 11 % of the demo's ~270-token rows, in the matmuls; attention on them is a few 31-token squares)
PADDING = "row_padding"  # the batch key that says how many pad tokens end the row


class RowPadding:
    """Wraps a padding-free collator: each packed row (one row, its samples' bounds given) ends with
    a segment of pad tokens that brings its length to a multiple of `multiple`."""

    def __init__(self, inner, multiple: int, pad_token_id: int):
        self.inner = inner
        self.multiple = multiple
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        batch = self.inner(examples)
        ids = batch["input_ids"]
        if ids.shape[0] != 1 or "cu_seq_lens_q" not in batch:
            return batch
        length = ids.shape[1]
        extra = -length % self.multiple
        if not extra:
            return batch

        def grown(key: str, tail: torch.Tensor) -> torch.Tensor:
            row = batch[key]
            return torch.cat([row, tail.to(device=row.device, dtype=row.dtype)[None]], dim=1)

        batch["input_ids"] = grown("input_ids", torch.full((extra,), self.pad_token_id))
        batch["labels"] = grown("labels", torch.full((extra,), -100))
        batch["position_ids"] = grown("position_ids", torch.arange(extra))
        if "seq_idx" in batch:  # the sample each token belongs to (mamba-style kernels)
            batch["seq_idx"] = grown("seq_idx", torch.full((extra,), int(batch["seq_idx"][0, -1]) + 1))
        for key in ("cu_seq_lens_q", "cu_seq_lens_k"):
            bounds = batch[key]
            batch[key] = torch.cat([bounds, bounds.new_tensor([length + extra])])
        for key in ("max_length_q", "max_length_k"):
            if key in batch:
                batch[key] = max(int(batch[key]), extra)
        batch[PADDING] = extra
        return batch


def padding(batch: dict) -> int:
    """The pad tokens that end a packed row (0 for any other batch)."""
    return int(batch.get(PADDING) or 0)


def sample_bounds(batch: dict):
    """A packed row's samples' cumulative lengths ([0, l1, l1 + l2, ...]), its padding segment left out."""
    bounds = batch["cu_seq_lens_q"]
    return bounds[:-1] if padding(batch) else bounds


def computed_tokens(batch: dict) -> int:
    """The data's tokens a training batch computed: its tokens less any padding."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()) - padding(batch)


def plan_row_padding(packing, device: str) -> tuple[int, str]:
    """(multiple, reason): packed rows on a CPU are padded to ROW_MULTIPLE tokens; elsewhere (1, "")."""
    if not packing.packed or device != "cpu":
        return 1, ""
    return ROW_MULTIPLE, (f"each row padded to a multiple of {ROW_MULTIPLE} tokens, so that memory freed by one "
                          "pass fits the next: rows of every length spread the heap step after step")


def pad_rows(trainer, recipe) -> None:
    """Feed the trainer rows padded as the recipe says (after any other wrapping of its collator)."""
    if recipe.row_multiple > 1:
        tokenizer = trainer.processing_class
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None) or 0
        trainer.data_collator = RowPadding(trainer.data_collator, recipe.row_multiple, pad)
