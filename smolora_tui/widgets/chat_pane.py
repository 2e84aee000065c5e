"""Chat with the base, adapter or merged model through one `smolora serve` worker.

The worker is started when the Chat mode is first shown and stopped with the
screen. Tokens stream into the conversation as they come; the prompt is locked
while the model answers and Escape stops it. Compare mode sends the same prompt
and seed to the base and the tuned model and shows both answers side by side.
Conversations are saved in the project's data folder and can be reopened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch

from smolora_engine import events as ev
from smolora_engine.serve import DEFAULTS, BadRequest, parse_request

from ..conversations import Conversation, saved_conversations
from ..engine_cli import reap, spawn
from .chat_bubble import Bubble

SAMPLING = [  # (key, label, default)
    ("temperature", "temperature (0 = greedy)", 0.7),
    ("top_p", "top-p", 0.9),
    ("top_k", "top-k", 50),
    ("max_new_tokens", "max new tokens", 256),
    ("seed", "seed (blank = random)", None),
]
MODEL_LABELS = {"base": "base model", "adapter": "tuned (base + adapter)", "merged": "tuned (merged folder)"}


class ChatPane(Widget):
    DEFAULT_CSS = """
    ChatPane { layout: horizontal; height: 1fr; }
    ChatPane #chat-main { width: 1fr; }
    ChatPane #conversation { height: 1fr; padding: 0 1; }
    ChatPane .pair { height: auto; }
    ChatPane .pair > Bubble { width: 1fr; }
    ChatPane #prompt { margin: 0 1; }
    ChatPane #chat-side { width: 34; padding: 0 1; border-left: solid $primary-background; overflow-y: auto; }
    ChatPane #chat-side Label { color: $text-muted; margin-top: 1; }
    ChatPane #chat-side Input.-invalid { border: tall $error; }
    ChatPane #chat-side .row { height: auto; }
    ChatPane #chat-side .row Label { margin-top: 0; width: 1fr; }
    ChatPane #serve-status { height: auto; margin-top: 1; }
    ChatPane #serve-status.-error { color: $error; }
    ChatPane #sampling-problem { color: $error; height: auto; }
    ChatPane #system-note { color: $text-muted; height: auto; }
    ChatPane #system-note.-changed { color: $warning; }
    """
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat.stop", tooltip="Stop the answer being written"),
        Binding("ctrl+n", "new", "New chat", id="chat.new", tooltip="Start a new conversation"),
        Binding("ctrl+t", "toggle_compare", "Compare", id="chat.compare", tooltip="Base and tuned side by side"),
        Binding("ctrl+r", "restart", "Reload model", id="chat.restart",
                tooltip="Restart the model worker (picks up a newly finished run or merge)"),
    ]

    def __init__(self, project_name: str, **kwargs):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.proc: asyncio.subprocess.Process | None = None
        self.models: list[str] = []
        self.ready = False
        self.conversation = Conversation()
        self.pending: dict[str, Bubble] = {}  # request id -> the answer being written
        self._turn: dict | None = None
        self._ids = itertools.count(1)
        self.trained_system: str | None = None  # the system message training used (None: not known yet)
        self.system_from = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-main"):
            yield VerticalScroll(id="conversation", can_focus=True)
            yield Input(placeholder="Message the model (Enter sends, Esc stops)", id="prompt", disabled=True)
        with Vertical(id="chat-side"):
            yield Static("model: not started", id="serve-status")
            # The saved conversations first: a list opened near the bottom would cover the footer.
            yield Label("Saved conversations")
            yield Select([], prompt="none yet", id="saved", compact=True)
            yield Button("New conversation", id="new", compact=True)
            yield Label("Model")
            yield Select([], prompt="loading…", id="chat-model", compact=True, allow_blank=True)
            with Horizontal(classes="row"):
                yield Label("Compare base and tuned")
                yield Switch(False, id="compare")
            yield Label("System message")
            yield Input(placeholder="none", id="system", compact=True)
            yield Static("in effect once the model is loaded", id="system-note", markup=False)
            for key, label, default in SAMPLING:
                yield Label(label)
                yield Input("" if default is None else str(default), id=f"s-{key}", compact=True)
            yield Static(id="sampling-problem")

    def on_mount(self) -> None:
        self._list_saved()

    # ------------------------------------------------------------------ the worker

    def ensure_server(self) -> None:
        if self.proc is None:
            self._serve()

    @work(exclusive=True, group="chat-serve")
    async def _serve(self) -> None:
        status = self.query_one("#serve-status", Static)
        status.remove_class("-error")
        status.update("starting the model worker…")
        self.ready = False
        self.proc = proc = await spawn("serve", "--project", self.project_name, stdin=asyncio.subprocess.PIPE,
                                       limit=2**24)
        stderr = asyncio.create_task(proc.stderr.read())
        try:
            async for raw in proc.stdout:
                event = ev.parse_line(raw.decode(errors="replace"))
                if event is not None and not self._torn_down():
                    self._on_event(event)
            await proc.wait()
        except asyncio.CancelledError:  # the screen or the app went away, or a restart
            await reap(proc, stderr)
            raise
        if self.proc is proc:  # died on its own (not restarted or stopped by us)
            self.proc, self.ready = None, False
            message = [line for line in (await stderr).decode(errors="replace").splitlines() if line.strip()]
            status.add_class("-error")
            status.update(f"the model worker exited ({proc.returncode}): "
                          f"{message[-1] if message else 'no message'}\nCtrl+R starts it again.")
            for bubble in self.pending.values():
                bubble.finish("(the worker stopped)")
            self.pending.clear()
            self._lock(False)

    def _torn_down(self) -> bool:
        """The pane is going away (its screen removed, or the app closing): its widgets may be gone before
        this worker is cancelled, and an event the model worker sends meanwhile has nowhere to go (CI once
        failed an app's exit on `#serve-status` not found)."""
        return self._pruning or not self.is_attached or not self.app.is_running

    def _on_event(self, event: ev.Event) -> None:
        status = self.query_one("#serve-status", Static)
        if isinstance(event, ev.Loading):
            status.update(event.message)
        elif isinstance(event, ev.Ready):
            self.models, self.ready = list(event.models), True
            status.update("ready: " + ", ".join(event.models))
            select = self.query_one("#chat-model", Select)
            select.prompt = "choose a model"
            select.set_options([(MODEL_LABELS.get(m, m), m) for m in self.models])
            select.value = "adapter" if "adapter" in self.models else self.models[0]
            self.trained_system, self.system_from = event.system, event.system_from
            self.query_one("#system", Input).value = event.system
            self._show_system()
            self._lock(False)
        elif isinstance(event, ev.Token) and event.id in self.pending:
            self.pending[event.id].add(event.text)
            self.query_one("#conversation").scroll_end(animate=False)
        elif isinstance(event, ev.Done) and event.id in self.pending:
            bubble = self.pending.pop(event.id)
            speed = f"{event.tokens} tokens, {event.tokens_per_s or 0:.1f} tok/s"
            bubble.finish(("stopped · " if event.cancelled else "") + speed)
            if self._turn is not None:
                self._turn["answers"][bubble.model_name] = event.text
            self._turn_done()
        elif isinstance(event, ev.Error):
            bubble = self.pending.pop(event.id, None)
            if bubble is not None:
                bubble.add_class("error")
                bubble.finish(f"error: {event.message}")
                self._turn_done()
            else:
                status.update(Text(f"error: {event.message}", style="red"))

    def _turn_done(self) -> None:
        if self.pending:
            return
        if self._turn is not None and self._turn["answers"]:
            self.conversation.turns.append(self._turn)
            self.conversation.save(self.project_name)
            if len(self.conversation.turns) == 1:  # a new file; later turns do not change its title
                self._list_saved()
        self._turn = None
        self._lock(False)

    def stop_server(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            try:
                proc.stdin.close()
                proc.terminate()
            except (ProcessLookupError, OSError):
                pass

    def on_unmount(self) -> None:
        self.stop_server()

    def action_restart(self) -> None:
        if self.pending:
            self.notify("wait for the answer, or stop it (Esc), first", severity="warning")
            return
        self.stop_server()
        self._serve()

    # ------------------------------------------------------------------ sending

    def _lock(self, generating: bool) -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.disabled = generating or not self.ready
        focused = self.app.focused
        shown = all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))
        here = shown and (focused is None or self in focused.ancestors_with_self or not isinstance(focused, Input))
        if here and not prompt.disabled:
            prompt.focus()
        elif here and generating:
            self.query_one("#conversation").focus()
        self.refresh_bindings()

    def sampling(self) -> dict:
        """The side panel's values as request fields; BadRequest (naming the field) when one is wrong."""
        values: dict = {}
        for key, _label, _default in SAMPLING:
            raw = self.query_one(f"#s-{key}", Input).value.strip()
            if not raw:
                values[key] = DEFAULTS[key] if key != "seed" else None
                continue
            try:
                values[key] = int(raw) if key in ("top_k", "max_new_tokens", "seed") else float(raw)
            except ValueError:
                raise BadRequest(f"{key} must be a{'n integer' if key in ('top_k', 'max_new_tokens', 'seed') else ' number'}, "
                                 f"not {raw!r}") from None
        parse_request({"prompt": "x", **values}, "base")  # the worker's own checks, before sending
        return values

    @on(Input.Changed, "#chat-side Input")
    def _check_sampling(self) -> None:
        problem = self.query_one("#sampling-problem", Static)
        for key, _label, _default in SAMPLING:
            self.query_one(f"#s-{key}", Input).remove_class("-invalid")
        try:
            self.sampling()
            problem.update("")
        except BadRequest as exc:
            problem.update(str(exc))
            field_key = str(exc).split()[0]
            if self.query(f"#s-{field_key}"):
                self.query_one(f"#s-{field_key}", Input).add_class("-invalid")

    def system_override(self) -> str | None:
        """The system field's text when it differs from the one training used (None: as in training)."""
        system = self.query_one("#system", Input).value.strip()
        return None if self.trained_system is None or system == self.trained_system.strip() else system

    @on(Input.Changed, "#system")
    def _show_system(self) -> None:
        note = self.query_one("#system-note", Static)
        if self.trained_system is None:
            return
        changed = self.system_override() is not None
        trained = self.system_from.startswith("run ")  # else no run has trained yet: the project's settings
        note.set_class(changed, "-changed")
        before = (f"{self.trained_system[:60]!r}" if self.trained_system else "no system message")
        if changed:
            note.update(f"changed: {'training used' if trained else 'the settings give'} {before} (Ctrl+R restores it)")
        elif trained:
            note.update(f"{'as' if self.trained_system else 'none, as'} in training ({self.system_from})")
        else:
            note.update(f"{'as' if self.trained_system else 'none, as'} the project's settings give it "
                        "(no trained run yet)")

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.send(text)

    def send(self, text: str) -> bool:
        if not self.ready or self.proc is None or self.pending:
            return False
        try:
            sampling = self.sampling()
        except BadRequest as exc:
            self.notify(str(exc), severity="error")
            return False
        chosen = self.query_one("#chat-model", Select).value
        model = chosen if isinstance(chosen, str) else self.models[0]
        compare = self.query_one("#compare", Switch).value
        if compare:
            tuned = model if model != "base" else next((m for m in self.models if m != "base"), None)
            if tuned is None:
                self.notify("no tuned model yet: finish a training run first", severity="warning")
                return False
            targets = ["base", tuned]
            if sampling["seed"] is None:  # the same seed for both, so the comparison is fair
                sampling["seed"] = int(time.time()) % 100000
        else:
            targets = [model]
        override = self.system_override()  # None: the worker renders with the run's own system message
        self._turn = {"user": text, "answers": {}, "settings": {
            **sampling, "system": self.query_one("#system", Input).value.strip(),
            "system_changed": override is not None}}
        box = self.query_one("#conversation", VerticalScroll)
        box.mount(Bubble("you", text, classes="user"))
        bubbles = [Bubble(MODEL_LABELS.get(m, m), classes="answer", model_name=m) for m in targets]
        box.mount(Horizontal(*bubbles, classes="pair") if len(bubbles) > 1 else bubbles[0])
        for bubble in bubbles:
            rid = f"{self.conversation.started}-{next(self._ids)}"
            self.pending[rid] = bubble
            messages = self.conversation.messages(bubble.model_name, override) + [{"role": "user", "content": text}]
            self._write({"id": rid, "messages": messages, "model": bubble.model_name, **sampling})
        self.query_one("#prompt", Input).value = ""
        self._lock(True)
        box.scroll_end(animate=False)
        return True

    def _write(self, request: dict) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())

    def action_stop(self) -> None:
        for rid in list(self.pending):
            self._write({"cancel": rid})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return bool(self.pending)
        return True

    # ------------------------------------------------------------------ conversations

    @on(Switch.Changed, "#compare")
    def _compare(self) -> None:
        self.refresh_bindings()

    def action_toggle_compare(self) -> None:
        switch = self.query_one("#compare", Switch)
        switch.value = not switch.value

    @on(Button.Pressed, "#new")
    def action_new(self) -> None:
        if self.pending:
            return
        self.conversation = Conversation()
        self.query_one("#conversation", VerticalScroll).remove_children()
        self.query_one("#saved", Select).clear()

    def _list_saved(self) -> None:
        select = self.query_one("#saved", Select)
        saved = saved_conversations(self.project_name)
        select.prompt = f"open one of {len(saved)} saved" if saved else "none yet"
        with select.prevent(Select.Changed):
            select.set_options([(title, str(path)) for title, path in saved])

    @on(Select.Changed, "#saved")
    def _open_saved(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or self.pending:
            return
        try:
            conversation = Conversation.load(Path(str(event.value)))
        except (OSError, ValueError) as exc:
            self.notify(f"cannot read {event.value}: {exc}", severity="error")
            return
        self.conversation = conversation
        box = self.query_one("#conversation", VerticalScroll)
        box.remove_children()
        for turn in conversation.turns:
            box.mount(Bubble("you", turn["user"], classes="user"))
            bubbles = [Bubble(MODEL_LABELS.get(m, m), a, classes="answer", model_name=m)
                       for m, a in turn.get("answers", {}).items()]
            if bubbles:
                box.mount(Horizontal(*bubbles, classes="pair") if len(bubbles) > 1 else bubbles[0])
        box.scroll_end(animate=False)
