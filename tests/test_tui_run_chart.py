"""The dashboard's chart keeps its key on a line above the plot, where it hides none of the curves."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual_plotext import PlotextPlot

from smolora_tui.run_follow import RunHistory
from smolora_tui.widgets.run_chart import COLORS, RunChart
from tests import scenes


class Chart(App):
    def compose(self) -> ComposeResult:
        yield RunChart()


def demo_history(run_id: str) -> RunHistory:
    history = RunHistory(run_id)
    for event in scenes.real_events():
        history.add(event)
    return history.snapshot()


async def test_the_key_names_each_curve_in_its_colour_and_the_plot_has_no_legend():
    app = Chart()
    async with app.run_test(size=(90, 20)) as pilot:
        chart = app.query_one(RunChart)
        shown = demo_history("shown")
        assert shown.plot_loss[0] and shown.plot_eval[0] and shown.plot_pass_rate[0]
        chart.draw([(shown, ""), (demo_history("other"), "11-22 09:45")], smoothing=True, log_scale=False)
        await pilot.pause()
        key = chart.query_one("#chart-key").render()
        assert str(key).startswith("loss (smoothed) by step")
        for label in ("⣀ train", "● eval", "▪ pass % (right)", "⣀ 11-22 09:45 train", "▪ 11-22 09:45 pass % (right)"):
            assert label in str(key)
        marks = [(str(key)[span.start:span.end], span.style.foreground.ansi) for span in key.spans
                 if span.end - span.start == 1]
        assert marks == [("⣀", COLORS[0][0]), ("●", COLORS[0][1]), ("▪", COLORS[0][2]),  # the run shown's
                         ("⣀", COLORS[1][0]), ("●", COLORS[1][1]), ("▪", COLORS[1][2])]  # the overlaid one's
        plot = chart.query_one(PlotextPlot)
        drawn = "\n".join(plot.render_line(y).text for y in range(plot.size.height))
        assert "train" not in drawn and "eval" not in drawn and "pass" not in drawn
