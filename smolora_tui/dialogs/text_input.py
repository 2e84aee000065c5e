from __future__ import annotations

from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label

from .frame import Dialog


class TextInputDialog(Dialog["str | None"]):
    """Ask for one line of text, checked as it is typed; dismisses with the text or None."""

    DEFAULT_CSS = """
    TextInputDialog Horizontal { margin-top: 1; }
    TextInputDialog Label { width: 100%; }  /* a long prompt or error wraps instead of being cut */
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel", tooltip="Close without doing anything")]

    def __init__(self, prompt: str, value: str = "", check: Callable[[str], "str | None"] | None = None,
                 ok_label: str = "OK"):
        super().__init__()
        self.prompt = prompt
        self.value = value
        self.check = check or (lambda _v: None)
        self.ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt)
            yield Input(self.value, id="value")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.ok_label, id="ok", variant="primary")

    @on(Input.Changed)
    def _validate(self, event: Input.Changed) -> None:
        problem = self.check(event.value.strip())
        self.query_one("#error", Label).update(problem or "")
        self.query_one("#ok", Button).disabled = problem is not None

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        value = self.query_one(Input).value.strip()
        if self.check(value) is None:
            self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
