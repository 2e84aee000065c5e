"""The project's runs, one row each: its label, status and step."""

from __future__ import annotations

from smolora_engine.runs import RunInfo

from .measured_table import MeasuredTable
from .run_text import count, list_labels, status_text

COLUMNS = ("run", "status", "step")


class RunsTable(MeasuredTable):
    """Rows are updated in place and new runs appended, so the cursor never jumps to another run."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.run_ids: list[str] = []  # the rows' runs, in order
        self._rows: list[tuple] = []

    def show(self, infos: list[RunInfo], shown: str | None) -> None:
        """These runs, with the cursor on `shown`."""
        if not self.columns:
            self.add_columns(*COLUMNS)
        rows = [(label, status_text(i), f"{count(i.step)}/{count(i.max_steps) if i.max_steps else '?'}")
                for label, i in zip(list_labels([i.run_id for i in infos]), infos)]
        ids = [i.run_id for i in infos]
        known = len(self.run_ids)
        if ids[:known] == self.run_ids:  # the same runs, maybe new ones after them
            for info, row, old in zip(infos, rows, self._rows):
                if row[1:] != old[1:]:
                    for column, value in zip(self.ordered_columns[1:], row[1:]):
                        self.update_cell(info.run_id, column.key, value, update_width=True)
            for info, row in zip(infos[known:], rows[known:]):
                self.add_row(*row, key=info.run_id)
        else:
            self.clear()
            for info, row in zip(infos, rows):
                self.add_row(*row, key=info.run_id)
        if shown in ids and self.cursor_row != ids.index(shown):
            self.move_cursor(row=ids.index(shown), animate=False)
        self._rows, self.run_ids = rows, ids
