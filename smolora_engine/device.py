"""Device and dtype choice: cuda, then mps, then cpu; bf16 where the GPU supports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "mps" | "cpu"
    dtype: str  # "float32" | "bfloat16" | "float16"
    reason: str

    def describe(self) -> str:
        return f"{self.device} ({self.dtype}): {self.reason}"


def choose_device(device: str = "auto", dtype: str = "auto") -> DeviceChoice:
    """Resolve the project's device and dtype settings against what this machine has."""
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
    if dtype == "auto":
        if chosen == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            # MPS and CPU train most reliably in float32 (bf16 autocast on CPU measured slower here).
            dtype = "float32"
    return DeviceChoice(chosen, dtype, reason)


def device_memory(device: str) -> int:
    """Bytes of memory training can use on `device`: the GPU's memory, or the machine's RAM."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(0).total_memory
    import psutil

    return psutil.virtual_memory().total


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
