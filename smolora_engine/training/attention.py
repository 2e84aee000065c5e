"""Attention for packed rows where no varlen kernel exists: each sample's own causal attention.

A packed row holds several samples, position ids restarting at each. transformers keeps them
apart with a block-diagonal causal mask, and on CUDA flash-attention's varlen kernels skip the
blocks off the diagonal. sdpa on CPU (and MPS) has no such kernel: it computes the whole row's
square and masks most of it away, so rows of eight 55-token samples do eight times the
attention work they need (measured: 17 % of an optimizer step on an EPYC).

`sdpa_segments` is sdpa run once per sample, each causal on its own tokens, with the sample
bounds the padding-free collator already sends (`cu_seq_lens_q`, as for flash-attention). Any
call without them (eval, generation with a cache, padded batches) is plain sdpa with the mask
transformers built, so the implementation is correct for every input and only faster for
packed rows. A sliding-window layer whose window is shorter than a sample also takes the masked
path, since per-sample causal attention would see past the window.
"""

from __future__ import annotations

from itertools import pairwise

from .recipe import SEGMENTS as NAME


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      is_causal=None, **kwargs):
    """sdpa per packed sample when the row's sample bounds are given, plain sdpa otherwise."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    window = getattr(module, "sliding_window", None)
    if (bounds is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]
            or kwargs.get("position_bias") is not None
            or (window and int(kwargs.get("max_length_q") or query.shape[2]) > window)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    edges = bounds.tolist()
    outputs = [sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                                      dropout=dropout, scaling=scaling, is_causal=True)[0]
               for a, b in pairwise(edges) if b > a]
    return torch.cat(outputs, dim=1), None


def register() -> str:
    """Make `sdpa_segments` an attention implementation transformers knows, with sdpa's masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, segment_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def apply_attention(model, recipe) -> None:
    """Train with the recipe's attention (the model as loaded, PEFT-wrapped or not)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if recipe.attention and recipe.attention != inner.config._attn_implementation:
        if recipe.attention == NAME:
            register()
        inner.set_attn_implementation(recipe.attention)
