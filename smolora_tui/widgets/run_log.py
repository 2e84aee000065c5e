"""The worker's log of the run shown, followed as it grows."""

from __future__ import annotations

from rich.text import Text

from ..run_follow import RunHistory
from .rewrap_log import RewrapLog

LOG_BURST = 40  # at most this many new log lines are written per redraw


class RunLog(RewrapLog):
    """Writes a run's new log lines at each `show`; another run's log starts afresh."""

    def __init__(self, **kwargs):
        super().__init__(max_lines=500, wrap=True, min_width=20, markup=False, **kwargs)
        self._run: str | None = None
        self._shown = 0  # how many of the run's lines (ever) are written

    def show(self, history: RunHistory | None) -> None:
        if history is None:
            return
        if history.run_id != self._run:
            self.clear()
            self._run, self._shown = history.run_id, history.log_total - len(history.log)
        new = history.log_total - self._shown
        if new > LOG_BURST:  # a flood of lines: show the newest, not every one (the pane holds a few anyway)
            self.clear()
            new = LOG_BURST
        for line in list(history.log)[-new:] if new > 0 else []:
            style = {"warning": "yellow", "error": "bold red"}.get(line.level, "")
            prefix = {"warning": "warning: ", "error": "error: "}.get(line.level, "")
            self.write(Text(prefix + line.text, style=style))
        self._shown = history.log_total
