"""The queue (Train mode, q): runs waiting to train one after another, across projects.

What it shows is read from the queue file and the run folders in a thread, once a second;
what it changes goes through the engine's CLI (`smolora queue ...`), so the app says exactly
what the command line would. The runner it starts is detached: it keeps going after the app
quits or the SSH link drops.
"""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from smolora_engine.overnight.commands import queue_rows
from smolora_engine.overnight.queue_file import Entry, format_value
from smolora_engine.overnight.sweep import SweepError, check_variation, expand, split_assignments
from smolora_engine.project_fields import parse_assignment

from ..dialogs import ConfirmDialog, TextInputDialog
from ..engine_cli import run_engine
from ..widgets.measured_table import MeasuredTable
from ..widgets.run_text import short_id

READ_S = 1.0
STATUS_STYLE = {"running": "bold green", "done": "green", "failed": "bold red", "crashed": "bold red",
                "stopped": "yellow", "pending": ""}


class QueueScreen(Screen):
    """The queue's entries, the runner's state, and the keys that change them."""

    DEFAULT_CSS = """
    QueueScreen #queue-box { height: 1fr; }
    QueueScreen #queue-runner { height: auto; padding: 0 1; background: $panel; }
    QueueScreen #queue-table { height: 1fr; }
    QueueScreen #queue-note { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="queue.back", tooltip="Back to the dashboard"),
        Binding("a", "add", "Add", id="queue.add", tooltip="Queue this project's saved settings, with changes"),
        Binding("w", "sweep", "Sweep", id="queue.sweep", tooltip="Queue a grid: lora.r=8,16 training.learning_rate=..."),
        Binding("d,delete", "remove", "Remove", id="queue.remove", tooltip="Take the highlighted entry off the queue"),
        Binding("k", "move(-1)", "Earlier", id="queue.earlier", show=False, tooltip="Move the highlighted entry up"),
        Binding("j", "move(1)", "Later", id="queue.later", show=False, tooltip="Move the highlighted entry down"),
        Binding("t", "retry", "Retry", id="queue.retry",
                tooltip="Queue a failed, crashed or stopped entry again (resumed from its checkpoint when it has one)"),
        Binding("g", "run", "Run", id="queue.run", tooltip="Start the runner in the background"),
        Binding("x", "stop", "Stop", id="queue.stop",
                tooltip="Stop the runner: its run saves a checkpoint and can be retried"),
    ]

    def __init__(self, project_name: str, unsaved: bool = False):
        super().__init__()
        self.project_name = project_name
        self.unsaved = unsaved  # the settings form has changes not yet saved: a queues the saved ones
        self.rows: list[dict] = []
        self.runner: str | None = None
        self.loaded = False
        self._drawn: tuple = ()

    def compose(self) -> ComposeResult:
        with Vertical(id="queue-box"):
            yield Static("reading the queue …", id="queue-runner", markup=False)
            yield MeasuredTable(id="queue-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="queue-note", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "queue"
        table = self.query_one("#queue-table", DataTable)
        table.add_column("id", key="id")
        table.add_column("status", key="status")
        table.add_column("project", key="project")
        table.add_column("run", key="run")
        table.add_column("changes", key="changes")
        table.focus()
        self.read()
        self.set_interval(READ_S, self.read)

    # ------------------------------------------------------------------ reading and drawing

    @work(thread=True, exclusive=True, group="queue-read")
    def read(self) -> None:
        rows, runner = queue_rows()
        self.app.call_from_thread(self.show, rows, runner)

    def show(self, rows: list[dict], runner: str | None) -> None:
        self.rows, self.runner, self.loaded = rows, runner, True
        pending = sum(1 for r in rows if r["status"] == "pending")
        head = self.query_one("#queue-runner", Static)
        if runner:
            head.update(f"Queue (all projects)  ·  runner: {runner}  ·  {pending} pending  ·  x stops it")
        else:
            head.update(f"Queue (all projects)  ·  no runner  ·  {pending} pending"
                        + ("  ·  g starts one in the background" if pending else
                           "  ·  a adds this project's settings, w a sweep"))
        drawn = tuple((r["id"], r["status"], r["run_id"], r["note"], r["resumable_step"]) for r in rows)
        if drawn != self._drawn:
            self._drawn = drawn
            self._draw_table(rows)
        self._draw_note()

    def _draw_table(self, rows: list[dict]) -> None:
        from rich.text import Text

        table = self.query_one("#queue-table", DataTable)
        keep = self.highlighted()
        table.clear()
        for row in rows:
            changes = Entry(row["id"], row["project"], row["overrides"]).describe_overrides()
            run = short_id(row["run_id"]) if row["run_id"] else ""
            if row["resumable_step"] is not None:
                run += f" (ckpt {row['resumable_step']})"
            table.add_row(str(row["id"]), Text(row["status"], style=STATUS_STYLE.get(row["status"], "")),
                          row["project"], run, changes, key=str(row["id"]))
        ids = [r["id"] for r in rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep), animate=False)

    def _draw_note(self) -> None:
        row = self.highlighted_row()
        if not self.rows:
            text = ("The queue is empty. a queues this project's saved settings (with key=value changes), "
                    "w a sweep of several values. Entries train one after another, also overnight over SSH.")
        elif row is None:
            text = ""
        else:
            text = f"entry {row['id']}: {row['status']}" + (f", run {row['run_id']}" if row["run_id"] else "")
            if row["note"]:
                text += f" — {row['note']}"
            if row["resumable_step"] is not None:
                text += f"; t resumes it from step {row['resumable_step']}"
            if row["status"] == "pending":
                text += "; k and j move it earlier or later"
            text += "\n" + Entry(row["id"], row["project"], row["overrides"]).describe_overrides()
        if self.unsaved:
            text += (f"\n{self.project_name}'s settings have unsaved changes: a queues the saved settings "
                     "(Ctrl+S saves them), or type the changes as key=value.")
        self.query_one("#queue-note", Static).update(text.strip())

    @on(DataTable.RowHighlighted, "#queue-table")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._draw_note()

    def highlighted(self) -> int | None:
        table = self.query_one("#queue-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key else None

    def highlighted_row(self) -> dict | None:
        entry_id = self.highlighted()
        return next((r for r in self.rows if r["id"] == entry_id), None)

    # ------------------------------------------------------------------ changing the queue

    def _base_project(self):
        from smolora_engine.projects import load_project

        return load_project(self.project_name)

    def action_add(self) -> None:
        try:
            base = self._base_project()
        except Exception as exc:  # a project file that does not load: say why
            self.notify(str(exc), title="cannot add", severity="error")
            return

        def check(text: str) -> str | None:
            try:
                overrides = dict(parse_assignment(part) for part in split_assignments(text))
                check_variation(base, overrides)
            except (ValueError, SweepError) as exc:
                return str(exc).splitlines()[0]
            return None

        def add(text: str | None) -> None:
            if text is not None:
                self._engine("queue", "add", "--project", self.project_name, *split_assignments(text),
                             done=f"queued {self.project_name} " + (text or "as saved"))

        self.app.push_screen(TextInputDialog(
            f"Queue {self.project_name}'s saved settings, with these changes (key=value, space-separated; "
            "empty: as saved)", "", check, "Queue"), add)

    def action_sweep(self) -> None:
        try:
            base = self._base_project()
        except Exception as exc:
            self.notify(str(exc), title="cannot sweep", severity="error")
            return

        def check(text: str) -> str | None:
            if not text:
                return "name at least one key and its values: lora.r=8,16"
            try:
                count = len(expand(base, split_assignments(text)))
            except (ValueError, SweepError) as exc:
                return str(exc).splitlines()[0]
            return None if count else "no combination"

        def sweep(text: str | None) -> None:
            if text:
                count = len(expand(base, split_assignments(text)))
                self._engine("sweep", "--project", self.project_name, *split_assignments(text),
                             done=f"queued {count} run(s) of {self.project_name}: {text}")

        self.app.push_screen(TextInputDialog(
            f"Sweep {self.project_name}: every combination is queued (key=v1,v2 ..., e.g. lora.r=8,16 "
            "training.learning_rate=1e-4,5e-4)", "", check, "Queue all"), sweep)

    def action_remove(self) -> None:
        row = self.highlighted_row()
        if row is None:
            return
        if row["status"] == "running":
            self.notify(f"entry {row['id']} is running: stop it first (x stops the runner)", severity="warning")
            return
        changes = " ".join(f"{k}={format_value(v)}" for k, v in row["overrides"].items()) or "as saved"
        self.app.push_screen(ConfirmDialog(f"Remove entry {row['id']} ({row['project']}, {changes})?", "Remove",
                                           danger=True),
                             lambda yes: yes and self._engine("queue", "remove", str(row["id"])))

    def action_move(self, delta: int) -> None:
        row = self.highlighted_row()
        if row is None:
            return
        pending = [r["id"] for r in self.rows if r["status"] == "pending"]
        if row["id"] not in pending:
            self.notify(f"entry {row['id']} is {row['status']}: only pending entries move", severity="warning")
            return
        place = pending.index(row["id"]) + 1 + delta
        if 1 <= place <= len(pending):
            self._engine("queue", "move", str(row["id"]), "--to", str(place), quiet=True)

    def action_retry(self) -> None:
        row = self.highlighted_row()
        if row is not None:
            self._engine("queue", "retry", str(row["id"]))

    def action_run(self) -> None:
        if self.runner:
            self.notify(f"the queue already has a runner ({self.runner})", severity="warning")
        elif not any(r["status"] == "pending" for r in self.rows):
            self.notify("nothing is pending: a adds an entry, t retries a failed one", severity="warning")
        else:
            self._engine("queue", "run", "--detach", done="the runner started in the background: it keeps going if you quit or the SSH link drops; x stops it")

    def action_stop(self) -> None:
        if not self.runner:
            self.notify("no runner is running the queue", severity="warning")
            return
        self.app.push_screen(ConfirmDialog("Stop the runner? Its run saves a checkpoint at the end of its step "
                                           "and can be retried (t); pending entries wait.", "Stop runner"),
                             lambda yes: yes and self._engine("queue", "stop"))

    @work(group="queue-change")
    async def _engine(self, *args: str, quiet: bool = False, done: str = "") -> None:
        """Run `smolora ARGS`; say its error, or `done`, or what it printed."""
        started = time.monotonic()
        result = await run_engine(*args)
        if result.returncode:
            self.notify(result.message.removeprefix("smolora: "), title="queue", severity="error", timeout=10)
        elif not quiet:
            said = [line for line in result.stdout.strip().splitlines() if line.strip()]
            message = done or ("\n".join(said[-3:]) if said else "done")
            if done and not self.runner:
                message += "; g starts the runner"
            self.notify(message, title="queue", timeout=8)
        if time.monotonic() - started < READ_S:
            self.read()
