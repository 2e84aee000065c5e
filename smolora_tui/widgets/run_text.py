"""How the dashboard writes runs and figures: ids, statuses, step counts and the chart's y ticks."""

from __future__ import annotations

import math

from rich.text import Text

from smolora_engine.runs import RunInfo

STATUS_STYLE = {"running": "bold green", "starting": "green", "finished": "bold", "stopped": "yellow",
                "crashed": "bold red", "failed": "bold red"}


def short_id(run_id: str) -> str:
    """`20261122-101500-1234` as `11-22 10:15:00` (the pid part only tells apart runs of the same second)."""
    parts = run_id.split("-")
    if len(parts) >= 2 and len(parts[0]) == 8 and len(parts[1]) == 6 and (parts[0] + parts[1]).isdigit():
        day, clock = parts[0], parts[1]
        return f"{day[4:6]}-{day[6:]} {clock[:2]}:{clock[2:4]}:{clock[4:]}"
    return run_id


def even_ticks(low: float, high: float, count: int, log: bool = False) -> tuple[list[float], list[str]]:
    """`count` y-axis ticks evenly spaced from low to high (geometrically on a log scale), all labelled
    with the same number of decimals, so the axis reads evenly (plotext's own ticks need not)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low or count < 2:
        return [low], [f"{low:.3g}"]
    if log and low > 0:
        ratio = (high / low) ** (1 / (count - 1))
        ticks = [low * ratio ** i for i in range(count)]
    else:
        step = (high - low) / (count - 1)
        ticks = [low + step * i for i in range(count)]
    gap = min(b - a for a, b in zip(ticks, ticks[1:]))
    decimals = max(0, min(6, 1 - math.floor(math.log10(gap)))) if gap > 0 else 2
    return ticks, [f"{t:.{decimals}f}" for t in ticks]


def list_labels(run_ids: list[str]) -> list[str]:
    """Runs as the list shows them: `11-22 10:15` (room for status and step at 80 columns), with the
    seconds only where two runs started in the same minute."""
    full = [short_id(run_id) for run_id in run_ids]
    minutes = [label[:-3] if label.count(":") == 2 else label for label in full]
    return [minute if minutes.count(minute) == 1 else label for minute, label in zip(minutes, full)]


def count(n: int) -> str:
    """A step count that fits a narrow column: 950, 12k, 100k."""
    return str(n) if n < 10_000 else f"{n // 1000}k"


def status_text(info: RunInfo) -> Text:
    text = Text(info.status, style=STATUS_STYLE.get(info.status, ""))
    if info.resumable:
        text.append(f" ↻{info.resumable_step}", style="cyan")
    return text
