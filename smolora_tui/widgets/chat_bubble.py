"""One message of a chat: who said it, and the text, which grows as an answer's tokens arrive."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Bubble(Static):
    """One message; an answer grows as tokens arrive."""

    DEFAULT_CSS = """
    Bubble { height: auto; padding: 0 1; margin: 0 0 1 0; }
    Bubble.user { background: $boost; border-left: thick $secondary; }
    Bubble.answer { border-left: thick $success; }
    Bubble.error { border-left: thick $error; color: $error; }
    """

    def __init__(self, who: str, text: str = "", classes: str = "", model_name: str = ""):
        super().__init__(classes=classes, markup=False)
        self.who, self.text, self.footer, self.model_name = who, text, "", model_name
        self._draw()

    def add(self, piece: str) -> None:
        self.text += piece
        self._draw()

    def finish(self, footer: str) -> None:
        self.footer = footer
        self._draw()

    def _draw(self) -> None:
        body = Text.assemble((self.who + "\n", "bold"), self.text or "…")
        if self.footer:
            body.append("\n" + self.footer, style="dim")
        self.update(body)
