"""The tokens every sample starts with and none trains on: a packed row can compute them once
(training/shared_prefix.py), and the data check reports how many there are."""

from __future__ import annotations

from collections.abc import Sequence

MIN_SHARED = 8  # fewer shared tokens are not worth the per-sample attention over the prefix
IGNORED = -100


def shared_prefix_length(samples: Sequence[tuple[Sequence[int], Sequence[int]]]) -> int:
    """How many leading tokens all the (input_ids, labels) samples can share: the same ids, and
    neither they nor the token after them trained in any sample; every sample keeps a token of its own.
    One sample alone shares nothing."""
    if len(samples) < 2:
        return 0
    first = samples[0][0]
    length = min(len(ids) for ids, _ in samples) - 1
    for ids, labels in samples:
        common = 0
        limit = min(length, len(ids))
        while common < limit and ids[common] == first[common]:
            common += 1
        # the first trained token, looked for only as far as it could shorten the prefix
        trained = next((i for i in range(min(common + 1, len(labels))) if labels[i] != IGNORED), common + 1)
        length = min(common, trained - 1)
        if length <= 0:
            return 0
    return length
