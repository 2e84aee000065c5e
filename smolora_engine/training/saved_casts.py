"""Float32 copies of half-precision tensors, kept for the backward pass as their source and cast again there.

With bf16 weights, a few places compute in float32 from a bf16 tensor, and autograd keeps the float32
copy for the backward pass: every RMSNorm (its input, for the variance and the normalisation) and, on a
CPU, attention (attention.py computes it in float32: its query, key and value). The copy holds nothing
its source does not: `x.to(torch.float32)` of the same bf16 values gives the same float32 values, bit
for bit. So here the source is kept instead, half the bytes, and the copy is made again when the
backward pass reads it (one elementwise cast, where that pass also computes matrix products over the
same values). On the demo's model, a packed row of two 272-token samples kept 381 MB for the backward
pass; 36 MB less with the norms' copies recast, 30 MB less with attention's (heap in use after the
forward pass, AMD EPYC); no slower within the bench's noise.

`recast_saved(*sources)` does this through autograd's saved-tensor hooks, for the tensors saved while
it is active that are a float32 copy of one of its sources: made by a cast (`.to`, `.float()`), from
that very output of the source's node, of the source's shape and device. Everything else is saved as
it is. A source changed in place after its copy was saved makes the backward pass raise, as autograd
does for a saved tensor changed in place. `lean_norms` gives a model's RMSNorms a forward that runs
in it.

A norm's output is kept the same way: as the norm's input, which the norm's own backward pass keeps anyway,
and normalised again when the backward pass reads it (the same ops on the same values, so the same bits).
The adapters of the layers it feeds keep it for their weights' gradients (q, k and v read one, as do the
MLP's gate and up: lean_adapters.py); now they keep nothing of their own, one tensor as wide as the hidden
size fewer per norm (on the demo's model, 2 of a layer's ~7 such tensors). `_RecastNorm` marks its output
while training; an adapter whose input has that mark saves it as `_Renormed` (`keeping_norm_input`), made
once for all the adapters that read it.

For training without gradient checkpointing: checkpointing has saved-tensor hooks of its own, which
these would override.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from .lean_forward import make_lean

_HALF = (torch.bfloat16, torch.float16)


class Remade:
    """What autograd keeps in place of a saved tensor that is made again when the backward pass reads it
    (`unpack`): here a float32 copy or a norm's output, in lean_mlp.py the down projection's input. Each
    kind defines `make()`, which returns the tensor."""

    __slots__ = ()
    make: Callable[[], torch.Tensor]


def unpack(saved):
    """The unpack hook of every pack hook that keeps a `Remade`."""
    return saved.make() if isinstance(saved, Remade) else saved


class _Recast(Remade):
    """A saved float32 copy, held as its source: made again, with the copy's strides, when it is read."""

    __slots__ = ("source", "version", "stride")

    def __init__(self, source: torch.Tensor, stride: tuple[int, ...]):
        self.source, self.version, self.stride = source, source._version, stride

    def make(self) -> torch.Tensor:
        if self.source._version != self.version:
            raise RuntimeError("a tensor whose float32 copy the backward pass needs was modified by an in-place "
                               "operation after the copy was made")
        return laid_out(self.source.to(torch.float32), self.stride)


def laid_out(tensor: torch.Tensor, stride: tuple[int, ...]) -> torch.Tensor:
    """`tensor` with the strides a saved tensor had when the forward pass made it (the same op on the same
    input gives them; a copy otherwise)."""
    if tensor.stride() == stride:
        return tensor
    return torch.empty_strided(tensor.shape, stride, dtype=tensor.dtype, device=tensor.device).copy_(tensor)


@contextlib.contextmanager
def recast_saved(*sources: torch.Tensor):
    """While active, autograd keeps a float32 copy of one of `sources` (half-precision tensors that need
    gradients) as that source, and casts it again when the backward pass reads it."""
    outputs = [(s.grad_fn, s.output_nr, s) for s in sources if s.dtype in _HALF and s.grad_fn is not None]
    if not outputs or not torch.is_grad_enabled():
        yield
        return

    def pack(tensor):
        node = tensor.grad_fn
        if tensor.dtype != torch.float32 or node is None or node.name() != "ToCopyBackward0":
            return tensor
        made_from, index = node.next_functions[0]
        for source_node, output_nr, source in outputs:
            if (made_from is source_node and index == output_nr and tensor.shape == source.shape
                    and tensor.device == source.device):
                return _Recast(source, tensor.stride())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


class _Renormed(Remade):
    """A norm's output saved for the backward pass, held as the norm and its input: normalised again when the
    first of the tensors it stands for is read, and kept until the last of them is (q, k and v read theirs
    within a few ops of each other)."""

    __slots__ = ("norm", "input", "version", "args", "kwargs", "stride", "pending", "made")

    def __init__(self, norm, input: torch.Tensor, args: tuple, kwargs: dict, stride: tuple[int, ...]):
        self.norm, self.input, self.version, self.args, self.kwargs = norm, input, input._version, args, kwargs
        self.stride, self.pending, self.made = stride, 0, None

    def make(self) -> torch.Tensor:
        made = self.made
        if made is None:
            if self.input._version != self.version:
                raise RuntimeError("a norm's input, from which the backward pass makes its output again, was "
                                   "modified by an in-place operation after the forward pass")
            with torch.no_grad():  # the class's forward: what made the output, in the forward pass
                made = laid_out(type(self.norm).forward(self.norm, self.input, *self.args, **self.kwargs),
                                self.stride)
        self.pending -= 1
        self.made = made if self.pending > 0 else None
        return made


@contextlib.contextmanager
def keeping_norm_input(x: torch.Tensor):
    """While active, autograd keeps `x`, where it is a marked norm's output, as the norm's input (_Renormed)."""
    renormed = getattr(x, "_renormed", None)
    if renormed is None or not torch.is_grad_enabled():
        yield
        return

    same = id(x)  # not x itself: autograd keeps the hooks with what they packed, and x with them

    def pack(tensor):
        if id(tensor) == same:  # x is alive while this is active: its id is no other tensor's
            renormed.pending += 1
            return renormed
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


class _RecastNorm:
    def forward(self, hidden_states, *args, **kwargs):
        with recast_saved(hidden_states):
            out = super().forward(hidden_states, *args, **kwargs)
        if torch.is_grad_enabled() and isinstance(out, torch.Tensor):
            # kept anyway: the norm's backward pass reads its input (a bf16 source, or its float32 self)
            out._renormed = _Renormed(self, hidden_states, args, kwargs, out.stride())
        return out


def lean_norms(model) -> int:
    """Give every RMSNorm of `model` (a class of that name with a weight) a forward that keeps its half-precision
    input rather than a float32 copy for the backward pass; how many now have it. Not a norm whose instance has
    a forward of its own (a hub kernel's, where transformers loaded one): that one would still run."""
    count = 0
    for module in model.modules():
        if isinstance(module, _RecastNorm):
            count += 1
        elif (type(module).__name__.endswith("RMSNorm") and isinstance(getattr(module, "weight", None), torch.Tensor)
              and "forward" not in vars(module)):
            make_lean(module, _RecastNorm)
            count += 1
    return count
