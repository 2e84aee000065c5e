"""What the dashboard says about one run: its status line, figures and checkpoints, from its history."""

from __future__ import annotations

from rich.text import Text

from smolora_engine.run_text import duration, memory_figure, rate_figures

from ..run_follow import RunHistory
from .run_text import short_id, status_text


def run_summary(history: RunHistory, kill_left: float | None = None, busy: str = "") -> Text:
    """The run's status (and a stop's countdown), its step figures, then speed, time and memory."""
    info, step = history.info, history.last_step
    head = Text.assemble(Text(f"run {short_id(info.run_id)}  "), status_text(info))
    if kill_left is not None:
        head.append(f"  (stopping: a checkpoint at the end of this step; killed in {duration(kill_left)}, "
                    "x: kill now)", style="italic yellow")
    elif busy:
        head.append(f"  ({busy}…)", style="italic")
    if info.error:
        head.append(f"  {info.error}", style="red")
    lines = [head]
    if step is None:
        lines.append(Text(history.loading or ("waiting for the worker…" if info.status in ("running", "starting")
                                              else "no steps were logged"), style="italic"))
        return Text("\n").join(lines)
    figures = [f"step {step.step}/{step.max_steps}"]
    if step.epoch is not None:
        figures.append(f"epoch {step.epoch:.2f}")
    if step.loss is not None:
        figures.append(f"loss {step.loss:.4f}")
    if history.last_eval is not None:
        figures.append(f"eval {history.last_eval:.4f}")
    if history.best_eval:
        figures.append(f"best {history.best_eval[1]:.4f}@{history.best_eval[0]}")
    if history.samples and history.samples[-1].pass_rate is not None:
        figures.append(f"pass {history.samples[-1].pass_rate:.0%}")
    lines.append(Text(" · ".join(figures)))
    more = rate_figures(step)
    if info.status == "running":
        more.append(f"ETA {duration(step.eta_s)}")
    more.append(f"elapsed {duration(step.elapsed_s)}")
    if step.memory_mb:
        more.append(memory_figure(step.memory_mb))
    lines.append(Text(" · ".join(more), style="dim" if info.status != "running" else ""))
    return Text("\n").join(lines)


def checkpoint_list(history: RunHistory) -> str:
    """The checkpoints on disk, the best one marked (by the run's metric), and the final adapter."""
    marks = []
    best, why = history.best_eval[0] if history.best_eval else None, "best eval"
    if history.best_pass_step is not None:  # the pass rate picks the best checkpoint
        best, why = history.best_pass_step, "best pass rate"
    for step, complete in history.disk_checkpoints:
        mark = "✓" if complete else "… incomplete"
        marks.append(f"step {step} {mark}" + (f" ({why})" if step == best else ""))
    if history.info and history.info.adapter:
        final = history.finished
        kept = final.adapter_step if final and final.adapter_step not in (None, final.step) else None
        marks.append("final adapter ✓" + (f" (step {kept}'s)" if kept is not None else ""))
    return "checkpoints:\n  " + "\n  ".join(marks) if marks else "no checkpoints yet"
