"""Runs side by side: the settings that differ between them, and what each achieved.

Everything comes from the run folders (run.toml and events.jsonl), so a crashed or
running run compares as it stands. Light: the TUI imports this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import Eval, Finished, Samples, Started, Step
from .project_load import project_from_dict
from .run_text import duration
from .runs import RunInfo, list_run_ids, read_run_settings, summarize

# Not settings a run trains with: who it is, and where it was written.
SKIPPED = {"name", "description", "schema_version"}
MISSING = object()


def flatten(settings: dict, prefix: str = "") -> dict[str, Any]:
    """{"lora": {"r": 8}} -> {"lora.r": 8}; data.columns stays one value."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if not prefix and key in SKIPPED:
            continue
        if isinstance(value, dict) and dotted != "data.columns":
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@dataclass
class RunFigures:
    run_id: str
    status: str
    settings: dict[str, Any]
    step: int = 0
    final_loss: float | None = None
    best_eval_loss: float | None = None
    pass_rate: float | None = None  # the last eval's (final) pass rate
    best_pass_rate: float | None = None
    tokens: int = 0
    tokens_per_s: float | None = None  # trained (non-padding) tokens over training time
    wall_s: float | None = None  # from each start to that segment's last event, summed over resumes
    losses: list[tuple[int, float]] = field(default_factory=list, repr=False)
    eval_losses: list[tuple[int, float]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "step": self.step, "final_loss": self.final_loss,
                "best_eval_loss": self.best_eval_loss, "pass_rate": self.pass_rate,
                "best_pass_rate": self.best_pass_rate, "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "wall_s": self.wall_s}


def run_figures(info: RunInfo, settings: dict) -> RunFigures:
    figures = RunFigures(info.run_id, info.status, flatten(settings), step=info.step, pass_rate=info.pass_rate)
    last_step: Step | None = None
    segment_start = segment_end = None
    wall = 0.0
    for event in info.events:
        if isinstance(event, Started):
            if segment_start is not None and segment_end is not None:
                wall += segment_end - segment_start
            segment_start, segment_end = event.time, event.time
            continue
        segment_end = event.time if segment_start is not None else segment_end
        if isinstance(event, Step):
            last_step = event
            if event.loss is not None:
                figures.losses.append((event.step, event.loss))
        elif isinstance(event, Eval) and event.eval_loss is not None:
            figures.eval_losses.append((event.step, event.eval_loss))
        elif isinstance(event, Finished):
            figures.best_pass_rate = event.best_pass_rate
            if event.pass_rate is not None:
                figures.pass_rate = event.pass_rate
    if segment_start is not None and segment_end is not None:
        wall += segment_end - segment_start
    figures.wall_s = wall or None
    figures.final_loss = figures.losses[-1][1] if figures.losses else None
    figures.best_eval_loss = min((loss for _s, loss in figures.eval_losses), default=None)
    if figures.best_pass_rate is None:
        rates = [e.pass_rate for e in info.events if isinstance(e, Samples) and not e.base
                 and e.pass_rate is not None]
        figures.best_pass_rate = max(rates, default=None)
    if last_step is not None:
        figures.tokens = last_step.tokens
        seconds = last_step.train_s or last_step.elapsed_s  # (runs from before train_s: wall time)
        if seconds:
            figures.tokens_per_s = last_step.tokens / seconds
    return figures


def with_defaults(settings: dict, project: str) -> dict:
    """A run's frozen settings with the keys it predates filled in, so only real differences show."""
    filled, _problems = project_from_dict(settings, project)
    return filled.to_dict()


@dataclass
class Comparison:
    project: str
    runs: list[RunFigures]
    differing: list[str]  # setting keys whose value is not the same in every run

    def value(self, run: RunFigures, key: str) -> Any:
        return run.settings.get(key, MISSING)

    def to_dict(self) -> dict:
        return {"project": self.project, "differing": self.differing,
                "runs": [{**r.to_dict(), "settings": {k: r.settings.get(k) for k in self.differing}}
                         for r in self.runs]}


class CompareError(ValueError):
    pass


def compare_runs(project: str, run_ids: list[str] | None = None) -> Comparison:
    """The named runs (all of the project's when none is named), oldest first."""
    known = list_run_ids(project)
    ids = list(run_ids) if run_ids else known
    if unknown := [r for r in ids if r not in known]:
        raise CompareError(f"project {project!r} has no run {', '.join(unknown)}; "
                           f"`smolora runs --project {project}` lists them")
    if not ids:
        raise CompareError(f"project {project!r} has no runs to compare yet")
    runs = [run_figures(summarize(project, r), with_defaults(read_run_settings(project, r), project)) for r in ids]
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.settings if k not in keys]
    differing = [k for k in keys if len({repr(r.settings.get(k, MISSING)) for r in runs}) > 1]
    return Comparison(project, runs, differing)


def cell(value: Any) -> str:
    if value is MISSING:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def figure_cells(run: RunFigures) -> list[str]:
    """final loss, best eval loss, pass rate (best), tok/s, wall, status: the compare table's figures."""
    def loss(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rate = "-" if run.pass_rate is None else f"{run.pass_rate:.0%}"
    if run.best_pass_rate is not None and run.best_pass_rate != run.pass_rate:
        rate += f" (best {run.best_pass_rate:.0%})"
    speed = "-" if run.tokens_per_s is None else f"{run.tokens_per_s:,.0f}"
    return [loss(run.final_loss), loss(run.best_eval_loss), rate, speed, duration(run.wall_s), run.status]


FIGURE_HEADERS = ["final loss", "best eval", "pass rate", "tok/s", "wall", "status"]


def comparison_table(comparison: Comparison) -> list[list[str]]:
    """Rows of text, the header first: run, each differing setting, then the figures."""
    rows = [["run", *comparison.differing, *FIGURE_HEADERS]]
    for run in comparison.runs:
        rows.append([run.run_id, *(cell(comparison.value(run, k)) for k in comparison.differing),
                     *figure_cells(run)])
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
