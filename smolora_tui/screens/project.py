"""One project: a mode per area (Data, Settings, Train, Merge, Chat), switched with the number keys or the tab bar."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widget import AwaitMount, Widget
from textual.widgets import Footer, Header, Input, Select, Static, TabbedContent, TabPane, TextArea

from smolora_engine.estimate import FactsError
from smolora_engine.project import ProjectError
from smolora_engine.project_fields import PRESETS, apply_preset, set_value
from smolora_engine.project_load import blocking
from smolora_engine.projects import ProjectEntry, read_project, save_project
from smolora_engine.runs import running_holder

from ..dialogs import ChoiceDialog, ConfirmDialog, ModelPickerDialog, TargetsDialog
from ..later import Later
from ..model_facts import ModelFactsCache
from ..widgets.chat_pane import ChatPane
from ..widgets.data_pane import DataPane
from ..widgets.memory_estimate import MemoryEstimate
from ..widgets.merge_pane import MergePane
from ..widgets.settings_form import SettingsForm
from ..widgets.train_pane import TrainPane
from .picker import ProjectPicker, short_path

MODE_HELP = {
    "data": "Browse, preview and check the training data",
    "settings": "Base model, LoRA and training settings",
    "train": "Start, follow, stop and resume training runs",
    "merge": "Merge an adapter into a model folder; export GGUF for llama.cpp and Ollama",
    "chat": "Talk to the base and the tuned model, side by side",
}
MODES = tuple(MODE_HELP)


class ProjectScreen(Screen):
    DEFAULT_CSS = """
    ProjectScreen { overflow: hidden; }
    /* At a laptop's 80x24 the summary line names the project: its rows go to the modes. */
    ProjectScreen.-short Header { display: none; }
    ProjectScreen #modes { height: 1fr; }
    ProjectScreen #modes > ContentSwitcher { height: 1fr; }
    ProjectScreen TabPane { height: 1fr; padding: 0; }
    ProjectScreen #summary { height: 1; padding: 0 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    ProjectScreen #problems { height: auto; padding: 0 1; color: $error; }
    ProjectScreen #settings-bar { height: auto; padding: 0 1; }
    ProjectScreen #settings-bar Static { width: 1fr; }
    ProjectScreen #settings-bar Select { width: 48; }
    ProjectScreen #settings-status.-unsaved { color: $warning; }
    ProjectScreen #settings-status.-invalid { color: $error; }
    """
    BINDINGS = [
        Binding("escape", "leave", "Projects", id="project.back",
                tooltip="Back to the project list (from a text field: out of the field first)"),
        Binding("1", "mode('data')", "Data", id="project.data", show=False, tooltip="Browse and check the data"),
        Binding("2", "mode('settings')", "Settings", id="project.settings", show=False,
                tooltip="Model, LoRA and training"),
        Binding("3", "mode('train')", "Train", id="project.train", show=False,
                tooltip="Start, follow and stop training runs"),
        Binding("4", "mode('merge')", "Merge", id="project.merge", show=False,
                tooltip="Merge and export a trained adapter"),
        Binding("5", "mode('chat')", "Chat", id="project.chat", show=False,
                tooltip="Talk to the base and tuned models"),
        # The tabs show 1-5, and the settings bar says Ctrl+S: the footer keeps its room for the mode's own keys.
        Binding("ctrl+s", "save", "Save", id="project.save", tooltip="Write the settings to the project file",
                show=False),
        Binding("f5", "reload", "Reload", id="project.reload", tooltip="Read the project file again"),
    ]

    class ModeChanged(Message):
        def __init__(self, project: str, mode: str):
            super().__init__()
            self.project, self.mode = project, mode

    def __init__(self, name: str, mode: str = "data"):
        super().__init__()
        self.project_name = name
        self.start_mode = mode if mode in MODES else "data"
        if running_holder(name):  # a run is going: land on its dashboard
            self.start_mode = "train"
        self.entry: ProjectEntry = read_project(name)
        self.later = Later(self)  # the modes not shown first, built after the first frame
        self._mounting: dict[str, AwaitMount] = {}
        self._checked: tuple[str, int] | None = None  # (what the doctor read, its longest sample in tokens)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield Static(id="problems", markup=False)
        project = self.entry.project
        if project is None:
            yield Footer(compact=True)
            return
        with TabbedContent(initial=self.start_mode, id="modes"):
            for mode, title in zip(MODES, ("1 Data", "2 Settings", "3 Train", "4 Merge", "5 Chat")):
                with TabPane(title, id=mode):
                    if mode == self.start_mode:
                        yield from self._build(mode)
                    else:
                        self.later.add(mode, lambda mode=mode: self._mount_mode(mode))
            self.later.add("estimate", self.show_estimate)
        yield Footer(compact=True)

    def on_resize(self) -> None:
        self.set_class(self.size.height < 30, "-short")

    def _build(self, mode: str) -> Iterable[Widget]:
        """The widgets of one mode. The mode shown first is built at once, the others after the first frame."""
        project = self.entry.project
        assert project is not None
        if mode == "data":
            data_path = Path(project.data.path).expanduser() if project.data.path else None
            root = data_path.parent if data_path and data_path.is_file() else data_path or Path.cwd()
            yield DataPane(self.project_name, root if root.is_dir() else Path.cwd(),
                           data_path if data_path and data_path.is_file() else None, data=data_path,
                           shape=project.data.shape, columns=project.data.columns, id="data-pane")
        elif mode == "settings":
            yield Horizontal(Static("saved", id="settings-status"),
                             Select([(f"{name}: {text}", name) for name, (text, _v) in PRESETS.items()],
                                    prompt="Apply a preset…", id="preset", compact=True), id="settings-bar")
            yield MemoryEstimate(id="estimate")
            yield SettingsForm(project, id="form")
        elif mode == "train":
            yield TrainPane(self.project_name, id="train-pane")
        elif mode == "merge":
            yield MergePane(self.project_name, quant=project.output.export_quant, id="merge-pane")
        elif mode == "chat":
            yield ChatPane(self.project_name, id="chat-pane")

    def _mount_mode(self, mode: str) -> None:
        self._mounting[mode] = self.query_one(f"#{mode}", TabPane).mount_all(list(self._build(mode)))

    async def built(self, mode: str) -> None:
        """Wait until `mode`'s widgets are mounted (building them now if they were still waiting)."""
        self.later.now(mode)
        if mode in self._mounting:
            await self._mounting[mode]

    def on_mount(self) -> None:
        self.title = self.project_name
        self.later.start()
        self.call_after_refresh(self._summary)
        if self.entry.project is not None:
            self.call_after_refresh(self._mode_shown, self.start_mode)

    def _summary(self) -> None:
        entry = self.entry
        summary = self.query_one("#summary", Static)
        problems = self.query_one("#problems", Static)
        if entry.project is None:
            summary.update(f"[b]{self.project_name}[/b]: this project file cannot be read")
            problems.update(f"{entry.error}\nFix the file ({entry.path}) and press F5.")
            problems.display = True
            return
        # The saved settings (what a run would use), never a value half typed in the form.
        form = self.form if self.is_mounted and self.query("#form") else None
        p = form.saved if form is not None else entry.project
        unsaved = "  ·  [$warning]● unsaved changes[/]" if form is not None and form.dirty else ""
        summary.update(f"[b]{p.name}[/b]  model [b]{p.model.base}[/b]  ·  data "
                       f"{short_path(p.data.path) if p.data.path else '(none yet)'}  ·  "
                       f"LoRA r={p.lora.r}  ·  lr {p.training.learning_rate:g}  ·  "
                       f"effective batch {p.effective_batch}{unsaved}")
        problems.update("\n".join(pr.message for pr in entry.problems))
        problems.display = bool(entry.problems)

    @property
    def form(self) -> SettingsForm:
        self.later.now("settings")  # its project and state are there at once; its rows follow
        return self.query_one("#form", SettingsForm)

    @property
    def mode(self) -> str:
        return self.query_one("#modes", TabbedContent).active if self.entry.project else ""

    def action_mode(self, mode: str) -> None:
        if self.entry.project is not None:
            self.later.now(mode)
            modes = self.query_one("#modes", TabbedContent)
            if modes.active != mode:
                # Focus leaves the mode first: a focused widget hidden by the switch has its focus passed on
                # within its own mode, and TabbedContent then switches back to that mode.
                self.set_focus(None)
            modes.active = mode

    @on(TabbedContent.TabActivated, "#modes")
    def _mode_changed(self, event: TabbedContent.TabActivated) -> None:
        self.later.now(event.pane.id or "")  # a click on a tab whose mode is not built yet
        self.post_message(self.ModeChanged(self.project_name, event.pane.id or ""))
        self.call_after_refresh(self._mode_shown, event.pane.id or "")

    async def _mode_shown(self, mode: str) -> None:
        """Focus the mode's main widget, so that its keys work (and show in the footer) at once."""
        await self.built(mode)
        if mode == "merge":
            self.query_one(MergePane).refresh_sources()
        if mode == "chat":
            self.query_one(ChatPane).ensure_server()
        target = {"data": "DataTree", "train": "#runs-table", "merge": "#merge-log", "chat": "#prompt"}.get(mode)
        if target and (found := self.query(target)):
            found.first().focus()

    async def run_doctor(self) -> None:
        self.action_mode("data")
        await self.built("data")
        self.query_one(DataPane).action_check()

    # ------------------------------------------------------------------ settings

    @on(SettingsForm.Edited)
    def _edited(self, event: SettingsForm.Edited) -> None:
        status = self.query_one("#settings-status", Static)
        invalid = not self.form.valid
        status.set_class(event.dirty and not invalid, "-unsaved")
        status.set_class(invalid, "-invalid")
        count = len(self.form.texts) + len(blocking(event.problems))
        status.update(f"{count} field(s) need fixing before saving" if invalid else
                      "● unsaved changes (Ctrl+S saves)" if event.dirty else "saved")
        self._summary()
        self.sub_title = ("● " if event.dirty else "") + event.project.model.base
        if panes := self.query(DataPane):
            saved = self.form.saved.data
            panes.first().project_settings(saved.path, saved.shape, saved.columns)
        self.show_estimate()

    # ------------------------------------------------------------------ the model: facts, estimate, choosers

    @property
    def model_facts(self) -> ModelFactsCache:
        return self.app.model_facts

    def show_estimate(self) -> None:
        """The memory estimate for the settings as they are now (recomputed at every change)."""
        if found := self.query(MemoryEstimate):
            project = self.form.project
            checked = self._checked is not None and self._checked[0] == self._data_key(project)
            found.first().show(project, self._checked[1] if checked else None)

    def _data_key(self, project) -> str:
        """What the doctor's token counts depend on: the tokenizer (the model) and the data settings."""
        return repr((project.model.base, project.data))

    @on(DataPane.Checked)
    def _data_checked(self, event: DataPane.Checked) -> None:
        # The doctor reads the saved settings.
        self._checked = (self._data_key(self.form.saved), event.longest) if event.longest else None
        self.show_estimate()

    @on(SettingsForm.ChooseRequested)
    def _choose(self, event: SettingsForm.ChooseRequested) -> None:
        if event.key == "model.base":
            self.choose_model()
        elif event.key == "lora.target_modules":
            self.choose_targets()

    def choose_model(self) -> None:
        def chosen(spec: str | None) -> None:
            if spec:
                self.form.edit("model.base", spec)

        self.action_mode("settings")
        self.app.push_screen(ModelPickerDialog(self.form.project.model.base), chosen)

    @work(exclusive=True, group="choose-targets", exit_on_error=False)
    async def choose_targets(self) -> None:
        self.action_mode("settings")
        project = self.form.project
        if project.model.base not in self.model_facts.facts:
            self.notify(f"reading the layers of {project.model.base} …")
        try:
            facts = await self.model_facts.get(project.model.base)
        except FactsError as exc:
            self.notify(str(exc), severity="error")
            return
        if not facts.linear:
            self.notify(f"{project.model.base} has no safetensors weights to list layers from: type "
                        "lora.target_modules by hand", severity="warning")
            return
        targets = await self.app.push_screen_wait(TargetsDialog(project.model.base, facts,
                                                               list(project.lora.target_modules)))
        if targets:
            self.form.edit("lora.target_modules", targets)

    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.apply_preset(str(event.value))

    def apply_preset(self, name: str) -> None:
        project, _problems = apply_preset(self.form.project, name)
        self.form.load(project)
        self.notify(f"preset {name!r} applied: review, then Ctrl+S to save")

    def action_save(self) -> bool:
        if self.entry.project is None:
            return False
        form = self.form
        if not form.valid:
            self.notify("fix the fields marked in red first", severity="error")
            return False
        try:
            path = save_project(form.project)
        except ProjectError as exc:
            self.notify(str(exc), severity="error")
            return False
        form.mark_saved()
        self.entry = read_project(self.project_name)
        self._summary()
        self.notify(f"saved {path}")
        return True

    def action_reload(self) -> None:
        """Read the project file again; unsaved changes are discarded only when the person says so."""
        if self.entry.project is not None and self.query("#form") and self.form.dirty:
            self.app.push_screen(ChoiceDialog(
                "The settings have unsaved changes. Reading the file again discards them.",
                [("save", "Save first", "primary"), ("discard", "Discard and reload", "error")]),
                lambda answer: self._reload() if answer == "discard" or (answer == "save" and self.action_save())
                else None)
            return
        self._reload()

    def _reload(self) -> None:
        self.entry = read_project(self.project_name)
        if self.entry.project is not None and not self.query("#modes"):  # the file was fixed: build the modes
            self.app.switch_screen(ProjectScreen(self.project_name))
            return
        if self.entry.project is not None:
            self.form.load(self.entry.project, saved=True)
        self._summary()

    def action_leave(self) -> None:
        if isinstance(self.focused, (Input, TextArea)):
            # Escape first leaves a text field, where 1-5 and the mode's keys are typed as text;
            # a second Escape goes back to the projects.
            self.set_focus(None)
            return
        if self.entry.project is None or not self.query("#form") or not self.form.dirty:
            self._back()
            return

        def answered(answer: str | None) -> None:
            if answer == "discard" or (answer == "save" and self.action_save()):
                self._back()

        self.app.push_screen(ChoiceDialog("The settings have unsaved changes.",
                                          [("discard", "Discard changes", "error"),
                                           ("save", "Save and leave", "primary")], focus="save"), answered)

    def _back(self) -> None:
        """To the project list (opened with --project, the list is made only now)."""
        if any(isinstance(screen, ProjectPicker) for screen in self.app.screen_stack):
            self.app.pop_screen()
        else:
            self.app.switch_screen(ProjectPicker())

    # ------------------------------------------------------------------ training

    @on(TrainPane.QueueRequested)
    def _queue_requested(self) -> None:
        from .queue import QueueScreen

        self.app.push_screen(QueueScreen(self.project_name, unsaved=self.form.dirty))

    @on(TrainPane.StartRequested)
    def _start_requested(self) -> None:
        self.start_training()

    def start_training(self) -> None:
        """Start a run with the settings as shown: unsaved changes are saved first (after asking)."""
        pane = self.query_one(TrainPane)
        if not self.form.valid:
            self.notify("fix the settings marked in red before training", severity="error")
            return
        if not self.form.dirty:
            pane.start()
            return

        def answered(save: bool | None) -> None:
            if save and self.action_save():
                pane.start()

        self.app.push_screen(ConfirmDialog("The settings have unsaved changes. Save them and start training?",
                                           "Save and start"), answered)

    @on(DataPane.MappingChosen)
    def _mapping(self, event: DataPane.MappingChosen) -> None:
        project, problems = set_value(self.form.project, "data.shape", event.shape)
        project, problems = set_value(project, "data.columns", event.columns)
        if blocking(problems):
            self.notify(blocking(problems)[0].message, severity="error")
            return
        self.form.load(project)
        mapping = ", ".join(f"{role} = {column}" for role, column in event.columns.items()) or "the default names"
        self.notify(f"data.shape = {event.shape}, data.columns: {mapping}. Ctrl+S saves (the doctor and the "
                    "sample read the saved settings)")

    @on(DataPane.UseFile)
    def _use_file(self, event: DataPane.UseFile) -> None:
        project, problems = set_value(self.form.project, "data.path", str(event.path))
        if blocking(problems):
            self.notify(blocking(problems)[0].message, severity="error")
            return
        self.form.load(project)
        self.notify(f"data.path set to {event.path}: Ctrl+S saves")
