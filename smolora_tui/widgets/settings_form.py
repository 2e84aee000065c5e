"""The project's settings as a form: every field checked as it is typed, with the engine's own messages."""

from __future__ import annotations

import json
from typing import Any, Iterable

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch

from smolora_engine.project import Problem, Project

from smolora_engine.project_load import blocking, project_from_dict, warnings_of

from smolora_engine.project_fields import FieldSpec, field_specs, get_value, parse_assignment, set_value

from ..later import Later

# Fields with a chooser next to their editor: key -> (button label, tooltip).
CHOOSERS = {
    "model.base": ("Choose…", "Pick an embedded model, one in the Hugging Face cache, or a local folder"),
    "lora.target_modules": ("Pick…", "Pick from the model's own linear layers"),
}
# Section titles and rows built before the first frame: what a laptop-size terminal (100 x 30) shows.
FIRST_PARTS = 6
SECTION_TITLES = {"model": "Base model", "data": "Data", "lora": "LoRA", "training": "Training",
                  "eval": "Eval samples", "notify": "When a run ends", "output": "Output"}


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "--")


def as_text(spec: FieldSpec, value: Any) -> str:
    if spec.kind is list:  # comma-separated, or a TOML list when an item holds a comma (a check, a regex)
        items = [str(v) for v in value]
        if any("," in v or v != v.strip() or not v for v in items):
            return json.dumps(items, ensure_ascii=False)
        return ", ".join(items)
    if spec.kind is dict:  # a TOML inline table, as typed back
        return "" if not value else "{" + ", ".join(f"{k} = {toml_scalar(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


def parse_text(spec: FieldSpec, text: str) -> Any:
    """What a person typed, as the value the engine checks (TOML where it parses, else plain text)."""
    text = text.strip()
    if spec.kind is str:
        return text
    if spec.kind is dict and not text:
        return {}
    if spec.kind is list and not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    _key, value = parse_assignment(f"v={text}")
    return value


class FieldRow(Vertical):
    """Label, editor, and the field's doc or its problem."""

    DEFAULT_CSS = """
    FieldRow { height: auto; margin-bottom: 1; }
    FieldRow > Horizontal { height: auto; }
    FieldRow .name { width: 26; padding: 0 1 0 0; text-style: bold; }
    FieldRow Input, FieldRow Select { width: 1fr; }
    FieldRow Switch { width: auto; }
    FieldRow Button { width: auto; min-width: 10; height: 1; border: none; margin-left: 1; }
    FieldRow .doc { color: $text-muted; padding-left: 26; }
    FieldRow.-invalid .doc { color: $error; }
    FieldRow.-warning .doc { color: $warning; }
    FieldRow.-invalid Input { background: $error 20%; }
    FieldRow.-changed .name { color: $warning; }
    """

    def __init__(self, spec: FieldSpec, value: Any, problem: str | None = None, changed: bool = False,
                 warning: str | None = None):
        super().__init__(id=field_id(spec.key), classes=("-invalid " if problem else "-warning " if warning else "")
                         + ("-changed" if changed else ""))
        self.spec, self.value, self.problem, self.warning = spec, value, problem, warning

    def compose(self) -> ComposeResult:
        spec = self.spec
        with Horizontal():
            yield Label(spec.key.split(".", 1)[1], classes="name")
            if spec.kind is bool:
                yield Switch(value=bool(self.value), tooltip=spec.full_doc)
            elif spec.choices:
                yield Select([(c, c) for c in spec.choices], value=self.value, allow_blank=False,
                             tooltip=spec.full_doc, compact=True)
            else:
                yield Input(as_text(spec, self.value), tooltip=spec.full_doc, select_on_focus=False, compact=True)
            if spec.key in CHOOSERS:
                label, tooltip = CHOOSERS[spec.key]
                yield Button(label, tooltip=tooltip, compact=True, classes="chooser")
        shown = self.problem or (f"⚠ {self.warning}" if self.warning else spec.full_doc)
        yield Static(shown, classes="doc", markup=False)

    def show_problem(self, problem: str | None, warning: str | None = None) -> None:
        """A problem (the value is refused) or a warning (it is kept, and questioned) in place of the doc."""
        self.set_class(problem is not None, "-invalid")
        self.set_class(problem is None and warning is not None, "-warning")
        shown = problem if problem is not None else f"⚠ {warning}" if warning is not None else self.spec.full_doc
        self.query_one(".doc", Static).update(shown)

    def set_editor_value(self, value: Any) -> None:
        self.value = value
        editor = self.query_one("Input, Select, Switch")
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            if isinstance(editor, Switch):
                editor.value = bool(value)
            elif isinstance(editor, Select):
                editor.value = value
            else:
                editor.value = as_text(self.spec, value)


class SettingsForm(Widget):
    """Edits a copy of a project; posts `Edited` after each change with the problems of the result."""

    DEFAULT_CSS = """
    SettingsForm { height: 1fr; }
    SettingsForm .section { text-style: bold; color: $accent; padding: 1 0 1 0; }
    """

    class ChooseRequested(Message):
        """A field's chooser button was pressed (the screen opens the dialog)."""

        def __init__(self, key: str):
            super().__init__()
            self.key = key

    class Edited(Message):
        def __init__(self, project: Project, problems: list[Problem], dirty: bool):
            super().__init__()
            self.project, self.problems, self.dirty = project, problems, dirty

    def __init__(self, project: Project, *, id: str | None = None):
        super().__init__(id=id)
        self.saved = project
        self.project = project
        self.texts: dict[str, str] = {}  # invalid text kept per field until it is fixed
        self.problems: list[Problem] = []
        self.later = Later(self)  # rows below the first screenful are built after the first frame

    def compose(self) -> ComposeResult:
        parts: list[str | FieldSpec] = []  # section names and fields, in order
        section = None
        for spec in field_specs():
            if spec.key == "data.columns":  # set from the Data mode's column mapping
                continue
            if spec.key.split(".")[0] != section:
                section = spec.key.split(".")[0]
                parts.append(section)
            parts.append(spec)
        with VerticalScroll(id="fields"):
            yield from self._widgets(parts[:FIRST_PARTS])
        self.later.add("rest", lambda: self.query_one("#fields").mount_all(list(self._widgets(parts[FIRST_PARTS:]))))

    def on_mount(self) -> None:
        self.later.start()

    def _widgets(self, parts: list[str | FieldSpec]) -> Iterable[Widget]:
        """Section titles and field rows, showing the form's current state (rows built late included)."""
        problems = {p.field: p.message for p in blocking(self.problems)}
        warned = {p.field: p.message for p in warnings_of(self.problems)}
        for part in parts:
            if isinstance(part, str):
                yield Static(SECTION_TITLES.get(part, part), classes="section")
            else:
                key = part.key
                yield FieldRow(part, get_value(self.project, key), problems.get(key),
                               get_value(self.project, key) != get_value(self.saved, key), warned.get(key))

    @property
    def dirty(self) -> bool:
        return self.project.to_dict() != self.saved.to_dict() or bool(self.texts)

    @property
    def valid(self) -> bool:
        return not self.texts and not blocking(self.problems)

    def _row(self, widget: Widget) -> FieldRow | None:
        for node in widget.ancestors_with_self:
            if isinstance(node, FieldRow):
                return node
        return None

    @on(Button.Pressed, ".chooser")
    def _choose(self, event: Button.Pressed) -> None:
        event.stop()
        if (row := self._row(event.button)) is not None:
            self.post_message(self.ChooseRequested(row.spec.key))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event: Input.Changed | Select.Changed | Switch.Changed) -> None:
        event.stop()
        row = self._row(event.control)
        if row is None:
            return
        key, from_text = row.spec.key, isinstance(event, Input.Changed)
        if key not in self.texts and (parse_text(row.spec, event.value) if from_text else event.value) \
                == get_value(self.project, key):
            return  # an editor showing the value it already has (as each does when mounted)
        self.edit(key, event.value, from_text=from_text)

    def edit(self, key: str, raw: Any, from_text: bool = False) -> None:
        """Apply one field's new value (text as typed, or a value); show its problem or accept it."""
        row = self.query_one(f"#{field_id(key)}", FieldRow)
        value = parse_text(row.spec, raw) if from_text else raw
        candidate, problems = set_value(self.project, key, value)
        mine = [p for p in blocking(problems) if p.field == key]
        problem = mine[0].message if mine else None
        if problem is None:
            self.project, self.problems = candidate, problems
            self.texts.pop(key, None)
            if not from_text:  # chosen in a dialog: show it in the editor
                row.set_editor_value(get_value(candidate, key))
        else:
            self.texts[key] = str(raw)
        warned = [p.message for p in warnings_of(problems) if p.field == key] if problem is None else []
        row.show_problem(problem, warned[0] if warned else None)
        row.set_class(get_value(self.project, key) != get_value(self.saved, key), "-changed")
        self._refresh_others()
        self.post_message(self.Edited(self.project, self.problems, self.dirty))

    def _refresh_others(self) -> None:
        """Cross-field problems (e.g. alpha against r) show on the field they name."""
        by_field = {p.field: p.message for p in blocking(self.problems)}
        warned = {p.field: p.message for p in warnings_of(self.problems)}
        for row in self.query(FieldRow):
            if row.spec.key not in self.texts:
                row.show_problem(by_field.get(row.spec.key), warned.get(row.spec.key))

    def load(self, project: Project, *, saved: bool = False) -> None:
        """Show `project` (a preset applied, the file reloaded); `saved` marks it as the file's content."""
        self.project = project
        if saved:
            self.saved = project
        self.texts.clear()
        _same, self.problems = project_from_dict(project.to_dict(), project.name)
        for row in self.query(FieldRow):
            row.set_editor_value(get_value(project, row.spec.key))
            row.set_class(get_value(project, row.spec.key) != get_value(self.saved, row.spec.key), "-changed")
        self._refresh_others()
        self.post_message(self.Edited(self.project, self.problems, self.dirty))

    def mark_saved(self) -> None:
        self.saved = self.project
        for row in self.query(FieldRow):
            row.remove_class("-changed")
        self.post_message(self.Edited(self.project, self.problems, self.dirty))
