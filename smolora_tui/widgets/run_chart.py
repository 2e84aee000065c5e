"""The dashboard's chart: train loss (raw or smoothed), eval loss and, on its own axis, the pass rate."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..run_follow import RunHistory
from .run_text import even_ticks

COLORS = [("cyan", "orange", "green"), ("magenta", "red", "yellow")]  # the run shown, the overlaid one


def draw_chart(plot: PlotextPlot, series: list[tuple[RunHistory | None, str]], smoothing: bool,
               log_scale: bool) -> None:
    """Each (history, name) drawn, the first in the main colours; name "" for the run shown."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    has_rate = any(h is not None and h.plot_pass_rate[0] for h, _name in series)
    plt.title("loss" + (" (smoothed)" if smoothing else "") + (" · log" if log_scale else "")
              + (" · pass % (right)" if has_rate else " by step"))
    drawn, values = False, []
    for (hist, name), (train_color, eval_color, rate_color) in zip(series, COLORS):
        if hist is None:
            continue
        prefix = f"{name} " if name else ""
        xs, ys = hist.plot_smoothed if smoothing else hist.plot_loss
        if xs:
            plt.plot(xs, ys, label=prefix + "train", color=train_color, marker="braille")
            drawn = True
            values += ys
        xs, ys = hist.plot_eval
        if xs:
            plt.scatter(xs, ys, label=prefix + "eval", color=eval_color, marker="●")
            drawn = True
            values += ys
        xs, ys = hist.plot_pass_rate
        if xs and hist.base_samples is not None and hist.base_samples.pass_rate is not None:
            xs, ys = [hist.base_samples.step, *xs], [hist.base_samples.pass_rate, *ys]  # the base, before step 1
        if xs:
            plt.plot(xs, [100 * y for y in ys], label=prefix + "pass %", color=rate_color, marker="▪",
                     yside="right")
    if drawn and log_scale:
        plt.yscale("log")
    rows = max(plot.size.height - 4, 1)  # less the title, the frame and the x ticks
    count = max(2, min(6, rows // 2 + 1))  # as many evenly spaced ticks as the height takes
    if values:
        ticks, labels = even_ticks(min(values), max(values), count, log_scale and min(values) > 0)
        plt.yticks(ticks, labels)
    if has_rate:
        ticks, labels = even_ticks(0.0, 100.0, count)
        plt.yticks(ticks, [label.split(".")[0] for label in labels], yside="right")
        plt.ylim(-2, 102, yside="right")
    plot.refresh()
