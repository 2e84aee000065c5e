"""The dashboard's chart: train loss (raw or smoothed), eval loss and, on its own axis, the pass rate;
with its key on a line above it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ..run_follow import RunHistory
from .run_text import even_ticks

# The terminal's own colours, by number: plotext draws with them and a key or a table names them alike
# (plotext's "orange" is colour 3, which Rich calls yellow; Rich has no "orange" at all).
CYAN, MAGENTA, GREEN, YELLOW, BLUE, RED, BRIGHT_YELLOW, WHITE = 6, 5, 2, 3, 4, 1, 11, 15
COLORS = [(CYAN, YELLOW, GREEN), (MAGENTA, RED, BRIGHT_YELLOW)]  # train, eval, pass %: the run shown, the overlaid one
MARKERS = {"train": "⣀", "eval": "●", "pass %": "▪"}


def key_entry(label: str, kind: str, color: int) -> Text:
    return Text.assemble((MARKERS[kind], f"color({color})"), f" {label}")


class RunChart(Vertical):
    """plotext's legend is drawn inside the plot, in a corner, where a falling loss starts and a rising
    pass rate ends: the key is a line of its own above the plot, and the plot has no title."""

    DEFAULT_CSS = """
    RunChart > #chart-key { height: auto; max-height: 2; padding: 0 1; }
    RunChart > PlotextPlot { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="chart-key")
        yield PlotextPlot()

    def draw(self, series: list[tuple[RunHistory | None, str]], smoothing: bool, log_scale: bool) -> None:
        """Each (history, name) drawn, the first in the main colours; name "" for the run shown."""
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        has_rate = any(h is not None and h.plot_pass_rate[0] for h, _name in series)
        keys = []
        values: list[float] = []  # the loss values drawn, for the left axis
        for (hist, name), (train_color, eval_color, rate_color) in zip(series, COLORS):
            if hist is None:
                continue
            prefix = f"{name} " if name else ""
            xs, ys = hist.plot_smoothed if smoothing else hist.plot_loss
            if xs:
                plt.plot(xs, ys, color=train_color, marker="braille")
                keys.append(key_entry(prefix + "train", "train", train_color))
                values += ys
            xs, ys = hist.plot_eval
            if xs:
                plt.scatter(xs, ys, color=eval_color, marker=MARKERS["eval"])
                keys.append(key_entry(prefix + "eval", "eval", eval_color))
                values += ys
            xs, ys = hist.plot_pass_rate
            if xs and hist.base_samples is not None and hist.base_samples.pass_rate is not None:
                xs, ys = [hist.base_samples.step, *xs], [hist.base_samples.pass_rate, *ys]  # the base, before step 1
            if xs:
                plt.plot(xs, [100 * y for y in ys], color=rate_color, marker=MARKERS["pass %"], yside="right")
                keys.append(key_entry(prefix + "pass % (right)", "pass %", rate_color))
        if values and log_scale:
            plt.yscale("log")
        rows = max(plot.size.height - 3, 1)  # less the frame and the x ticks
        count = max(2, min(6, rows // 2 + 1))  # as many evenly spaced ticks as the height takes
        if values:
            ticks, labels = even_ticks(min(values), max(values), count, log_scale and min(values) > 0)
            plt.yticks(ticks, labels)
        if has_rate:
            ticks, labels = even_ticks(0.0, 100.0, count)
            plt.yticks(ticks, [label.split(".")[0] for label in labels], yside="right")
            plt.ylim(-2, 102, yside="right")
        title = "loss" + (" (smoothed)" if smoothing else "") + (" · log" if log_scale else "") + " by step"
        self.query_one("#chart-key", Static).update(Text("  ").join([Text(title, style="bold"), *keys]))
        plot.refresh()
