"""smolora_engine: the headless engine of smolora-tui (data, models, training, merge, export, serve).

Importing this package is light: heavy modules (torch, transformers, peft, trl,
datasets) load only when a function that needs them runs.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["SmoLoRA", "__version__"]


def __getattr__(name: str):
    if name == "SmoLoRA":  # SmoLoRA's API, for people coming from that library
        from .smolora_compat import SmoLoRA

        return SmoLoRA
    raise AttributeError(f"module 'smolora_engine' has no attribute {name!r}")
