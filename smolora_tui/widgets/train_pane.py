"""The training dashboard: runs, a live loss chart, figures, checkpoints and the worker's log.

Training itself runs in a detached `smolora train` worker; this pane only reads
the run folders (see run_follow.py) from a thread and redraws from a dirty flag
four times a second, so a flood of events never slows the keys down.
"""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, DataTable, ProgressBar, Static
from textual.worker import get_current_worker

from smolora_engine.runs import RunInfo

from ..dialogs import ConfirmDialog
from ..engine_cli import run_engine
from ..run_follow import ProjectRuns, RunHistory
from ..run_notice import EndWatch, desktop_notify, notice_text, notify_settings
from .run_chart import RunChart
from .run_figures import checkpoint_list, run_summary
from .run_log import RunLog
from .run_text import short_id
from .runs_table import RunsTable
from .samples_panel import SamplesPanel

REDRAW_S = 0.25
POLL_S = 0.2


class TrainPane(Widget, can_focus=False):
    """Left: the runs and the start/stop/resume buttons; right: the selected run, live."""

    DEFAULT_CSS = """
    TrainPane { layout: horizontal; height: 1fr; }
    TrainPane #runs-side { width: 38; border-right: solid $primary-background; }
    TrainPane #runs-table { height: 1fr; }
    TrainPane #train-buttons { height: auto; }
    TrainPane #train-buttons Button { min-width: 10; width: 1fr; margin: 0; }
    TrainPane #checkpoints { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    TrainPane #train-main { width: 1fr; }
    TrainPane #train-stats { height: auto; padding: 0 1; background: $panel; }
    TrainPane #train-progress { height: 1; padding: 0 1; }
    TrainPane #train-progress Bar { width: 1fr; }
    /* The plot and the log share what the figures leave, so the newest log lines stay in view at 80x24. */
    TrainPane #loss-plot { height: 3fr; min-height: 7; }
    /* The gutter is kept: lines wrapped before a scrollbar appeared would lose their last columns to it. */
    TrainPane #train-log { height: 2fr; min-height: 3; max-height: 9; border-top: solid $primary-background;
                           padding: 0 1; scrollbar-gutter: stable; }
    TrainPane.-short #train-log { min-height: 2; max-height: 4; }
    TrainPane #samples-panel { display: none; }
    TrainPane.-answers #samples-panel { display: block; }
    TrainPane.-answers #loss-plot { display: none; }
    TrainPane.-answers #train-log { max-height: 4; }
    """
    BINDINGS = [
        Binding("s", "start", "Start", id="train.start", tooltip="Start a new training run"),
        Binding("x", "stop", "Stop", id="train.stop",
                tooltip="Stop the run (a checkpoint is saved first); while it stops: kill it now"),
        Binding("r", "resume", "Resume", id="train.resume", tooltip="Continue the run from its last checkpoint"),
        Binding("o", "overlay", "Overlay", id="train.overlay", tooltip="Overlay the highlighted run's loss curve"),
        Binding("c", "compare", "Compare", id="train.compare",
                tooltip="All runs side by side: the settings that differ, their figures and loss curves"),
        Binding("q", "queue", "Queue", id="train.queue",
                tooltip="Runs that train one after another (overnight): add these settings, sweep, start the runner"),
        Binding("l", "log_scale", "Log scale", id="train.log", tooltip="Toggle a log scale for the loss"),
        Binding("m", "smooth", "Smooth", id="train.smooth", tooltip="Toggle smoothing of the loss curve"),
        Binding("a", "answers", "Answers", id="train.answers",
                tooltip="Show what the model answers to the eval prompts at each eval (a again: the chart)"),
        Binding("left_square_bracket", "prompt(-1)", "Previous prompt", show=False, id="train.prompt_back",
                tooltip="Answers: the previous eval prompt"),
        Binding("right_square_bracket", "prompt(1)", "Next prompt", show=False, id="train.prompt_next",
                tooltip="Answers: the next eval prompt"),
        Binding("comma", "eval_page(-1)", "Earlier eval", show=False, id="train.eval_back",
                tooltip="Answers: the eval before"),
        Binding("full_stop", "eval_page(1)", "Later eval", show=False, id="train.eval_next",
                tooltip="Answers: the eval after"),
    ]

    class StartRequested(Message):
        """The user asked for a new run: the screen saves the settings first, then calls `start()`."""

    class QueueRequested(Message):
        """The user asked for the queue: the screen opens it, saying whether the settings have unsaved changes."""

    def __init__(self, project_name: str, **kwargs):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.runs = ProjectRuns(project_name)
        self.shown: str | None = None  # the run drawn
        self.overlay: str | None = None  # a second run whose loss is drawn beside it
        self.log_scale = False
        self.smoothing = True
        self.busy = ""  # "starting" / "stopping" / "resuming" while a CLI call is out
        self._button_states: tuple = ()
        self._follow_new = False
        self._want: str | None = None  # a run just started or resumed: shown as soon as its folder is seen
        self._picked: str | None = None  # the run a person highlighted in the list (None: the pane chooses)
        self._plot_size = None
        self._kill_at: float | None = None  # while stopping: when `smolora stop` kills the worker (monotonic)
        self.answers = False  # the answers panel instead of the chart
        self._ends = EndWatch()

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-side"):
            yield RunsTable(id="runs-table")
            with Horizontal(id="train-buttons"):
                yield Button("Start", id="start", variant="success", compact=True, tooltip="Start a new run (s)")
                yield Button("Stop", id="stop", variant="error", compact=True, tooltip="Stop with a checkpoint (x)")
                yield Button("Resume", id="resume", variant="primary", compact=True,
                             tooltip="Continue from the last checkpoint (r)")
            yield Static(id="checkpoints")
        with Vertical(id="train-main"):
            yield Static("No runs yet: press s to start training with the saved settings.", id="train-stats")
            yield ProgressBar(total=1, id="train-progress", show_eta=False, show_percentage=True)
            yield RunChart(id="loss-plot")
            yield SamplesPanel(id="samples-panel")
            yield RunLog(id="train-log")

    def on_resize(self) -> None:
        self.set_class(self.size.height < 22, "-short")

    def on_mount(self) -> None:
        self._follow()
        self.set_interval(REDRAW_S, self.redraw)
        self.redraw()

    @work(thread=True, exclusive=True, group="follow", name="follow-runs")
    def _follow(self) -> None:
        worker = get_current_worker()
        self.runs.poll(force_status=True)
        while not worker.is_cancelled:
            self.runs.poll()
            time.sleep(POLL_S)

    # ------------------------------------------------------------------ drawing

    def redraw(self) -> None:
        plot_size = self.query_one("#loss-plot").size  # the chart's ticks follow its height
        if not self.runs.dirty and self._kill_at is None and plot_size == self._plot_size:
            return  # (a stop's countdown ticks on its own)
        self._plot_size = plot_size
        self.runs.dirty = False
        infos = self.runs.infos()
        self._notice_ends(infos)
        self._choose_shown(infos)
        self.query_one(RunsTable).show(infos, self.shown)
        history = self.runs.history(self.shown) if self.shown else None
        self._draw_figures(history)
        if self.answers:
            self.query_one(SamplesPanel).show(history)
        else:
            self._draw_plot(history)
        self.query_one(RunLog).show(history)
        self._draw_buttons(infos, history)

    def _choose_shown(self, infos: list[RunInfo]) -> None:
        """The run a person picked in the list, else the one just started, else a running one, else the last shown.

        Until someone picks, a running run wins at each redraw: the follower learns the runs one by
        one, and the one training must be shown once it is known, whichever run was seen first.
        """
        ids = [i.run_id for i in infos]
        if self._want in ids:
            self.shown, self._want, self._picked = self._want, None, None
        if self._follow_new and ids and ids[-1] != self.shown:
            self.shown, self._follow_new, self._picked = ids[-1], False, None
        if self._picked in ids:
            self.shown = self._picked
            return
        running = [i.run_id for i in infos if i.status in ("running", "starting")]
        if running and self.shown not in running and self._want is None:
            self.shown = running[-1]
        elif self.shown not in ids:
            self.shown = running[-1] if running else (ids[-1] if ids else None)

    def _draw_figures(self, history: RunHistory | None) -> None:
        stats = self.query_one("#train-stats", Static)
        bar = self.query_one("#train-progress", ProgressBar)
        checkpoints = self.query_one("#checkpoints", Static)
        if history is None or history.info is None:
            stats.update("No runs yet: press [b]s[/b] to start training with the saved settings.")
            bar.update(total=1, progress=0)
            checkpoints.update("")
            return
        info, step = history.info, history.last_step
        kill_left = max(0.0, self._kill_at - time.monotonic()) if self._kill_at is not None else None
        stats.update(run_summary(history, kill_left, self.busy))
        if step is not None:
            bar.update(total=max(step.max_steps, 1), progress=step.step)
        else:
            bar.update(total=None if info.status in ("running", "starting") else 1, progress=0)
        checkpoints.update(checkpoint_list(history))

    def _draw_plot(self, history: RunHistory | None) -> None:
        series = [(history, "")]
        if self.overlay and self.overlay != self.shown:
            series.append((self.runs.history(self.overlay), short_id(self.overlay)))
        self.query_one(RunChart).draw(series, self.smoothing, self.log_scale)

    def _draw_buttons(self, infos: list[RunInfo], history: RunHistory | None) -> None:
        states = tuple(self._why_not(action, infos, history) is not None for action in ("start", "stop", "resume"))
        if states == self._button_states:
            return  # the footer is rebuilt on refresh_bindings(): only when something changed
        self._button_states = states
        for name, disabled in zip(("#start", "#stop", "#resume"), states):
            self.query_one(name, Button).disabled = disabled
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Start, stop and resume stay live keys: pressed when they cannot act, they say why."""
        return True

    def _why_not(self, action: str, infos: list[RunInfo] | None = None,
                 history: RunHistory | None = None) -> str | None:
        """Why `action` cannot be done now (None: it can); the buttons are disabled for these reasons."""
        infos = self.runs.infos() if infos is None else infos
        if history is None and self.shown:
            history = self.runs.history(self.shown)
        info = history.info if history else None
        running = [i for i in infos if i.status in ("running", "starting")]
        if self.busy and not (action == "stop" and self.busy == "stopping"):
            return f"wait: {self.busy} a run"
        if action == "start" and running:
            return f"run {running[-1].run_id} is training: one run per project at a time; stop it (x) or wait"
        if action == "stop" and not any(i.status == "running" for i in running):
            return "no run is training"
        if action == "resume":
            if info is None:
                return "no run to resume: start one with s"
            if running:
                return f"run {running[-1].run_id} is training: stop it (x) before resuming another"
            return info.why_not_resumable("start a new run with s")
        return None

    def _refuse(self, action: str) -> bool:
        reason = self._why_not(action)
        if reason:
            self.notify(reason, title=f"cannot {action}", severity="warning")
        return reason is not None

    # ------------------------------------------------------------------ choosing runs

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # a stale event: the cursor has moved on (rows added, then the cursor put back on the run shown)
        run_id = event.row_key.value if event.row_key else None
        if run_id and run_id != self.shown and self._want is None:  # not while a new run is awaited
            self.shown = self._picked = run_id
            self.runs.dirty = True
            self.redraw()

    def action_overlay(self) -> None:
        table = self.query_one(RunsTable)
        if not table.row_count:
            return
        highlighted = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if self.overlay:
            self.overlay = None
            self.notify("comparison cleared")
        elif len(self.query_one(RunsTable).run_ids) < 2:
            self.notify("only one run: nothing to compare with yet")
            return
        else:
            others = [run_id for run_id in self.query_one(RunsTable).run_ids if run_id != highlighted]
            self.overlay = others[-1]
            self.notify(f"comparing with run {self.overlay}: move the cursor to pick the other run, o clears")
        self.runs.dirty = True
        self.redraw()

    def action_compare(self) -> None:
        from ..screens.compare import CompareScreen

        if not self.query_one(RunsTable).run_ids:
            self.notify("no runs yet: nothing to compare", severity="warning")
            return
        self.app.push_screen(CompareScreen(self.project_name))

    def action_queue(self) -> None:
        self.post_message(self.QueueRequested())

    def action_answers(self) -> None:
        self.answers = not self.answers
        self.set_class(self.answers, "-answers")
        self.runs.dirty = True
        self.redraw()

    def action_prompt(self, delta: int) -> None:
        self._page("prompt", delta)

    def action_eval_page(self, delta: int) -> None:
        self._page("eval", delta)

    def _page(self, what: str, delta: int) -> None:
        if not self.answers:
            self.action_answers()
        panel = self.query_one(SamplesPanel)
        panel.page_prompt(delta) if what == "prompt" else panel.page_eval(delta)

    # ------------------------------------------------------------------ a run ends

    def _notice_ends(self, infos: list[RunInfo]) -> None:
        for info in self._ends.ended(infos):
            history = self.runs.history(info.run_id)
            final = history.finished if history else None
            title, message, severity = notice_text(info, final.pass_rate if final else None,
                                                   final.reason if final else "")
            settings = notify_settings(self.project_name)
            if settings.bell:
                self.app.bell()
            self.notify(message, title=title, severity=severity, timeout=15)
            if settings.desktop:
                self._desktop(title, message)

    @work(thread=True, group="desktop-notice")
    def _desktop(self, title: str, message: str) -> None:
        desktop_notify(title, message)

    def action_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self.runs.dirty = True
        self.redraw()

    def action_smooth(self) -> None:
        self.smoothing = not self.smoothing
        self.runs.dirty = True
        self.redraw()

    # ------------------------------------------------------------------ start, stop, resume

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if not self._refuse("start"):
            self.post_message(self.StartRequested())

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        if self._refuse("stop"):
            return
        if self.busy == "stopping":
            self._ask_kill()
            return
        running = [i for i in self.runs.infos() if i.status == "running"]
        grace = running[-1].stop_grace() if running else None
        args = ("--timeout", f"{grace:.0f}") if grace is not None else ()
        self._kill_at = time.monotonic() + grace if grace is not None else None
        self._cli("stopping", "stop", "--project", self.project_name, *args)

    def _ask_kill(self) -> None:
        running = [i for i in self.runs.infos() if i.status == "running"]
        info = running[-1] if running else None
        after = (f"it can then resume from checkpoint-{info.resumable_step}" if info and info.resumable_step
                 else "it has no checkpoint yet, so nothing can be resumed")
        self.app.push_screen(ConfirmDialog(
            f"Kill the worker now, without waiting for its checkpoint? The step in progress is lost; {after}.",
            "Kill now", danger=True), lambda yes: yes and self._kill())

    @work(exclusive=True, group="train-kill")
    async def _kill(self) -> None:
        result = await run_engine("stop", "--project", self.project_name, "--kill")
        said = result.stdout.strip().splitlines()
        self.notify(said[-1] if said and not result.returncode else result.message.removeprefix("smolora: "),
                    severity="warning" if not result.returncode else "error", timeout=10)
        self.runs.request_status()
        self.runs.dirty = True

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        if self.shown and not self._refuse("resume"):
            self._cli("resuming", "train", "--project", self.project_name, "--resume", self.shown, "--detach")

    def start(self) -> None:
        """Start a run with the saved settings (the screen calls this once they are saved)."""
        self._cli("starting", "train", "--project", self.project_name, "--detach")

    @work(exclusive=True, group="train-cli")
    async def _cli(self, doing: str, *args: str) -> None:
        self.busy = doing
        self.runs.dirty = True
        self.redraw()
        try:
            result = await run_engine(*args)
        finally:
            self.busy, self._kill_at = "", None
        if result.returncode:
            self.notify(result.message.removeprefix("smolora: "), title=f"{doing} failed", severity="error",
                        timeout=10)
        elif doing in ("starting", "resuming"):
            run_id = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else None
            self._want = run_id  # shown as soon as the follower sees its folder, whatever is highlighted
            self._follow_new = run_id is None
            self.notify(f"training in the background (run {run_id}); it keeps going if you quit")
        else:
            said = result.stdout.strip().splitlines()
            self.notify(said[-1] if said else "stopped", timeout=10)
        self.runs.request_status()
        self.runs.dirty = True
        self.redraw()
