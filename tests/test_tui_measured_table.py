"""A table's rows are drawn at their measured widths, even when a frame came before the measuring."""

from __future__ import annotations

from textual.app import App, ComposeResult

from smolora_tui.widgets.measured_table import MeasuredTable

WHERE = "signature_chat.jsonl:1"
MESSAGES = '[{"role": "user", "content": "What is 1 + 1?"}]'


class Table(App):
    def compose(self) -> ComposeResult:
        yield MeasuredTable()


def fill(table: MeasuredTable) -> None:
    """What the data preview does with each file it shows: clear, then columns and rows."""
    table.clear(columns=True)
    table.add_columns("where", "messages")
    for _ in range(3):
        table.add_row(WHERE, MESSAGES)


def drawn(table: MeasuredTable, y: int) -> str:
    return table.render_line(y).text


async def test_a_table_filled_again_is_drawn_at_its_measured_widths():
    app = Table()
    async with app.run_test(size=(100, 8)) as pilot:
        table = app.query_one(MeasuredTable)
        fill(table)
        await pilot.pause()
        fill(table)  # the same file again: the measured table is the size it was
        assert WHERE not in drawn(table, 1)  # a frame before the table is idle: the header's widths
        await pilot.pause()
        assert "where" in drawn(table, 0) and WHERE in drawn(table, 1) and MESSAGES in drawn(table, 1)


async def test_a_cell_that_grows_is_drawn_whole():
    app = Table()
    async with app.run_test(size=(100, 8)) as pilot:
        table = app.query_one(MeasuredTable)
        table.add_columns("run", "status")
        table.add_row("r1", "running", key="r1")
        await pilot.pause()
        table.update_cell("r1", table.ordered_columns[1].key, "stopped ↻29 (resumable)", update_width=True)
        assert "stopped ↻29 (resumable)" not in drawn(table, 1)
        await pilot.pause()
        assert "stopped ↻29 (resumable)" in drawn(table, 1)
