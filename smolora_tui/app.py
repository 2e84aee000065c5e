"""The smolora-tui application."""

from __future__ import annotations

import sys
from typing import Iterable

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

from smolora_engine import paths
from smolora_engine.projects import create_project
from smolora_engine.project import ProjectError
from smolora_engine.project_fields import PRESETS

from .dialogs import ConfirmDialog
from .screens.help import HelpScreen
from .screens.picker import ProjectPicker
from .screens.project import MODE_HELP, MODES, ProjectScreen
from .widgets.chat_pane import ChatPane
from .widgets.merge_pane import MergePane
from .widgets.train_pane import TrainPane
from .model_facts import ModelFactsCache
from .state import load_state, update_state


def first(screen: Screen, kind: type[Widget]) -> Widget | None:
    """The screen's widget of this kind, or None while it is not built yet (modes are built lazily)."""
    found = screen.query(kind)
    return found.first() if found else None


def terminal_hung_up(fd: int) -> bool:
    """Whether the terminal on `fd` has hung up (its window closed, the SSH link dropped). A process
    that outlives its terminal without a SIGHUP (started by make, say) reads end-of-file from it at
    once, and Textual's input thread would spin on that; a hung-up terminal fails every request."""
    try:
        import termios
    except ImportError:  # Windows: no POSIX terminal to ask
        return False
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    return False


class SmoloraApp(App):
    TITLE = "smolora-tui"
    # A compact footer gives every key a margin on its right, the command palette's key too: docked right, its
    # margin left the last column to whatever key had scrolled beneath it (a stray letter where the keys overflow)
    CSS = """
    Footer.-compact FooterKey.-command-palette { margin-right: 0; padding-right: 1; }
    """
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Quit (training keeps running)", priority=True),
        Binding("ctrl+c", "quit", "Quit", id="app.quit_c", tooltip="Quit (training keeps running)",
                show=False, priority=True),
        Binding("f1,question_mark", "help", "Help", id="app.help", tooltip="What this screen does, and its keys"),
    ]

    def __init__(self, project: str | None = None):
        super().__init__()
        self.start_project = project
        self.model_facts = ModelFactsCache()  # base models' layers and this machine's device, asked once

    def on_mount(self) -> None:
        theme = load_state().get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, lambda theme: update_state(theme=theme.name))
        stdin = sys.__stdin__
        if not self.is_headless and stdin is not None and stdin.isatty():
            self.set_interval(1.0, self._exit_if_hung_up, name="terminal watch")
        if self.start_project and paths.project_file(self.start_project).exists() \
                and not paths.check_project_name(self.start_project):
            # Straight to the project: the list is made when the person goes back to it.
            self.push_screen(ProjectScreen(self.start_project, self.last_mode(self.start_project)))
            return
        self.push_screen(ProjectPicker())
        if self.start_project:
            self.open_project(self.start_project)

    def _exit_if_hung_up(self) -> None:
        if terminal_hung_up(sys.__stdin__.fileno()):
            self.exit(return_code=1)  # training goes on in its own process; `smolora-tui --project` re-attaches

    def open_project(self, name: str) -> None:
        if problem := paths.check_project_name(name):
            self.notify(problem, severity="error")
            return
        if paths.project_file(name).exists():
            self.push_screen(ProjectScreen(name, self.last_mode(name)))
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
            self.push_screen(ProjectScreen(name, "data"))

        self.push_screen(ConfirmDialog(f"There is no project named {name!r}. Create it?", "Create"), answered)

    @on(ProjectPicker.Open)
    def _open(self, message: ProjectPicker.Open) -> None:
        self.open_project(message.name)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.screen
        topic = screen.mode if isinstance(screen, ProjectScreen) and screen.entry.project else "picker"
        keys = [(active.binding.key_display or self.get_key_display(active.binding),
                 active.binding.tooltip or active.binding.description)
                for active in self.active_bindings.values()
                # ours all have an id: those the footer leaves out for room (1-5, Ctrl+S) are listed too
                if (active.binding.show or active.binding.id) and active.binding.description and active.enabled]
        self.push_screen(HelpScreen(topic, keys))

    # ------------------------------------------------------------------ memory and commands

    @staticmethod
    def last_mode(name: str) -> str:
        """The mode the project was left on; a project not opened before starts on Data, where work starts."""
        mode = load_state().get("modes", {}).get(name, "data")
        return mode if mode in MODES else "data"

    @on(ProjectScreen.ModeChanged)
    def _remember_mode(self, message: ProjectScreen.ModeChanged) -> None:
        update_state(modes={message.project: message.mode})

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, ProjectScreen) and screen.entry.project is not None:
            for key, (mode, text) in enumerate(MODE_HELP.items(), start=1):
                yield SystemCommand(mode.title(), f"{text} ({key})", lambda mode=mode: screen.action_mode(mode))
            yield SystemCommand("Check data", "Run the data doctor in the background", screen.run_doctor)
            train = first(screen, TrainPane)
            for action, title, text in (("start", "Start training", "A new run with the saved settings"),
                                        ("stop", "Stop training", "Stop the run after saving a checkpoint"),
                                        ("resume", "Resume training", "Continue the shown run from its checkpoint")):
                if train is not None and train.check_action(action, ()):
                    yield SystemCommand(title, text, lambda action=action: (screen.action_mode("train"),
                                                                             train.run_action(action)))
            merge = first(screen, MergePane)
            if merge is not None and merge.source is not None and not merge.busy:
                yield SystemCommand("Merge adapter", "Merge the chosen adapter into a model folder",
                                    lambda: (screen.action_mode("merge"), merge.action_merge()))
                yield SystemCommand("Export GGUF", "GGUF and an Ollama Modelfile for the chosen adapter",
                                    lambda: (screen.action_mode("merge"), merge.action_export()))
            if (chat := first(screen, ChatPane)) is not None:
                yield SystemCommand("New conversation", "Clear the chat", lambda: (screen.action_mode("chat"),
                                                                                    chat.action_new()))
            if screen.query("#form") and screen.form.dirty:
                yield SystemCommand("Save settings", "Write the project file (Ctrl+S)", screen.action_save)
                yield SystemCommand("Discard changes", "Read the project file again", screen.action_reload)
            yield SystemCommand("Choose base model", "Embedded, Hugging Face cache or a local folder",
                                screen.choose_model)
            yield SystemCommand("Pick LoRA target layers", "From the model's own linear layers",
                                screen.choose_targets)
            for name, (text, _values) in PRESETS.items():
                yield SystemCommand(f"Preset: {name}", text, lambda name=name: screen.apply_preset(name))
            yield SystemCommand("Back to projects", "The project list", screen.action_leave)
