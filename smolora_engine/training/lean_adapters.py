"""LoRA adapters that keep their input in the layer's own dtype, and in bf16 compute in it.

When the weights are in bf16 (or fp16) and the adapters in float32, PEFT casts a layer's input to
float32 before the adapter, and the adapter's first product keeps that float32 copy for its weight
gradient. q, k and v read the same input, as do gate and up, so each copies it anew: on the demo's
model a bf16 step held six float32 copies of a 576-wide input and one of a 1,536-wide one per layer
(282 MB of a 494-token row's 600 MB of activations, measured from the autograd graph). Its float32
update then promotes the layer's output to float32, which PEFT casts back: three passes over a
float32 tensor as wide as the layer's output, forward and backward, for every adapter.

Here the adapter keeps the input as it came, one tensor whatever reads it. With bf16 weights its two
products run in bf16, with the adapter's float32 weights cast for them, as torch.autocast computes
them (TRL's `bf16=True`): the weights, their gradients and the optimizer's state stay float32, and the
update is added to the bf16 output without leaving bf16. On ~270-token rows (AMD EPYC with
avx512_bf16) that took an adapted layer's forward and backward from 1.6-1.7x the base layer's time
to 1.1-1.3x. With fp16 weights, whose range a gradient can leave, the products stay in float32 and
the float32 copy of the input is made when the gradient needs it, in the backward pass: the same
products in the same dtypes as PEFT's own path.

It takes the place of PEFT's path through PEFT's hook for other kinds of adapter (a LoRA variant, as
DoRA is one), only where that path would copy: plain LoRA on a linear layer whose weight's dtype is
not the adapter's, without dropout (dropout's output is a new tensor to keep anyway) or a bias on
the adapter. Merging is PEFT's own arithmetic.
"""

from __future__ import annotations

import torch

from .saved_casts import keeping_norm_input


class _LowRankUpdate(torch.autograd.Function):
    """scaling * B(A(x)) with x kept as given; A and B in float32 (or whatever the adapter holds)."""

    @staticmethod
    def forward(ctx, x, a, b, scaling):
        down = torch.nn.functional.linear(x.to(a.dtype), a)
        ctx.save_for_backward(x, down, a, b)
        ctx.scaling = scaling
        return torch.nn.functional.linear(down, b) * scaling

    @staticmethod
    def backward(ctx, grad):
        x, down, a, b = ctx.saved_tensors
        grad = grad.to(b.dtype) * ctx.scaling
        grad_b = grad.flatten(0, -2).T @ down.flatten(0, -2) if ctx.needs_input_grad[2] else None
        grad_down = grad @ b
        grad_a = grad_down.flatten(0, -2).T @ x.flatten(0, -2).to(a.dtype) if ctx.needs_input_grad[1] else None
        grad_x = (grad_down @ a).to(x.dtype) if ctx.needs_input_grad[0] else None
        return grad_x, grad_a, grad_b, None


class _Bf16LowRankUpdate(torch.autograd.Function):
    """scaling * B(A(x)) computed in x's bf16, A and B (float32) cast for the products; their
    gradients come back in A's and B's dtype."""

    @staticmethod
    def forward(ctx, x, a, b, scaling):
        a_half, b_half = a.to(x.dtype), (b * scaling).to(x.dtype)
        down = torch.nn.functional.linear(x, a_half)
        ctx.save_for_backward(x, down, a_half, b_half)
        ctx.scaling, ctx.weight_dtype = scaling, (a.dtype, b.dtype)
        return torch.nn.functional.linear(down, b_half)

    @staticmethod
    def backward(ctx, grad):
        x, down, a_half, b_half = ctx.saved_tensors
        a_dtype, b_dtype = ctx.weight_dtype
        grad_b = ((grad.flatten(0, -2).T @ down.flatten(0, -2)).to(b_dtype) * ctx.scaling
                  if ctx.needs_input_grad[2] else None)
        grad_down = grad @ b_half
        grad_a = (grad_down.flatten(0, -2).T @ x.flatten(0, -2)).to(a_dtype) if ctx.needs_input_grad[1] else None
        grad_x = grad_down @ a_half if ctx.needs_input_grad[0] else None
        return grad_x, grad_a, grad_b, None


class LeanLora:
    """A PEFT LoRA variant (peft.tuners.lora.layer.LoraVariant's methods) with plain LoRA's arithmetic."""

    @staticmethod
    def init(module, adapter_name: str, **kwargs) -> None:
        pass

    @staticmethod
    def forward(module, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs) -> torch.Tensor:
        with keeping_norm_input(x):  # a norm's output (saved_casts.py): kept as the norm's input
            update = (_Bf16LowRankUpdate if x.dtype == torch.bfloat16 else _LowRankUpdate).apply(
                x, module.lora_A[active_adapter].weight, module.lora_B[active_adapter].weight,
                module.scaling[active_adapter])
        return result + update

    @staticmethod
    def merge_safe(module, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight + module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def merge_unsafe(module, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data += module.get_delta_weight(active_adapter)  # as PEFT's unsafe merge: no cast first

    @staticmethod
    def unmerge(module, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight.data - module.get_delta_weight(active_adapter).to(orig_weight.dtype)

    @staticmethod
    def supports_lora_conversion() -> bool:
        return True


def _copies_input(module, adapter: str) -> bool:
    """Whether PEFT's own path would keep a cast copy of this LoRA layer's input: plain LoRA on a
    linear layer whose weight is not in the adapter's dtype, with no dropout and no adapter bias."""
    if adapter in module.lora_variant:
        return False
    base = module.get_base_layer()
    a, b = module.lora_A[adapter], module.lora_B[adapter]
    return (isinstance(base, torch.nn.Linear) and base.weight.dtype != a.weight.dtype
            and isinstance(module.lora_dropout[adapter], torch.nn.Identity)
            and a.bias is None and b.bias is None and not module.lora_bias.get(adapter, False))


def lean_adapters(model) -> int:
    """Give every adapter of `model` that would copy its input the lean path; how many now have it.

    0 where none would copy (float32 weights, dropout, DoRA) or where this PEFT has no LoRA variants."""
    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:
        return 0
    if not hasattr(Linear, "_cast_input_dtype"):
        return 0
    count = 0
    for module in model.modules():
        if type(module) is not Linear:  # PEFT's LoRA on a linear layer, not its subclasses (quantized ...)
            continue
        adapters = list(module.lora_A.keys())
        # all of a layer's adapters or none: the input reaches every adapter uncast
        if not adapters or not all(_copies_input(module, adapter) for adapter in adapters):
            continue
        for adapter in adapters:
            module.lora_variant[adapter] = LeanLora()
        module.cast_input_dtype_enabled = False
        count += len(adapters)
    return count
