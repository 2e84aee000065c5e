"""Choose the base model: an embedded one, one in the local Hugging Face cache, or a local folder."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from smolora_engine.estimate import FactsError, read_facts
from smolora_engine.models import EMBEDDED_MODELS, ModelSource, available_models, check_model_folder

from .frame import Dialog

KIND_TEXT = {"embedded": "embedded, works offline", "hf-cache": "local Hugging Face cache", "local": "local folder"}


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def describe(source: ModelSource) -> str:
    """One model's details: where it is and what it is made of (from its files, when it is ready)."""
    if source.kind == "embedded":
        lines = [EMBEDDED_MODELS[source.spec].description]
        if not source.ready:
            return "\n".join(lines + ["converted once on first use (about 20 s), then loaded in about 2 s"])
    else:
        lines = [str(source.path)]
    try:
        facts = read_facts(source.path)
    except FactsError as exc:
        return "\n".join(lines + [str(exc)])
    lines.append(f"{facts.architecture}: {facts.params / 1e6:,.0f} M parameters, {facts.layers} layers, "
                 f"hidden {facts.hidden}, vocabulary {facts.vocab:,}, {folder_size(source.path) / 1e9:.2f} GB "
                 "on disk")
    if facts.linear:
        lines.append("linear layers: " + ", ".join(facts.linear))
    return "\n".join(lines)


class ModelPickerDialog(Dialog["str | None"]):
    """Dismisses with the chosen model.base value, or None."""

    DEFAULT_CSS = """
    ModelPickerDialog > Vertical { width: 96; padding: 0 1; }
    ModelPickerDialog .title { text-style: bold; margin-bottom: 1; }
    ModelPickerDialog OptionList { height: auto; max-height: 10; }
    ModelPickerDialog #detail { height: auto; min-height: 3; color: $text-muted; margin: 1 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel", tooltip="Close without changing the model")]

    def __init__(self, current: str):
        super().__init__()
        self.current = current
        self.sources: list[ModelSource] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Base model: pick one found on this machine (nothing is downloaded)", classes="title")
            yield OptionList(id="models")
            yield Static("looking for models …", id="detail", markup=False)
            yield Label("… or a local Hugging Face model folder (the one with config.json):")
            local = self.current if Path(self.current).expanduser().is_dir() else ""
            yield Input(local, placeholder="/path/to/model-folder", id="folder")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Use folder", id="use-folder", variant="primary", disabled=not local)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self._find()

    @work(thread=True, exclusive=True, group="find-models", exit_on_error=False)
    def _find(self) -> None:
        sources = available_models()
        self.app.call_from_thread(self._found, sources)

    def _found(self, sources: list[ModelSource]) -> None:
        self.sources = sources
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(f"{'● ' if s.spec == self.current else '  '}{s.spec}  ({KIND_TEXT[s.kind]})",
                                    id=str(index)) for index, s in enumerate(sources)])
        current = next((i for i, s in enumerate(sources) if s.spec == self.current), 0)
        if sources:
            options.highlighted = current
        else:
            self.query_one("#detail", Static).update("no embedded or cached model was found: type a folder below")

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._detail(self.sources[int(event.option.id or 0)])

    @work(thread=True, exclusive=True, group="model-detail", exit_on_error=False)
    def _detail(self, source: ModelSource) -> None:
        text = describe(source)
        self.app.call_from_thread(self.query_one("#detail", Static).update, text)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.sources[int(event.option.id or 0)].spec)

    @on(Input.Changed, "#folder")
    def _check(self, event: Input.Changed) -> None:
        problem = check_model_folder(event.value) if event.value.strip() else None
        self.query_one("#error", Label).update(problem or "")
        self.query_one("#use-folder", Button).disabled = problem is not None or not event.value.strip()

    @on(Input.Submitted, "#folder")
    @on(Button.Pressed, "#use-folder")
    def _use_folder(self) -> None:
        value = self.query_one("#folder", Input).value.strip()
        problem = check_model_folder(value)
        if problem is None:
            self.dismiss(str(Path(value).expanduser().resolve()))
        else:
            self.query_one("#error", Label).update(problem)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
