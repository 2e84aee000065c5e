"""A packed row's shared prefix: the tokens every sample of the row starts with, computed once.

Chat samples mostly start with the same tokens: the template's system prompt and the start of the
user's turn (24 tokens for SmolLM2, 44 % of the demo's samples), or a data set's own system prompt,
which can be hundreds of tokens. Packed as they are, a row of eight such samples computes those
tokens eight times with the same result each time: a sample's tokens attend only to its own
earlier tokens, and the prefix has the same tokens at the same positions in every sample.

With the prefix shared, a row holds the prefix once, with the first sample, then each later
sample's own tokens, their positions continuing from the prefix's length. Attention lets each of
those samples read the prefix and its own earlier tokens (attention.py). Every sample's tokens get
the outputs they get unpacked, and the gradients are the same sums, since the prefix's activations
receive the gradients of every sample that reads them. Only untrained tokens are shared: the prefix
and the first token after it (predicted, in the row, from the token before it) carry no label in
any sample, so the loss counts exactly the tokens it counts unpacked.

Counting: a run's tokens are still the data's, as if every sample held its own prefix, so that
tokens/s compares with any other recipe trained on the same samples.
"""

from __future__ import annotations

from ..data.prefix import MIN_SHARED, shared_prefix_length
from .row_padding import sample_bounds


class SharedPrefixCollator:
    """Wraps the padding-free collator: a batch whose samples share at least MIN_SHARED leading tokens
    becomes one row with the prefix once (`shared_prefix` says how long), any other batch is as the
    wrapped collator makes it."""

    def __init__(self, inner, minimum: int = MIN_SHARED):
        self.inner = inner
        self.minimum = minimum

    def __call__(self, examples: list[dict]) -> dict:
        if len(examples) < 2:
            return self.inner(examples)
        shared = shared_prefix_length([(e["input_ids"], e.get("labels", e["input_ids"])) for e in examples])
        if shared < self.minimum:
            return self.inner(examples)
        first, rest = examples[0], examples[1:]
        trimmed = [first, *({**e, "input_ids": e["input_ids"][shared:],
                            "labels": e.get("labels", e["input_ids"])[shared:]} for e in rest)]
        batch = self.inner(trimmed)
        positions = batch["position_ids"]
        start = len(first["input_ids"])
        for example in trimmed[1:]:
            own = len(example["input_ids"])
            positions[0, start:start + own] += shared
            start += own
        # The longest sample as attention sees it (prefix included), for the sliding-window check
        longest = max(len(e["input_ids"]) for e in examples)
        batch["max_length_q"] = batch["max_length_k"] = longest
        batch["shared_prefix"] = shared
        return batch


def tokens_saved(batch: dict) -> int:
    """The prefix tokens a batch did not repeat: what its row would hold more without sharing."""
    shared = batch.get("shared_prefix") or 0
    return shared * (len(sample_bounds(batch)) - 2) if shared else 0


def share_prefixes(trainer, recipe) -> None:
    """Feed the trainer rows that hold their samples' shared prefix once, where the recipe says so."""
    if recipe.shared_prefix:
        trainer.data_collator = SharedPrefixCollator(trainer.data_collator)
