"""One project's overview: its settings as saved, and every problem with them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from smolora_engine.projects import ProjectEntry, read_project


class ProjectScreen(Screen):
    DEFAULT_CSS = """
    ProjectScreen #summary { padding: 1 2; height: auto; }
    ProjectScreen #problems { padding: 0 2; color: $error; height: auto; }
    ProjectScreen #settings { padding: 1 2; height: auto; background: $panel; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Projects", id="project.back", tooltip="Back to the project list"),
        Binding("f5", "reload", "Reload", id="project.reload", tooltip="Read the project file again"),
    ]

    def __init__(self, name: str):
        super().__init__()
        self.project_name = name
        self.entry: ProjectEntry | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static(id="summary")
            yield Static(id="problems")
            yield Static(id="settings", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.project_name
        self.action_reload()

    def action_reload(self) -> None:
        self.entry = entry = read_project(self.project_name)
        problems = self.query_one("#problems", Static)
        if entry.error or entry.project is None:
            self.query_one("#summary", Static).update(f"[b]{self.project_name}[/b]")
            problems.update(entry.error or "")
            self.query_one("#settings", Static).update("")
            return
        p = entry.project
        self.sub_title = p.model.base
        self.query_one("#summary", Static).update(
            f"[b]{p.name}[/b]  {p.description}\n"
            f"model [b]{p.model.base}[/b] on {p.model.device}   data {p.data.path or '(none yet)'}\n"
            f"LoRA r={p.lora.r} alpha={p.lora.alpha:g} on {', '.join(p.lora.target_modules)}   "
            f"lr {p.training.learning_rate:g}, effective batch {p.effective_batch}"
        )
        problems.update("\n".join(pr.message for pr in entry.problems))
        self.query_one("#settings", Static).update(f"# {entry.path}\n{p.to_toml()}")
