"""Compare runs (Train mode, c): the settings that differ, each run's figures, and their loss curves overlaid.

The same table as `smolora runs --project NAME --compare`, read from the run folders in a
thread (again every few seconds while a run trains). Space leaves a run out of the chart
and the table's differing settings, or puts it back.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from smolora_engine.compare import CompareError, Comparison, cell, compare_runs, figure_cells, FIGURE_HEADERS

from ..widgets.measured_table import MeasuredTable
from ..widgets.run_chart import BLUE, BRIGHT_YELLOW, CYAN, GREEN, MAGENTA, RED, WHITE, YELLOW
from ..widgets.run_text import even_ticks, list_labels

COLORS = [CYAN, MAGENTA, GREEN, YELLOW, BLUE, RED, BRIGHT_YELLOW, WHITE]  # each run's, in the table and the plot
REREAD_S = 3.0


class CompareScreen(Screen):
    DEFAULT_CSS = """
    CompareScreen #compare-box { height: 1fr; }
    CompareScreen #compare-info { height: auto; padding: 0 1; background: $panel; }
    CompareScreen #compare-table { height: auto; max-height: 45%; }
    CompareScreen #compare-plot { height: 1fr; min-height: 6; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back", tooltip="Back to the dashboard"),
        Binding("space", "toggle", "In/out", id="compare.toggle",
                tooltip="Leave the highlighted run out of the comparison, or put it back"),
        Binding("e", "eval_loss", "Eval loss", id="compare.eval", tooltip="Draw eval loss instead of train loss"),
    ]

    def __init__(self, project_name: str):
        super().__init__()
        self.project_name = project_name
        self.comparison: Comparison | None = None
        self.left_out: set[str] = set()
        self.eval_curves = False
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-box"):
            yield Static("reading the runs …", id="compare-info", markup=False)
            yield MeasuredTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.project_name}: compare runs"
        self.query_one("#compare-table").focus()
        self.read()
        self.set_interval(REREAD_S, self._reread)

    def _reread(self) -> None:
        if self.comparison and any(r.status in ("running", "starting") for r in self.comparison.runs):
            self.read()

    @work(thread=True, exclusive=True, group="compare-read")
    def read(self) -> None:
        try:
            comparison, error = compare_runs(self.project_name), ""
        except CompareError as exc:
            comparison, error = None, str(exc)
        self.app.call_from_thread(self.show, comparison, error)

    def show(self, comparison: Comparison | None, error: str) -> None:
        self.comparison, self.error = comparison, error
        self.draw()

    def included(self) -> Comparison | None:
        """The comparison of the runs left in (the differing settings among them alone)."""
        if self.comparison is None:
            return None
        runs = [r for r in self.comparison.runs if r.run_id not in self.left_out]
        keys = [k for k in self.comparison.differing if len({repr(r.settings.get(k)) for r in runs}) > 1]
        return Comparison(self.comparison.project, runs, keys)

    def draw(self) -> None:
        info = self.query_one("#compare-info", Static)
        table = self.query_one("#compare-table", DataTable)
        if self.comparison is None:
            info.update(self.error or "no runs")
            table.clear(columns=True)
            return
        shown = self.included()
        assert shown is not None
        differing = ", ".join(shown.differing) if shown.differing else "none: the same settings"
        out = f"  ·  {len(self.left_out)} left out (space)" if self.left_out else ""
        info.update(f"{len(shown.runs)} of {len(self.comparison.runs)} runs  ·  settings that differ: "
                    f"{differing}{out}")
        keep = table.cursor_row if table.row_count else 0
        table.clear(columns=True)
        for header in ["", "run", *FIGURE_HEADERS, *shown.differing]:  # the figures first: a narrow screen shows them
            table.add_column(header)
        colors = self.colors()
        labels = list_labels([r.run_id for r in self.comparison.runs])
        for run, label in zip(self.comparison.runs, labels):
            out_of_it = run.run_id in self.left_out
            mark = Text("·" if out_of_it else "━━", style="dim" if out_of_it else f"bold color({colors[run.run_id]})")
            values = [cell(run.settings.get(k)) for k in shown.differing]
            row = [mark, label, *figure_cells(run), *values]
            table.add_row(*(Text(str(v), style="dim") if out_of_it and not isinstance(v, Text) else v for v in row),
                          key=run.run_id)
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1), animate=False)
        self.draw_plot(shown)

    def colors(self) -> dict[str, int]:
        assert self.comparison is not None
        return {r.run_id: COLORS[i % len(COLORS)] for i, r in enumerate(self.comparison.runs)}

    def draw_plot(self, shown: Comparison) -> None:
        plot = self.query_one("#compare-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        what = "eval loss" if self.eval_curves else "train loss"
        # No legend: drawn in the plot's corner, it hid where the curves start. The table above is the key.
        plt.title(f"{what} by step, in the table's colours (e: {'train' if self.eval_curves else 'eval'} loss)")
        colors = self.colors()
        values: list[float] = []
        for run in shown.runs:
            points = run.eval_losses if self.eval_curves else run.losses
            if not points:
                continue
            xs, ys = [s for s, _ in points], [v for _, v in points]
            plt.plot(xs, ys, color=colors[run.run_id], marker="●" if self.eval_curves else "braille")
            values += ys
        if values:
            rows = max(plot.size.height - 4, 1)
            ticks, tick_labels = even_ticks(min(values), max(values), max(2, min(6, rows // 2 + 1)))
            plt.yticks(ticks, tick_labels)
        plot.refresh()

    def action_toggle(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        if not table.row_count or self.comparison is None:
            return
        run_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if run_id in self.left_out:
            self.left_out.discard(run_id)
        elif len(self.comparison.runs) - len(self.left_out) > 1:
            self.left_out.add(run_id)
        else:
            self.notify("at least one run stays in", severity="warning")
            return
        self.draw()

    def action_eval_loss(self) -> None:
        self.eval_curves = not self.eval_curves
        if self.comparison is not None:
            shown = self.included()
            assert shown is not None
            self.draw_plot(shown)
