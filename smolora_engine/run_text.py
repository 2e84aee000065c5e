"""How training events read as text: one wording for the worker's console and worker.log,
`smolora runs --follow`, `smolora train`'s progress and the dashboard's log. Light: no torch."""

from __future__ import annotations

import math

from .events import Checkpoint, Eval, Event, Finished, Loading, Log, MemoryEstimate, Samples, Started, Step, Stopped
from .events import Error as ErrorEvent
from .events import Warning as WarningEvent


def duration(seconds: float | None) -> str:
    """Seconds as `42s`, `3m 05s` or `1h 02m` (ETA, elapsed, training time); `?` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def rate_figures(step: Step) -> list[str]:
    """A step's learning rate, grad norm and speed, as the console and the dashboard show them."""
    figures = []
    if step.lr is not None:
        figures.append(f"lr {step.lr:.2e}")
    if step.grad_norm is not None:
        figures.append(f"grad norm {step.grad_norm:.3f}")
    if step.tokens_per_s:
        figures.append(f"{step.tokens_per_s:,.0f} tok/s")
    return figures


def memory_figure(memory_mb: float) -> str:
    return f"memory {memory_mb / 1024:.2f} GB"


def describe_event(event: Event) -> tuple[str, str] | None:
    """A training event as a log line, (level, text) with level info, warning or error.

    The worker's console and worker.log, `smolora runs --follow` and the dashboard's log all
    say it this way. Heartbeats (and kinds a newer writer added) say nothing.
    """
    if isinstance(event, Step):
        parts = [f"step {event.step}/{event.max_steps or '?'}"]
        if event.loss is not None:
            parts.append(f"loss {event.loss:.4f}")
        parts += rate_figures(event)
        if event.memory_mb:
            parts.append(memory_figure(event.memory_mb))
        if event.eta_s and event.step < event.max_steps:
            parts.append(f"ETA {duration(event.eta_s)}")
        return "info", "  ·  ".join(parts)
    if isinstance(event, Eval):
        loss = "?" if event.eval_loss is None else f"{event.eval_loss:.4f}"
        return "info", f"eval loss {loss} at step {event.step}" + (" (best so far)" if event.best else "")
    if isinstance(event, Started):
        if event.resumed_from is not None:
            return "info", f"resumed from step {event.resumed_from} (pid {event.pid})"
        return "info", f"started on {event.device} ({event.dtype}), pid {event.pid}, model {event.model}"
    if isinstance(event, Loading):
        return "info", event.message
    if isinstance(event, MemoryEstimate):
        free = f" of {event.available_mb / 1024:.2f} GB free" if event.available_mb is not None else ""
        return "info", f"memory needed: about {event.estimate_mb / 1024:.2f} GB{free}"
    if isinstance(event, Checkpoint):
        return "info", f"checkpoint at step {event.step}"
    if isinstance(event, Log):
        return (event.level if event.level in ("warning", "error") else "info"), event.message
    if isinstance(event, WarningEvent):
        return "warning", event.message
    if isinstance(event, ErrorEvent):
        return "error", event.message + (f"\n  what to do: {event.hint}" if event.hint else "")
    if isinstance(event, Stopped):
        return "info", (f"stopped at step {event.step} ({event.reason or 'asked to stop'})"
                        + (", checkpoint saved" if event.checkpoint else ""))
    if isinstance(event, Samples):
        return "info", samples_text(event)
    if isinstance(event, Finished):
        text = f"finished at step {event.step}"
        if event.reason:
            text += f" ({event.reason})"
        if event.adapter_step is not None and event.adapter_step != event.step:
            text += f"; adapter (step {event.adapter_step}, the best) in {event.path}"
        else:
            text += f"; adapter in {event.path}"
        return "info", text
    return None


def samples_text(event: Samples) -> str:
    who = "the base model" if event.base else f"step {event.step}"
    n = len(event.answers)
    if event.pass_rate is None:
        rate = "no checks"
    else:
        passed = sum(1 for a in event.answers if a.get("passed"))
        rate = f"pass rate {event.pass_rate:.0%} ({passed}/{event.checked})" + (" (best so far)" if event.best else "")
    cut = ", cut short by eval.time_limit_s" if event.cut_short else ""
    took = "kept from an earlier run (same model, prompts, settings)" if event.cached else f"{event.seconds or 0:.1f} s"
    return f"answers of {who} to {n} eval prompt(s): {rate}; {took}{cut}"


def console_text(level: str, text: str) -> str:
    """A described event as a console line: warnings and errors say which they are."""
    return text if level == "info" else f"{level}: {text}"
