"""Which precision trains fastest here, decided by measuring, not by the device's name.

`model.dtype = "auto"` trains in bfloat16 only where a short probe on this machine
shows it is faster than float32 *and* the loss after the same tokens stays within
2 % of float32's. The probe trains a small random Llama-shaped model (the layer
shapes of SmolLM2-135M, a LoRA adapter on every linear layer) for the same steps in
both precisions: frozen weights in the candidate dtype, the adapter and AdamW's
state in float32, which is how the worker trains in bf16. It takes a few seconds
and runs once per machine (device name, the CPU's bf16 features and torch version); the
result is kept in the cache folder. A probe that other programs competed with (they used more
than a third of the CPUs while it ran, steal time included: Linux's /proc/stat) says so, and is
used for that run but not kept: the next run measures again.

On CPUs bf16 pays only where the CPU has bf16 matrix units (Intel AMX,
avx512_bf16); without them it is emulated and slower, so float32 wins there.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .fsutil import atomic_write_text
from .paths import cache_dir

PROBE_VERSION = 3  # 3: the probe's bf16 adapters compute in bf16, as training's do (lean_adapters.py)
BUSY_SHARE = 1 / 3  # other programs using more of the CPUs than this while the probe ran: not kept
LOSS_TOLERANCE = 0.02  # bf16's loss after the same tokens may be at most 2 % above float32's
MIN_SPEEDUP = 1.10  # and it must be clearly faster, not faster by noise
GIVE_UP_SLOWER = 2.0  # a candidate step this many times float32's ends its measurement: clearly not faster
FIRST_STEP_SLACK = 5.0  # (the first step, which also sets up, this many times more)


@dataclass(frozen=True)
class ProbeResult:
    device: str
    machine: str  # the CPU's model name or the GPU's
    candidate: str  # the reduced precision tried against float32
    float32_step_s: float
    candidate_step_s: float
    float32_loss: float
    candidate_loss: float | None  # None: not measured (the candidate was given up on, or does not run)
    chosen: str
    reason: str
    others_cpu: float | None = None  # the share of the CPUs other programs used meanwhile; None: not known

    @property
    def busy(self) -> bool:
        return self.others_cpu is not None and self.others_cpu > BUSY_SHARE

    @property
    def speedup(self) -> float:
        return self.float32_step_s / self.candidate_step_s if self.candidate_step_s else 0.0


def machine_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    if device == "mps":
        return "Apple GPU (MPS)"
    return cpu_model()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 matrix features (Linux), e.g. ['amx_bf16', 'avx512_bf16']; empty where none or unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in ("amx_bf16", "amx_tile", "avx512_bf16") if f in flags]


def candidate_dtype(device: str) -> str:
    """The reduced precision worth probing on `device`."""
    import torch

    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        try:
            (torch.ones(2, 2, device="mps", dtype=torch.bfloat16) @ torch.ones(2, 2, device="mps",
                                                                              dtype=torch.bfloat16)).cpu()
            return "bfloat16"
        except (RuntimeError, TypeError):
            return "float16"
    return "bfloat16"


def probe_file() -> Path:
    return cache_dir() / "machine" / "precision-probe.json"


def _key(device: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed version, read without importing torch (the settings screen asks)
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "?"
    flags = f" ({' '.join(cpu_bf16_flags()) or 'no bf16 units'})" if device == "cpu" else ""
    return f"v{PROBE_VERSION} | {device} | {machine_name(device)}{flags} | torch {torch_version}"


def cached_probe(device: str) -> ProbeResult | None:
    """The probe's result for this machine if it has run here before (no measuring)."""
    try:
        entries = json.loads(probe_file().read_text())
        return ProbeResult(**entries[_key(device)])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(device: str) -> None:
    """Drop this machine's result, so the next training run (or `smolora device`) measures again."""
    try:
        entries = json.loads(probe_file().read_text())
        if entries.pop(_key(device), None) is not None:
            atomic_write_text(probe_file(), json.dumps(entries, indent=1) + "\n")
    except (OSError, ValueError, AttributeError):
        pass


def probe(device: str, steps: int = 8) -> ProbeResult:
    """The cached result, or measure now (a few seconds) and keep it."""
    if (known := cached_probe(device)) is not None:
        return known
    result = measure(device, steps)
    if result.busy:
        return result  # what this run goes by; the next one measures again
    path = probe_file()
    try:
        entries = json.loads(path.read_text())
        entries = entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        entries = {}
    entries[_key(device)] = asdict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
    return result


def measure(device: str, steps: int = 8) -> ProbeResult:
    from .quiet import quiet_libraries

    quiet_libraries()
    candidate = candidate_dtype(device)
    load = cpu_load_meter()
    times: dict[str, list[float]] = {"float32": [], candidate: []}
    losses: dict[str, float] = {}
    for _round in range(2):  # alternated, the faster of two rounds each: a busy machine skews both alike
        for dtype in times:
            # A candidate far slower than float32 (bf16 emulated on a CPU without bf16 units: 10-30x) is
            # given up on early: its verdict is known, and finishing would take minutes.
            give_up = GIVE_UP_SLOWER * min(times["float32"]) if dtype != "float32" else None
            try:
                seconds, losses[dtype] = _train_probe(device, dtype, steps, give_up)
            except (RuntimeError, TypeError) as exc:  # the candidate does not run here at all
                if dtype == "float32":
                    raise
                return ProbeResult(device, machine_name(device), candidate, min(times["float32"]), 0.0,
                                   losses["float32"], None, "float32",
                                   f"{candidate} does not train on this {device}: {str(exc).splitlines()[0]}")
            times[dtype].append(seconds)
        if min(times[candidate]) > GIVE_UP_SLOWER * min(times["float32"]):
            break  # a second round cannot change a verdict this clear
    fp32_time, cand_time = min(times["float32"]), min(times[candidate])
    fp32_loss, cand_loss = losses["float32"], losses[candidate]
    chosen, reason = decide(device, candidate, fp32_time, cand_time, fp32_loss, cand_loss)
    result = ProbeResult(device, machine_name(device), candidate, fp32_time, cand_time, fp32_loss,
                         None if math.isnan(cand_loss) else cand_loss, chosen, reason, load())
    if result.busy:
        result = replace(result, reason=f"{reason}; other programs used {result.others_cpu:.0%} of the CPUs "
                                        "while it ran, so it is not kept: the next run measures again")
    return result


def cpu_load_meter():
    """Start measuring; the function returned gives the share of all CPUs that *other* programs (and the
    hypervisor's steal) used since, or None where that cannot be told (no /proc/stat, or a process
    confined to fewer CPUs than the machine shows, as in a container)."""
    import resource

    def sample() -> tuple[float, float, float] | None:
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return None
        cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) != cpus:
            return None
        ticks = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        return busy, own.ru_utime + own.ru_stime, time.monotonic() * cpus

    start = sample()

    def others() -> float | None:
        end = sample()
        if start is None or end is None or end[2] <= start[2]:
            return None
        busy, own, capacity = (b - a for a, b in zip(start, end))
        return min(1.0, max(0.0, (busy - own) / capacity))

    return others


def decide(device: str, candidate: str, fp32_time: float, cand_time: float, fp32_loss: float,
           cand_loss: float) -> tuple[str, str]:
    """The precision to train in, and why: the candidate only when clearly faster at the same loss."""
    speedup = fp32_time / cand_time if cand_time else 0.0
    gap = (cand_loss - fp32_loss) / fp32_loss if fp32_loss else 0.0
    measured = (f"a probe on this {device} ({machine_name(device)}) trained {speedup:.2f}x as fast in "
                f"{candidate} as in float32")
    if speedup < MIN_SPEEDUP:
        return "float32", f"{measured}: not faster"
    if not gap <= LOSS_TOLERANCE:  # also catches a NaN loss
        return "float32", f"{measured}, but its loss was {gap:+.1%} off float32's (more than 2 %)"
    return candidate, f"{measured}, loss within {abs(gap):.1%}"


def _train_probe(device: str, dtype: str, steps: int, give_up_s: float | None = None) -> tuple[float, float]:
    """Seconds per step (after two warm-up steps) and the loss after `steps` steps, from the same start.

    With `give_up_s`, a run whose first step takes FIRST_STEP_SLACK times that, or whose second warm-up
    step or timed steps so far take longer than that per step, stops there: its seconds per step so far, and a NaN loss (it did not finish)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from .training.lean_adapters import lean_adapters

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=8192, max_position_embeddings=1024, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype)).to(device)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    lean_adapters(model)  # the adapters as training has them in this dtype (bf16 products with bf16 weights)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    # Rows of 512 tokens drawn from 64 words: learnable in a few steps (the loss falls from 9.2 to about 7.8).
    words = torch.randint(0, config.vocab_size, (64,), generator=generator)
    batches = [words[torch.randint(0, 64, (512,), generator=generator)][None].to(device) for _ in range(steps + 2)]
    loss, started = None, 0.0
    for index, batch in enumerate(batches):
        if index == 2:  # two warm-up steps, then the clock
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        step_started = time.perf_counter()
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if give_up_s is not None and device != "cuda":  # (CUDA runs ahead of the clock: no early verdict)
            first_limit = FIRST_STEP_SLACK * give_up_s  # the first step also pays for setting up
            if index <= 1 and time.perf_counter() - step_started > (give_up_s if index else first_limit):
                return time.perf_counter() - step_started, float("nan")
            if index >= 3 and (time.perf_counter() - started) / (index - 1) > give_up_s:
                return (time.perf_counter() - started) / (index - 1), float("nan")
    final = float(loss.detach().float().cpu())
    return (time.perf_counter() - started) / steps, final
