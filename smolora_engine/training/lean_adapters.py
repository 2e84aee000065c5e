"""LoRA adapters that keep their input in the layer's own dtype for the backward pass.

When the weights are in bf16 (or fp16) and the adapters in float32, PEFT casts a layer's input to
float32 before the adapter, and the adapter's first product keeps that float32 copy for its weight
gradient. q, k and v read the same input, as do gate and up, so each copies it anew: on the demo's
model a bf16 step held six float32 copies of a 576-wide input and one of a 1,536-wide one per layer
(282 MB of a 494-token row's 600 MB of activations, measured from the autograd graph).

Here the adapter keeps the input as it came, one tensor whatever reads it, and makes the float32
copy when the gradient needs it, in the backward pass. The cast is exact (every bf16 value is a
float32 value), so the outputs and the gradients are those of PEFT's own path: the same products in the same
dtypes.

It takes the place of PEFT's path through PEFT's hook for other kinds of adapter (a LoRA variant, as
DoRA is one), only where that path would copy: plain LoRA on a linear layer whose weight's dtype is
not the adapter's, without dropout (dropout's output is a new tensor to keep anyway) or a bias on
the adapter. Merging is PEFT's own arithmetic.
"""

from __future__ import annotations

import torch


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


class LeanLora:
    """A PEFT LoRA variant (peft.tuners.lora.layer.LoraVariant's methods) with plain LoRA's arithmetic."""

    @staticmethod
    def init(module, adapter_name: str, **kwargs) -> None:
        pass

    @staticmethod
    def forward(module, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs) -> torch.Tensor:
        update = _LowRankUpdate.apply(x, module.lora_A[active_adapter].weight, module.lora_B[active_adapter].weight,
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
