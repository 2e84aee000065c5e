"""The project picker: every project with its model and data, and the ones that cannot be read."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from smolora_engine import paths
from smolora_engine.projects import (
    ProjectEntry, create_project, delete_project, duplicate_project, list_projects, rename_project,
)
from smolora_engine.project import ProjectError

from ..dialogs import ConfirmDialog, TextInputDialog
from ..widgets.measured_table import MeasuredTable


def short_path(path: str, keep: int = 2) -> str:
    """The last `keep` parts of a path (the table has no room for whole absolute paths)."""
    from pathlib import Path

    parts = Path(path).parts
    return path if len(parts) <= keep + 1 else "…/" + "/".join(parts[-keep:])


def _name_check(existing: set[str]):
    def check(name: str) -> str | None:
        if problem := paths.check_project_name(name):
            return problem
        if name in existing:
            return f"a project named {name!r} already exists"
        return None
    return check


class ProjectPicker(Screen):
    """Pick, create, rename, duplicate or delete a project."""

    DEFAULT_CSS = """
    ProjectPicker #projects { height: 1fr; }
    ProjectPicker #detail {
        height: auto; max-height: 12; padding: 0 1;
        border-top: solid $primary; background: $panel;
    }
    ProjectPicker #detail.-error { color: $error; }
    ProjectPicker #empty { padding: 1 2; color: $text-muted; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open", id="picker.open", tooltip="Open the selected project"),
        Binding("n", "new", "New", id="picker.new", tooltip="Create a new project"),
        Binding("r", "rename", "Rename", id="picker.rename", tooltip="Rename the selected project"),
        Binding("c", "duplicate", "Duplicate", id="picker.duplicate", tooltip="Copy the selected project's settings"),
        Binding("delete,d", "delete", "Delete", id="picker.delete", tooltip="Delete the selected project"),
        Binding("f5", "refresh", "Refresh", id="picker.refresh", tooltip="Read the project files again"),
    ]

    class Open(Message):
        def __init__(self, name: str):
            super().__init__()
            self.name = name

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ProjectEntry] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield MeasuredTable(id="projects", cursor_type="row", zebra_stripes=True)
            yield Static(id="empty")
            yield Static(id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "smolora-tui"
        self.sub_title = "projects"
        table = self.query_one(DataTable)
        table.add_columns("Project", "Model", "Data", "Status")
        self.action_refresh()

    def action_refresh(self, select: str | None = None) -> None:
        table = self.query_one(DataTable)
        current = select or self.selected_name
        self.entries = list_projects()
        table.clear()
        for entry in self.entries:
            if entry.error:
                row = (entry.name, "-", "-", "unreadable")
            else:
                assert entry.project is not None
                status = "ok" if entry.usable else "has problems"
                row = (entry.name, short_path(entry.project.model.base),
                       short_path(entry.project.data.path) if entry.project.data.path else "(no data yet)", status)
            table.add_row(*row, key=entry.name)
        empty = self.query_one("#empty", Static)
        empty.display = not self.entries
        empty.update(f"No projects yet in {paths.projects_dir()}.\nPress n to create one.")
        names = [e.name for e in self.entries]
        if current in names:
            table.move_cursor(row=names.index(current))
        self._show_detail()

    @property
    def selected(self) -> ProjectEntry | None:
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row is None or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    @property
    def selected_name(self) -> str | None:
        return self.selected.name if self.selected else None

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        entry = self.selected
        detail.display = entry is not None
        if entry is None:
            return
        detail.set_class(bool(entry.error or not entry.usable), "-error")
        if entry.error or entry.problems:
            detail.update(entry.describe_problems())
        else:
            assert entry.project is not None
            detail.update(entry.project.description or str(entry.path))

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if entry.error:
            self.notify(entry.error, title="Cannot open", severity="error", timeout=8)
            return
        self.post_message(self.Open(entry.name))

    def _names(self) -> set[str]:
        return {e.name for e in self.entries}

    def action_new(self) -> None:
        def created(name: str | None) -> None:
            if name:
                self._run(lambda: create_project(name), f"Created {name}", select=name)

        self.app.push_screen(TextInputDialog("Name of the new project", check=_name_check(self._names()),
                                             ok_label="Create"), created)

    def action_rename(self) -> None:
        old = self.selected_name
        if old is None:
            return

        def renamed(new: str | None) -> None:
            if new and new != old:
                self._run(lambda: rename_project(old, new), f"Renamed {old} to {new}", select=new)

        self.app.push_screen(TextInputDialog(f"New name for {old}", old, _name_check(self._names() - {old}),
                                             ok_label="Rename"), renamed)

    def action_duplicate(self) -> None:
        old = self.selected_name
        if old is None:
            return

        def copied(new: str | None) -> None:
            if new:
                self._run(lambda: duplicate_project(old, new), f"Copied {old} to {new}", select=new)

        self.app.push_screen(TextInputDialog(f"Name of the copy of {old}", f"{old}-copy",
                                             _name_check(self._names()), ok_label="Duplicate"), copied)

    def action_delete(self) -> None:
        name = self.selected_name
        if name is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run(lambda: delete_project(name), f"Deleted {name}")

        self.app.push_screen(ConfirmDialog(f"Delete project {name!r} and all its runs, checkpoints and exports?",
                                           "Delete", danger=True), confirmed)

    def _run(self, action, done: str, select: str | None = None) -> None:
        try:
            action()
        except ProjectError as exc:
            self.notify(str(exc), title="Not done", severity="error", timeout=8)
            return
        self.notify(done)
        self.action_refresh(select)
