from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from .frame import Dialog


class ChoiceDialog(Dialog["str | None"]):
    """A question with several answers (e.g. Save / Discard / Cancel); dismisses with the chosen key or None."""

    DEFAULT_CSS = """
    ChoiceDialog Label { width: 100%; margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel", tooltip="Close without doing anything")]

    def __init__(self, question: str, choices: list[tuple[str, str, str]], focus: str | None = None):
        """`choices`: (key, label, variant) for each button, left to right; a Cancel button comes first."""
        super().__init__()
        self.question, self.choices, self.focus_key = question, choices, focus

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button("Cancel", id="cancel")
                for key, label, variant in self.choices:
                    yield Button(label, id=f"choice-{key}", variant=variant)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.focus_key}" if self.focus_key else "#cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        self.dismiss(button.removeprefix("choice-") if button.startswith("choice-") else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
