"""Rows padded to a multiple of ROW_MULTIPLE tokens on a CPU, so a run's tensors come in a few sizes.

Every row has its own length, and so does every activation, gradient and temporary of its pass. On
a CPU, memory freed by one pass is reused by the next only where the next pass asks for blocks that
fit: glibc's malloc splits a freed block for a slightly smaller request and leaves the rest, and
per-shape caches (oneDNN's primitives) settle between the pieces. Step after step the heap spread:
on an AMD EPYC, packed ~500-token rows of random lengths grew it by about 90 MB per step with no end
in sight (1.9 GB after 4 steps, 3.4 GB after 24), where rows of one length, or of three lengths,
stopped at 1.8-1.9 GB after 8 steps; unpacked samples of 100-350 tokens, one per pass, took it
from 739 MB to 1,213 in 16 steps, with the memory in use doubling (bench/heap_growth.py measures it).

In a packed row the padding is one more segment at the end: pad tokens at positions 0, 1, ..., with
no labels. Attention keeps it apart as it keeps any packed sample apart (sdpa per segment, a varlen
kernel, or transformers' mask from the positions), so no sample reads it. An unpacked batch (rows
of one sample each) gets pad tokens after its last column, with no labels: a causal model's tokens
never read later positions, so its outputs are unchanged. Where the batch's attention mask is all
ones (or absent) the pad tokens take ones too, so attention keeps its causal fast path; otherwise
zeros, as the collator's own padding. An unpacked row is padded only up to the run's max_length,
so no position goes past what the data could reach, and a batch with a per-token key other than
ids, labels, mask and positions (a multimodal collator's token types) is left as it came. Having
no labels, the padding adds nothing to the loss or the gradients, and a run's token counts
(tokens/s) are the data's, without it.
"""

from __future__ import annotations

ROW_MULTIPLE = 32  # at most 32 row lengths up to 1,024 tokens; at most 31 pad tokens (about 6 % of a
# 500-token row, 11 % of the demo's ~270-token rows, in the matmuls; attention on them is a few 31-token squares)
UNPACKED_KEYS = ("input_ids", "labels", "attention_mask", "position_ids")  # the per-token keys extended
PADDING = "row_padding"  # the batch key: the pad tokens that end its rows and that its mask (or, without
# one, its shape) counts as tokens


class RowPadding:
    """Wraps a collator: each packed row (one row, its samples' bounds given) ends with a segment of pad
    tokens that brings its length to a multiple of `multiple`; an unpacked batch gets pad columns to
    the same multiple, up to `max_length`."""

    def __init__(self, inner, multiple: int, pad_token_id: int, max_length: int | None = None):
        self.inner = inner
        self.multiple = multiple
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.inner(examples)
        if batch["input_ids"].shape[0] == 1 and "cu_seq_lens_q" in batch:
            return self._packed(batch)
        return self._unpacked(batch)

    def _unpacked(self, batch: dict) -> dict:
        import torch

        ids = batch["input_ids"]
        rows, length = ids.shape
        extra = -length % self.multiple
        if self.max_length:
            extra = min(extra, max(self.max_length - length, 0))
        if not extra or any(key not in UNPACKED_KEYS and isinstance(value, torch.Tensor)
                            and tuple(value.shape[:2]) == (rows, length) for key, value in batch.items()):
            return batch  # (a per-token key this padding does not know how to extend: the batch as it came)
        mask = batch.get("attention_mask")
        counted = mask is None or bool(mask.all())  # the fast causal path stays; else as the collator pads

        for key, value in (("input_ids", self.pad_token_id), ("labels", -100), ("attention_mask", int(counted))):
            if key in batch:
                batch[key] = _extended(batch[key], torch.full((extra,), value))
        if "position_ids" in batch:
            positions = batch["position_ids"]
            batch["position_ids"] = _extended(positions, positions[:, -1:] + torch.arange(1, extra + 1))
        batch[PADDING] = rows * extra if counted else 0
        return batch

    def _packed(self, batch: dict) -> dict:
        import torch

        ids = batch["input_ids"]
        length = ids.shape[1]
        extra = -length % self.multiple
        if not extra:
            return batch

        batch["input_ids"] = _extended(batch["input_ids"], torch.full((extra,), self.pad_token_id))
        batch["labels"] = _extended(batch["labels"], torch.full((extra,), -100))
        batch["position_ids"] = _extended(batch["position_ids"], torch.arange(extra))
        if "seq_idx" in batch:  # the sample each token belongs to (mamba-style kernels)
            batch["seq_idx"] = _extended(batch["seq_idx"], torch.full((extra,), int(batch["seq_idx"][0, -1]) + 1))
        for key in ("cu_seq_lens_q", "cu_seq_lens_k"):
            bounds = batch[key]
            batch[key] = torch.cat([bounds, bounds.new_tensor([length + extra])])
        for key in ("max_length_q", "max_length_k"):
            if key in batch:
                batch[key] = max(int(batch[key]), extra)
        batch[PADDING] = extra
        return batch


def _extended(column, tail):
    """`column` (rows x length) with `tail` (its columns to add, or one row of them for every row) after it,
    in the column's dtype and on its device."""
    import torch

    return torch.cat([column, tail.to(column).expand(column.shape[0], -1)], dim=1)


def padding(batch: dict) -> int:
    """The pad tokens row padding added that the batch's mask (or shape) counts: those that end a packed
    row, or an unpacked batch's pad columns where its mask took ones for them (0 for any other batch)."""
    return int(batch.get(PADDING) or 0)


def sample_bounds(batch: dict):
    """A packed row's samples' cumulative lengths ([0, l1, l1 + l2, ...]), its padding segment left out."""
    bounds = batch["cu_seq_lens_q"]
    return bounds[:-1] if padding(batch) else bounds


def computed_tokens(batch: dict) -> int:
    """The data's tokens a training batch computed: its tokens less any padding."""
    mask = batch.get("attention_mask")
    return (int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())) - padding(batch)


def plan_row_padding(packing, device: str) -> tuple[int, str]:
    """(multiple, reason): rows on a CPU, packed or not, are padded to ROW_MULTIPLE tokens; elsewhere (1, "")."""
    if device != "cpu":
        return 1, ""
    rows = "each row" if packing.packed else "each batch"
    return ROW_MULTIPLE, (f"{rows} padded to a multiple of {ROW_MULTIPLE} tokens, so that memory freed by one "
                          "pass fits the next: rows of every length spread the heap step after step")


def pad_rows(trainer, recipe) -> None:
    """Feed the trainer rows padded as the recipe says (after any other wrapping of its collator)."""
    if recipe.row_multiple > 1:
        tokenizer = trainer.processing_class
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None) or 0
        trainer.data_collator = RowPadding(trainer.data_collator, recipe.row_multiple, pad,
                                           getattr(trainer.args, "max_length", None))
