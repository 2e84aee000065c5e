"""The smolora-tui application."""

from __future__ import annotations

from textual import on
from textual.app import App
from textual.binding import Binding

from smolora_engine import paths
from smolora_engine.projects import create_project
from smolora_engine.project import ProjectError

from .dialogs import ConfirmDialog
from .screens.picker import ProjectPicker
from .screens.project import ProjectScreen


class SmoloraApp(App):
    TITLE = "smolora-tui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Quit (training keeps running)", priority=True),
        Binding("ctrl+c", "quit", "Quit", id="app.quit_c", tooltip="Quit (training keeps running)",
                show=False, priority=True),
    ]

    def __init__(self, project: str | None = None):
        super().__init__()
        self.start_project = project

    def on_mount(self) -> None:
        self.push_screen(ProjectPicker())
        if self.start_project:
            self.open_project(self.start_project)

    def open_project(self, name: str) -> None:
        if problem := paths.check_project_name(name):
            self.notify(problem, severity="error")
            return
        if paths.project_file(name).exists():
            self.push_screen(ProjectScreen(name))
            return

        def answered(create: bool | None) -> None:
            if not create:
                return
            try:
                create_project(name)
            except ProjectError as exc:
                self.notify(str(exc), severity="error")
                return
            if isinstance(self.screen, ProjectPicker):
                self.screen.action_refresh(name)
            self.push_screen(ProjectScreen(name))

        self.push_screen(ConfirmDialog(f"There is no project named {name!r}. Create it?", "Create"), answered)

    @on(ProjectPicker.Open)
    def _open(self, message: ProjectPicker.Open) -> None:
        self.open_project(message.name)
