"""The eval loss on packed rows: the number the one-sample-at-a-time loop gives, in a fraction of its time.

A packed run's eval loss is the mean over eval samples of each sample's mean loss over its
trained tokens: the HF loop computes it one sample per batch (training_args sets that), so
that packing does not change what it means. Fed one at a time, a 56-token sample leaves the
machine mostly idle (the demo's 25 eval samples took 7-9 s per eval on an EPYC). Here the
samples go through as training feeds them, in packed rows (with their shared prefix once),
and each trained position's loss is added to the sample its target belongs to; the division
per sample and the mean over samples are the loop's.
"""

from __future__ import annotations

from itertools import islice

CHUNK = 128  # positions per slice of logits: 128 x 49,152 float32 = 24 MB


def per_sample_loss(hidden, head, labels, bounds):
    """Each sample's mean loss over its trained tokens (0 for a sample with none): `hidden` and
    `labels` are one packed row's, `bounds` its samples' cumulative lengths ([0, l1, l1 + l2, ...])."""
    import torch
    import torch.nn.functional as F

    target = labels[0, 1:]
    keep = (target != -100).nonzero().squeeze(1)
    # the sample whose token is predicted at each trained position (its target's index in the row)
    owner = torch.searchsorted(bounds[1:].to(keep.dtype), keep + 1, right=True)
    picked = hidden[0, :-1].index_select(0, keep)
    losses = torch.cat([F.cross_entropy(head(picked[a:a + CHUNK]).float(), target[keep[a:a + CHUNK]],
                                        reduction="none") for a in range(0, len(keep), CHUNK)]
                       or [hidden.new_zeros(0, dtype=torch.float32)])
    samples = len(bounds) - 1
    sums = torch.zeros(samples, dtype=torch.float32, device=hidden.device).index_add_(0, owner, losses)
    counts = torch.zeros(samples, dtype=torch.float32, device=hidden.device).index_add_(
        0, owner, torch.ones_like(losses))
    return sums / counts.clamp(min=1)


def packed_eval_loss(lm, collator, dataset, samples_per_row: int, device) -> tuple[float, int]:
    """(mean over samples of their eval loss, samples): `lm` the causal LM (PEFT's base model, adapter
    active), `collator` the padding-free one training uses, `dataset` rows of input_ids and labels."""
    import torch

    from .row_padding import sample_bounds
    from .trainer import ROW_KEYS

    decoder, head = lm.get_decoder(), lm.get_output_embeddings()
    per_sample = []
    rows = iter(dataset)
    with torch.no_grad():
        while examples := [{"input_ids": r["input_ids"], "labels": r["labels"]}
                           for r in islice(rows, samples_per_row)]:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collator(examples).items()}
            hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False,
                             **{k: batch[k] for k in ROW_KEYS if k in batch}).last_hidden_state
            per_sample.append(per_sample_loss(hidden, head, batch["labels"], sample_bounds(batch)))
    losses = torch.cat(per_sample) if per_sample else torch.zeros(0)
    return (float(losses.mean()) if len(losses) else float("nan")), len(losses)
