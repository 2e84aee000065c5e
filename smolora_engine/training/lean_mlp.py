"""Gated MLPs that keep the gate and the up projection for the backward pass, not the activation too.

A gated MLP, `down(act(gate(x)) * up(x))` (SwiGLU, GeGLU), keeps three tensors as wide as its
intermediate size for the backward pass: the gate, its activation and the up projection. The
activation is one elementwise op on the gate, so here it is computed again in the backward pass
instead of kept (48 MB of a 544-token pass on the demo model), and the
gate's gradient comes from torch's own derivative op for that activation (`silu_backward`,
`gelu_backward`): the same ops on the same values as autograd's, so the loss and every gradient
are those of the model as loaded, bit for bit (tested), and no nested autograd call is made (one
per layer cost about 10 % of a step). Under no_grad (evaluation, generation) nothing changes.

An MLP takes this path only where it computes what it computed before on a test input, with gate
and up apart (Llama, Qwen, Gemma, Mistral, SmolLM) or fused (Phi-3), and an activation with such an
op (SiLU, GELU, GELU tanh). Each gets a subclass of its own class whose forward is the lean one:
transformers re-kernelizes the layers it marks for hub kernels on every `model.train()` and takes
away a forward given to an instance.

The down projection's adapter keeps its input, `act(gate) * up`, for its weight's gradient: that too
is made again from the gate and the up projection when the backward pass reads it (autograd's
saved-tensor hooks; the same two ops on the same values, so the same bits), another tensor as wide as
the intermediate size no longer kept: 48 MB more of that pass. If the gate or the up projection were
changed in place after the forward pass, the backward pass raises (_GatedProduct's own saved tensors are
checked), as autograd does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .lean_forward import make_lean
from .saved_casts import Remade, laid_out, unpack

# activations whose derivative torch has as one op: (forward, derivative(grad, input))
_DERIVATIVES = (
    (F.silu, lambda grad, x: torch.ops.aten.silu_backward(grad, x)),
    (lambda x: F.gelu(x, approximate="tanh"), lambda grad, x: torch.ops.aten.gelu_backward(grad, x, approximate="tanh")),
    (F.gelu, lambda grad, x: torch.ops.aten.gelu_backward(grad, x)),
)


def _derivative(activation, x: torch.Tensor):
    """The one-op derivative of `activation` where it computes one of _DERIVATIVES on `x`, else None."""
    with torch.no_grad():
        y = activation(x)
        return next((d for f, d in _DERIVATIVES if torch.equal(f(x), y)), None)


class _GatedProduct(torch.autograd.Function):
    """activation(gate) * up, keeping gate and up: the activation is computed again for up's gradient."""

    @staticmethod
    def forward(ctx, gate, up, activation, derivative):
        ctx.save_for_backward(gate, up)
        ctx.activation, ctx.derivative = activation, derivative
        return activation(gate) * up

    @staticmethod
    def backward(ctx, grad):
        gate, up = ctx.saved_tensors
        grad_up = grad * ctx.activation(gate) if ctx.needs_input_grad[1] else None
        grad_gate = ctx.derivative(grad * up, gate) if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up, None, None


class _Product(Remade):
    """The saved input of the down projection (or a view of it: a matmul saves its input flattened), held as
    the gate and up projection it is made from."""

    __slots__ = ("gate", "up", "activation", "stride", "view")

    def __init__(self, gate, up, activation, stride, view):
        self.gate, self.up, self.activation, self.stride, self.view = gate, up, activation, stride, view

    def make(self) -> torch.Tensor:
        with torch.no_grad():
            product = self.activation(self.gate) * self.up
        return laid_out(product, self.stride).as_strided(*self.view)


def _down(module, activation, gate, up):
    """down(activation(gate) * up); in training, the product is kept by none of the three."""
    if not (torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad)):
        return module.down_proj(activation(gate) * up)
    product = _GatedProduct.apply(gate, up, activation, module._lean_derivative)
    # a fresh tensor: whatever shares its memory is the product or a view of it. Not the product itself in the
    # closure, which would keep it alive
    storage, dtype, stride = product.untyped_storage(), product.dtype, product.stride()
    pointer, size = storage.data_ptr(), storage.nbytes()

    def pack(tensor):
        memory = tensor.untyped_storage()
        if memory.data_ptr() == pointer and memory.nbytes() == size and tensor.dtype == dtype:
            return _Product(gate, up, activation, stride, (tensor.shape, tensor.stride(), tensor.storage_offset()))
        return tensor

    del storage
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        return module.down_proj(product)


class _LeanMLP:
    def forward(self, x):
        gate, up = self.gate_proj(x), self.up_proj(x)
        return _down(self, self.act_fn, gate, up)


class _LeanFusedMLP:
    def forward(self, hidden_states):
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)
        return _down(self, self.activation_fn, gate, up)


def _shape(module) -> tuple[type, torch.nn.Module, torch.nn.Module] | None:
    """The lean forward for this MLP, its first projection and its activation, if it has a gated shape."""
    if all(hasattr(module, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")):
        return _LeanMLP, module.gate_proj, module.act_fn
    if all(hasattr(module, name) for name in ("gate_up_proj", "down_proj", "activation_fn")):
        return _LeanFusedMLP, module.gate_up_proj, module.activation_fn
    return None


def _computes_the_same(module, mixin, projection) -> bool:
    """Whether the lean forward gives this MLP's own output, bit for bit, on a few random tokens."""
    weight = next(projection.parameters())
    width = getattr(projection, "in_features", None) or weight.shape[-1]
    x = torch.randn(1, 3, width, generator=torch.Generator().manual_seed(0)).to(weight.device, weight.dtype)
    with torch.no_grad():
        try:
            return torch.equal(type(module).forward(module, x), mixin.forward(module, x))
        except Exception:  # noqa: BLE001 - a shape this module does not take: not ours to change
            return False


def lean_mlps(model) -> int:
    """Give every gated MLP of `model` that computes the same the lean path; how many now have it.

    For a model trained without gradient checkpointing (which computes whole layers again anyway)."""
    count = 0
    probe = torch.randn(64, generator=torch.Generator().manual_seed(0))  # values to tell the activations apart
    for module in list(model.modules()):
        if isinstance(module, (_LeanMLP, _LeanFusedMLP)):
            count += 1  # made lean before
            continue
        shape = _shape(module)
        if shape is None:
            continue
        mixin, projection, activation = shape
        derivative = _derivative(activation, probe)
        if derivative is not None and _computes_the_same(module, mixin, projection):
            module._lean_derivative = derivative
            make_lean(module, mixin)
            count += 1
    return count
