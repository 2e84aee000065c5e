"""A module given a lean forward through a subclass of its own class.

transformers re-kernelizes the layers it marks for hub kernels on every `model.train()` (`kernels` comes
with it) and takes away a `forward` given to an instance, so a lean forward (lean_mlp.py, saved_casts.py)
belongs to a class: a subclass of the module's own, made once per class and mixin, with the same name.
"""

from __future__ import annotations

_SUBCLASSES: dict[tuple[type, type], type] = {}


def make_lean(module, mixin: type) -> None:
    """Give `module` a subclass of its class with the mixin's forward (same name, same behaviour otherwise)."""
    kind = type(module)
    subclass = _SUBCLASSES.get((kind, mixin))
    if subclass is None:
        subclass = type(kind.__name__, (mixin, kind), {"__module__": kind.__module__, "__qualname__": kind.__qualname__})
        _SUBCLASSES[(kind, mixin)] = subclass
    module.__class__ = subclass
