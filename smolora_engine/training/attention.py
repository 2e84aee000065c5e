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

A row with a shared prefix (shared_prefix.py) holds the prefix once, at the start of its first
sample; every later sample attends to the prefix's keys and then causally to its own. Such a row
has no masked path: the mask transformers builds from its positions would hide the prefix from
the later samples, so a layer that cannot take the per-sample path raises instead.
"""

from __future__ import annotations

import contextlib
from itertools import pairwise

from .recipe import SEGMENTS as NAME

RECASTS = "_smolora_recasts_saved_inputs"  # set on an attention module by recast_attention_inputs


def _recasting(module, query, key, value):
    """Where `recast_attention_inputs` marked `module` (training without checkpointing), the float32 copies of
    query, key and value made under this context are not kept for the backward pass but cast again there."""
    if not getattr(module, RECASTS, False):
        return contextlib.nullcontext()
    from .saved_casts import recast_saved

    return recast_saved(query, key, value)


def _sdpa(module, query, key, value, mask, **kwargs):
    """transformers' sdpa; on a CPU, a bf16 or fp16 sample's attention computed in float32.

    A CPU's sdpa backward in bf16 is far slower than in float32 on short samples (measured on an
    EPYC with avx512_bf16: 1.42 ms against 0.52 for a 55-token sample's forward and backward, 24 %
    of a bf16 training step); attention is a small part of the FLOPs, so float32 costs little there
    and is also the more exact. The output goes back to the layer's dtype. In a module that
    `recast_attention_inputs` marked, the float32 copies of query, key and value are not kept for the
    backward pass but made again there (saved_casts.py): 30 MB less on a 544-token pass of the demo's
    model. Only per packed sample: under a mask, sdpa takes grouped keys and values repeated, copies
    made after the cast."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dtype = query.dtype
    if query.device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return sdpa_attention_forward(module, query, key, value, mask, **kwargs)
    if mask is not None and mask.is_floating_point():  # an additive mask goes with the queries' dtype
        mask = mask.float()
    with _recasting(module, query, key, value):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), mask, **kwargs)
    return out.to(dtype), weights


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      is_causal=None, **kwargs):
    """sdpa per packed sample when the row's sample bounds are given, plain sdpa otherwise."""
    import torch

    bounds = kwargs.get("cu_seq_lens_q")
    shared = kwargs.get("shared_prefix") or 0
    window = getattr(module, "sliding_window", None)
    if (bounds is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]
            or kwargs.get("position_bias") is not None
            or (window and int(kwargs.get("max_length_q") or query.shape[2]) > window)):
        if shared:
            raise ValueError("a packed row with a shared prefix reached attention that cannot keep its samples "
                             "apart (a cache, or a sliding window shorter than a sample); set "
                             "training.shared_prefix = off")
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                     is_causal=is_causal, **kwargs)
    outputs = []
    for index, (a, b) in enumerate(pairwise(bounds.tolist())):
        if b <= a:
            continue
        if index == 0 or not shared:  # a sample on its own (the first holds the shared prefix itself)
            outputs.append(_sdpa(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                                 dropout=dropout, scaling=scaling, is_causal=True)[0])
            continue
        keys = torch.cat([key[:, :, :shared], key[:, :, a:b]], dim=2)
        values = torch.cat([value[:, :, :shared], value[:, :, a:b]], dim=2)
        # the whole prefix, then causal on the sample's own tokens: query i sees keys 0 .. shared + i
        mask = torch.ones(b - a, shared + b - a, dtype=torch.bool, device=query.device).tril(shared)[None, None]
        outputs.append(_sdpa_after_prefix(module, query[:, :, a:b], keys, values, mask, dropout, scaling))
    return torch.cat(outputs, dim=1), None


def _sdpa_after_prefix(module, query, key, value, mask, dropout, scaling):
    """A sample's attention to the shared prefix and then causally to its own tokens (`mask`, boolean).

    On a CPU, torch's sdpa itself, in float32 (as `_sdpa`) with grouped keys and values read as they are:
    under any mask, transformers repeats them to the query's heads first (they support masked grouped
    attention on fewer devices), float32 copies three times the keys' size that the backward pass kept
    (about 60 MB of a row of eight chat samples on the demo's model). Elsewhere `_sdpa`."""
    import torch

    dtype = query.dtype
    if query.device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return _sdpa(module, query, key, value, mask, dropout=dropout, scaling=scaling, is_causal=False)[0]
    with _recasting(module, query, key, value):
        out = torch.nn.functional.scaled_dot_product_attention(
            query.float(), key.float(), value.float(), attn_mask=mask, dropout_p=dropout, scale=scaling,
            enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous().to(dtype)


def register() -> str:
    """Make `sdpa_segments` an attention implementation transformers knows, with sdpa's masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, segment_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def recast_attention_inputs(model) -> int:
    """Mark the attention modules of `model` (a class named so) to keep their half-precision query, key and
    value, not float32 copies, where `_sdpa` computes in float32; how many are marked. For training without
    gradient checkpointing (saved_casts.py)."""
    count = 0
    for module in model.modules():
        if type(module).__name__.endswith("Attention"):
            setattr(module, RECASTS, True)
            count += 1
    return count


def apply_attention(model, recipe) -> None:
    """Train with the recipe's attention (the model as loaded, PEFT-wrapped or not)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if recipe.attention and recipe.attention != inner.config._attn_implementation:
        if recipe.attention == NAME:
            register()
        inner.set_attn_implementation(recipe.attention)
