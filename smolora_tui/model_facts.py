"""A base model's facts (layers, sizes) and this machine's device, fetched without importing torch here.

Facts of a model folder come from its files (smolora_engine.estimate); an embedded model
not converted yet is converted once by `smolora model` in a child process. The device
that 'auto' picks needs torch, so it comes from `smolora device` in a child process too.
Both are asked once per app and kept.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from smolora_engine.estimate import FactsError, ModelFacts, read_facts
from smolora_engine.models import ModelNotFound, resolve_model

from .engine_cli import run_engine


@dataclass(frozen=True)
class Machine:
    device: str
    dtype: str  # the training precision 'auto' picks here (the engine's probe), and why
    memory_total: int
    dtype_reason: str = ""
    memory_available: int | None = None  # free when the app asked
    probe_speedup: float | None = None  # how much faster the probe trained in probe_candidate than float32
    probe_candidate: str = ""


class ModelFactsCache:
    def __init__(self) -> None:
        self.facts: dict[str, ModelFacts] = {}
        self.errors: dict[str, str] = {}
        self.machine: Machine | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._machine_lock = asyncio.Lock()

    async def get(self, spec: str) -> ModelFacts:
        """The facts of model `spec`; raises FactsError with a message for a person when there are none."""
        async with self._locks.setdefault(spec, asyncio.Lock()):
            if spec in self.facts:
                return self.facts[spec]
            try:
                source = await asyncio.to_thread(resolve_model, spec)
                if not source.ready:  # the embedded model, converted once (about 20 s)
                    result = await run_engine("model", spec, "--json")
                    if result.returncode:
                        raise FactsError(result.message)
                self.facts[spec] = await asyncio.to_thread(read_facts, source.path)
            except (ModelNotFound, FactsError) as exc:
                self.errors[spec] = str(exc)
                raise FactsError(str(exc)) from exc
            self.errors.pop(spec, None)
            return self.facts[spec]

    async def get_machine(self) -> Machine:
        async with self._machine_lock:
            if self.machine is None:
                result = await run_engine("device", "--json")
                try:
                    info = json.loads(result.stdout)
                    probe = info.get("probe") or {}
                    speedup = (probe["float32_step_s"] / probe["candidate_step_s"]
                               if probe.get("candidate_step_s") else None)
                    self.machine = Machine(info["device"], info["dtype"], int(info["memory_total"]),
                                           info.get("dtype_reason", ""), info.get("memory_available"),
                                           speedup, probe.get("candidate", ""))
                except (ValueError, KeyError, TypeError):
                    raise FactsError(f"could not tell this machine's device: {result.message}") from None
            return self.machine
