"""Device and dtype choice: cuda, then mps, then cpu; the training precision as measured (precision.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "mps" | "cpu"
    dtype: str  # "float32" | "bfloat16" | "float16"
    reason: str  # why this device
    dtype_reason: str = ""  # why this precision

    def describe(self) -> str:
        return f"{self.device} ({self.dtype}): {self.reason}" + (f"; {self.dtype_reason}" if self.dtype_reason else "")


def choose_device(device: str = "auto", dtype: str = "auto", for_training: bool = False) -> DeviceChoice:
    """Resolve the project's device and dtype settings against what this machine has.

    For training, dtype 'auto' follows the precision probe of this machine (precision.py: run
    once, a few seconds, then cached). Inference and merging keep float32 off CUDA.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        chosen = "cuda" if has_cuda else "mps" if has_mps else "cpu"
        reason = {"cuda": "a CUDA GPU was found", "mps": "Apple Silicon GPU (MPS) was found",
                  "cpu": "no GPU was found"}[chosen]
    else:
        available = {"cuda": has_cuda, "mps": has_mps, "cpu": True}[device]
        if not available:
            raise RuntimeError(f"model.device = {device!r} but this machine has no {device} device; "
                               "set model.device = \"auto\" or \"cpu\"")
        chosen, reason = device, "set in the project"
    if dtype != "auto":
        return DeviceChoice(chosen, dtype, reason, "model.dtype is set in the project")
    if chosen == "cuda" and not torch.cuda.is_bf16_supported():
        return DeviceChoice(chosen, "float16", reason, "this GPU has no bfloat16: float16 with loss scaling")
    if for_training:
        from .precision import probe

        result = probe(chosen)
        return DeviceChoice(chosen, result.chosen, reason, result.reason)
    if chosen == "cuda":
        return DeviceChoice(chosen, "bfloat16", reason, "this GPU supports bfloat16")
    return DeviceChoice(chosen, "float32", reason, "float32 for inference off a CUDA GPU")


def device_memory(device: str) -> int:
    """Bytes of memory training can use on `device`: the GPU's memory, or the machine's RAM."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(0).total_memory
    import psutil

    return psutil.virtual_memory().total


def free_memory(device: str) -> int:
    """Bytes free for training on `device` now."""
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    import psutil

    return psutil.virtual_memory().available


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
