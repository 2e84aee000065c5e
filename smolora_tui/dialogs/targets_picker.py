"""Choose the linear layers that get a LoRA adapter, from the model's own layers."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, SelectionList

from smolora_engine.estimate import ModelFacts, targeted

from .frame import Dialog


class TargetsDialog(Dialog["list[str] | None"]):
    """Dismisses with the new lora.target_modules (['all-linear'] when every layer is chosen), or None."""

    DEFAULT_CSS = """
    TargetsDialog > Vertical { width: 72; padding: 0 1; }
    TargetsDialog .title { text-style: bold; margin-bottom: 1; }
    TargetsDialog SelectionList { height: auto; max-height: 16; }
    TargetsDialog #count { color: $text-muted; margin: 1 0 0 0; }
    TargetsDialog Horizontal { margin-top: 1; }
    TargetsDialog Button { margin-left: 1; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel", tooltip="Close without changing the targets"),
        Binding("a", "all", "All", id="targets.all", tooltip="Choose every linear layer"),
        Binding("n", "none", "None", id="targets.none", tooltip="Clear the choice"),
    ]

    def __init__(self, model: str, facts: ModelFacts, targets: list[str]):
        super().__init__()
        self.model, self.facts = model, facts
        self.chosen = set(targeted(facts, targets))

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"LoRA targets in {self.model} (in→out ×layers)", classes="title")
            yield SelectionList[str](*[(self.facts.describe_layer(name), name, name in self.chosen)
                                       for name in self.facts.linear])
            yield Label("", id="count")
            with Horizontal():
                yield Button("All", id="all")
                yield Button("Cancel", id="cancel")
                yield Button("Use these", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()
        self._count()

    @on(SelectionList.SelectedChanged)
    def _count(self) -> None:
        chosen = self.query_one(SelectionList).selected
        self.query_one("#count", Label).update(f"{len(chosen)} of {len(self.facts.linear)} layer types chosen"
                                               if chosen else "choose at least one layer")
        self.query_one("#ok", Button).disabled = not chosen

    @on(Button.Pressed, "#all")
    def action_all(self) -> None:
        self.query_one(SelectionList).select_all()

    def action_none(self) -> None:
        self.query_one(SelectionList).deselect_all()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        chosen = list(self.query_one(SelectionList).selected)
        if chosen:
            self.dismiss(["all-linear"] if set(chosen) == set(self.facts.linear) else
                         [name for name in self.facts.linear if name in chosen])

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
