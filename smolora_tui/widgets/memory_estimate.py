"""The settings' memory estimate: what a training step needs, and the recipe a worker would choose."""

from __future__ import annotations

from textual import work
from textual.widgets import Static

from smolora_engine.estimate import GIB, FactsError, estimate_for, gib, targets_problem
from smolora_engine.training.recipe import checkpointing_label


def recipe_line(estimate, project, machine, for_data: bool = False) -> str:
    """What the worker will choose here: precision (and why), packing, checkpointing (and why); for the
    checked data (`for_data`), or for samples as long as max_length."""
    if project.model.dtype != "auto":
        dtype_why = "set in the project"
    elif machine.probe_speedup is not None:
        dtype_why = f"auto: {machine.probe_candidate} trained {machine.probe_speedup:.2f}x as fast here"
    else:
        dtype_why = machine.dtype_reason or "auto"
    packing = estimate.packing
    packed = (f"packing {packing.micro_batch} samples per row" if packing.packed
              else f"no packing ({packing.reason})")
    checkpointing = (f"checkpointing {checkpointing_label(estimate.checkpointing, estimate.checkpoint_every)} "
                     f"({estimate.checkpointing_reason})")
    return f"recipe {'for this data' if for_data else 'at max_length'}: {estimate.dtype} ({dtype_why}) · {packed} · {checkpointing}"


def estimate_here(facts, project, machine, longest: int | None = None):
    """The estimate for the recipe a worker would choose here: the probed precision, packing, and
    checkpointing auto resolved against the memory free when the app asked."""
    free = machine.memory_available / 2**20 if machine.memory_available else None
    dtype = machine.dtype if project.model.dtype == "auto" else None
    return estimate_for(facts, project, machine.device, longest=longest, dtype=dtype, free_mb=free)


class MemoryEstimate(Static):
    """The estimate for the settings as typed, recomputed at every change (`show`).

    The model's facts and this machine's device are read once each, by child processes
    (the app's ModelFactsCache); until they are in, the line says what it is waiting for.
    """

    DEFAULT_CSS = """
    MemoryEstimate { height: auto; padding: 0 1; color: $text-muted; }
    MemoryEstimate.-tight { color: $warning; }
    MemoryEstimate.-over { color: $error; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__("memory estimate: reading the model …", id=id, markup=False)
        self.tooltip = ("Peak memory of a training step whose batches are all max_length tokens long, "
                        "from the model's config and weight headers (smolora estimate NAME)")
        self._asked: set[str] = set()  # models whose facts were asked for (each once)
        self._shown: tuple = ()  # (project, longest) last shown, to show again when the facts arrive

    def show(self, project, longest: int | None = None) -> None:
        """The estimate for `project`; with `longest` (the checked data's longest sample in tokens), also
        the figure for that data."""
        self._shown = (project, longest)
        cache = self.app.model_facts
        facts, machine = cache.facts.get(project.model.base), cache.machine
        self.remove_class("-tight", "-over")
        if facts is None or machine is None:
            error = cache.errors.get(project.model.base)
            self.update(f"memory estimate unavailable: {error}" if error else
                        "memory estimate: reading the model … (the embedded model is converted once, about 20 s)")
            if error is None and project.model.base not in self._asked:
                self._asked.add(project.model.base)
                self._fetch_facts(project.model.base)
            return
        estimate = estimate_here(facts, project, machine)
        share = estimate.total / machine.memory_total
        self.set_class(share > 1, "-over")
        memory = "GPU memory" if estimate.device == "cuda" else "RAM"
        parts = " · ".join(f"{name} {size / GIB:.2f}" for name, size in estimate.parts())
        # The recipe a run on the checked data would get (its packing follows the samples' lengths).
        for_data = (estimate_here(facts, project, machine, longest)
                    if longest is not None and longest < project.training.max_length else None)
        every_layer = estimate.checkpointing and estimate.checkpoint_every == 1
        problem = targets_problem(facts.linear, list(project.lora.target_modules), project.model.base)
        self.update(f"memory to train ≈ {gib(estimate.total)} of {gib(machine.memory_total)} {memory} "
                    f"({estimate.device}, {estimate.dtype}; {estimate.adapter_params / 1e6:.2f} M adapter parameters)"
                    + (f"  —  too much: lower max_length or batch_size"
                       f"{'' if every_layer else ', or turn gradient_checkpointing on'}"
                       if share > 1 else "")
                    + f"\n{parts} GiB" + self._for_this_data(for_data, longest)
                    + f"\n{recipe_line(for_data or estimate, project, machine, for_data is not None)}"
                    + (f"\n⚠ {problem}" if problem else ""))
        self.set_class(0.8 <= share <= 1 or (problem is not None and share <= 1), "-tight")  # a warning's colour

    @staticmethod
    def _for_this_data(for_data, longest: int | None) -> str:
        """The line for the checked data: its estimate (`for_data`), or that its samples fill max_length."""
        if longest is None:
            return ""
        if for_data is None:
            return f"\nthis data's longest sample ({longest:,} tokens) fills max_length: the figure above applies"
        return f"\nwith this data's longest sample ({longest:,} tokens): ≈ {gib(for_data.total)}"

    @work(group="facts", exit_on_error=False)
    async def _fetch_facts(self, base: str) -> None:
        """Read a model's facts and this machine's device (child processes, once), then show the estimate.

        Not exclusive: a newer request must not cancel (and so kill) a conversion already under way;
        the cache runs each fetch once, and the estimate shown is always the latest settings'.
        """
        try:
            await self.app.model_facts.get_machine()
            await self.app.model_facts.get(base)
        except FactsError:
            pass  # shown by show
        self.show(*self._shown)
