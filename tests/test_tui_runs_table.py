"""The runs list shows each run's whole status and step, however they grow."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

from smolora_engine.runs import RunInfo
from smolora_tui.widgets.runs_table import RunsTable


class Table(App):
    def compose(self) -> ComposeResult:
        yield RunsTable(id="runs-table")


def info(run_id: str, status: str, step: int, resumable: int | None = None) -> RunInfo:
    return RunInfo("p", run_id, Path("/nowhere") / run_id, status=status, step=step, max_steps=29,
                   resumable_step=resumable)


def seen(table: RunsTable, run_id: str) -> list[str]:
    """The row's cells as the table draws them: cut to their column's width."""
    row = table.get_row(run_id)
    return [str(value)[:column.get_render_width(table) - 2 * table.cell_padding]
            for value, column in zip(row, table.ordered_columns)]


async def test_a_cell_that_grows_widens_its_column():
    app = Table()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(RunsTable)
        table.show([info("20261203-160538", "running", 8)], "20261203-160538")
        await pilot.pause()
        table.show([info("20261203-160538", "stopped", 29, resumable=29)], "20261203-160538")
        await pilot.pause()
        _label, status, step = seen(table, "20261203-160538")
        assert step == "29/29"
        assert status == "stopped ↻29"


async def test_new_runs_are_appended_and_the_cursor_stays_on_the_run_shown():
    app = Table()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(RunsTable)
        first, second = info("20261203-160538", "finished", 29), info("20261203-170000", "running", 3)
        table.show([first], first.run_id)
        table.show([first, second], first.run_id)
        await pilot.pause()
        assert table.run_ids == [first.run_id, second.run_id] and table.row_count == 2
        assert table.cursor_row == 0
        table.show([first, second], second.run_id)
        await pilot.pause()
        assert table.cursor_row == 1
