"""Textual's DataTable, drawn again once it has measured its columns."""

from __future__ import annotations

from textual.widgets import DataTable


class MeasuredTable(DataTable):
    """A DataTable whose lines never stay cut at the widths its columns had before they were measured.

    DataTable measures the cells of new rows when it is next idle, and caches each line it draws under
    its update count, which measuring leaves alone. A frame drawn in between (on a busy machine, or
    just after a table is cleared and filled again) draws the rows at the headers' widths, and those
    lines stay on screen whenever the measured table comes out the size it was: a preview refilled
    with the same file showed `signa` for `signature_chat.jsonl:1`. Textual 8.2 does this; so a table
    here forgets its drawn lines whenever measuring changes a column's width.
    """

    def _widths(self) -> list[int]:
        return [column.get_render_width(self) for column in self.ordered_columns]

    def _measured(self, measure, *args) -> None:
        before = self._widths()
        measure(*args)
        if self._widths() != before:
            self._clear_caches()
            self.refresh()

    def _update_column_widths(self, updated_cells) -> None:
        self._measured(super()._update_column_widths, updated_cells)

    def _update_dimensions(self, new_rows) -> None:
        self._measured(super()._update_dimensions, new_rows)
