"""Pilot tests of the Merge and Chat modes, with the real merge/export/serve workers on a tiny model."""

from __future__ import annotations

import json

from textual.containers import Horizontal
from textual.widgets import Input, Select

from smolora_tui.app import SmoloraApp
from smolora_tui.conversations import chats_dir
from smolora_tui.widgets.chat_bubble import Bubble
from smolora_tui.widgets.chat_pane import ChatPane
from smolora_tui.widgets.merge_pane import MergePane
from tests.test_tui_train import SIZE, until


async def test_merge_and_export_from_the_screen(trained):
    app = SmoloraApp(project=trained)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        pane = app.screen.query_one(MergePane)
        await until(pilot, lambda: pane.source is not None, what="adapters listed")
        assert pane.source[1] is None  # the final adapter comes first
        assert "not merged yet" in str(app.screen.query_one("#merge-result").render())
        await pilot.press("c")  # nothing to copy yet
        assert app.clipboard == ""
        await pilot.press("m")
        await until(pilot, lambda: "verified" in str(app.screen.query_one("#merge-result").render()),
                    timeout=120, what="merge report")
        merged = pane.output_path()
        assert merged.endswith("/merged")
        await pilot.press("e")
        await until(pilot, lambda: "verified" in str(app.screen.query_one("#export-result").render()),
                    timeout=180, what="export report")
        report = str(app.screen.query_one("#export-result").render())
        assert "agreement" in report and "Modelfile" in report
        await pilot.press("c")
        assert app.clipboard.endswith("model-q8_0.gguf")


async def test_a_failed_export_shows_its_error(trained):
    from smolora_engine.runs import list_runs

    (run,) = list_runs(trained)
    (run.folder / "adapter" / "adapter_config.json").write_text("{broken")
    app = SmoloraApp(project=trained)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        pane = app.screen.query_one(MergePane)
        await until(pilot, lambda: pane.source is not None, what="adapters listed")
        await pilot.press("m")
        await until(pilot, lambda: "failed" in str(app.screen.query_one("#merge-status").render()),
                    timeout=120, what="failure shown")
        assert not app.screen.query_one("#merge").disabled  # can try again


def bubbles(app) -> list[Bubble]:
    return list(app.screen.query_one("#conversation").query(Bubble))


async def test_chat_streams_stops_compares_and_reopens(trained):
    app = SmoloraApp(project=trained)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        pane = app.screen.query_one(ChatPane)
        await until(pilot, lambda: pane.ready, timeout=120, what="serve ready")
        assert pane.models == ["base", "adapter"]
        assert app.screen.query_one("#chat-model", Select).value == "adapter"
        prompt = app.screen.query_one("#prompt", Input)
        assert app.focused is prompt
        # The system message in effect is the one training used (this template adds none), and a change says so.
        system, note = app.screen.query_one("#system", Input), app.screen.query_one("#system-note")
        assert system.value == "" and pane.trained_system == ""
        assert "none, as in training (run " in str(note.render())
        system.value = "Talk like a pirate."
        await pilot.pause()
        assert note.has_class("-changed") and "training used no system message" in str(note.render())
        assert pane.system_override() == "Talk like a pirate."
        system.value = ""
        await pilot.pause()
        assert not note.has_class("-changed") and pane.system_override() is None
        prompt.focus()

        # A long answer: tokens stream in, the prompt is locked, Escape stops it.
        app.screen.query_one("#s-max_new_tokens", Input).value = "2000"
        app.screen.query_one("#s-temperature", Input).value = "1.0"
        prompt.focus()
        await pilot.press(*"hello", "enter")
        answer = bubbles(app)[-1]
        await until(pilot, lambda: len(answer.text) > 5, what="streamed tokens")
        assert prompt.disabled and pane.pending
        await pilot.press("escape")
        await until(pilot, lambda: not pane.pending, what="stopped")
        assert answer.footer.startswith("stopped")
        assert not prompt.disabled

        # A bad sampling value names the field and nothing is sent.
        app.screen.query_one("#s-top_p", Input).value = "7"
        await pilot.pause()
        assert "top_p" in str(app.screen.query_one("#sampling-problem").render())
        assert not pane.send("again")
        app.screen.query_one("#s-top_p", Input).value = "0.9"
        app.screen.query_one("#s-max_new_tokens", Input).value = "12"
        app.screen.query_one("#s-seed", Input).value = "3"

        # Compare: the same prompt and seed to base and tuned, side by side.
        await pilot.press("ctrl+t")
        prompt.focus()
        await pilot.press(*"tell me", "enter")
        await until(pilot, lambda: not pane.pending, what="two answers")
        pair = list(app.screen.query_one("#conversation").query(Horizontal))[-1]
        left, right = pair.query(Bubble)
        assert (left.model_name, right.model_name) == ("base", "adapter")
        assert left.text and right.text and left.text != right.text  # the adapter changes the answer
        assert all("tokens" in b.footer for b in (left, right))

        # A second compare turn: each side is sent its own history, never the other's answers.
        sent = []
        write = pane._write
        pane._write = lambda request: (sent.append(request), write(request))
        prompt.focus()
        await pilot.press(*"and again", "enter")
        await until(pilot, lambda: not pane.pending, what="two more answers")
        pane._write = write
        history = {r["model"]: [m["content"] for m in r["messages"] if m["role"] == "assistant"] for r in sent}
        answered = pane.conversation.turns[1]["answers"]
        assert answered["base"] != answered["adapter"]
        assert history["base"][-1] == answered["base"] and history["adapter"][-1] == answered["adapter"]
        assert [m["content"] for m in sent[0]["messages"] if m["role"] == "user"][-2:] == ["tell me", "and again"]

        # From the conversation (the prompt beside it enabled), 4 goes to Merge and stays there: Textual used to
        # pass the hidden conversation's focus to the prompt, and the tabs then switched back to Chat (2 in 3 tries).
        for _ in range(4):
            app.screen.query_one("#conversation").focus()
            await pilot.pause()
            await pilot.press("4")
            await pilot.pause(0.3)
            assert app.screen.mode == "merge" and app.focused is app.screen.query_one("#merge-log")
            await pilot.press("5")
            await pilot.pause(0.3)
            assert app.screen.mode == "chat" and app.focused is prompt

    # The conversation was saved and reopens in a new app.
    (saved,) = chats_dir(trained).glob("*.json")
    turns = json.loads(saved.read_text())["turns"]
    assert [t["user"] for t in turns] == ["hello", "tell me", "and again"]
    assert set(turns[1]["answers"]) == {"base", "adapter"} and turns[1]["settings"]["seed"] == 3
    app = SmoloraApp(project=trained)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        select = app.screen.query_one("#saved", Select)
        await until(pilot, lambda: len(select._options) > 1, what="saved list")
        select.value = str(saved)
        await pilot.pause()
        assert [b.text for b in bubbles(app)][:2] == ["hello", turns[0]["answers"]["adapter"]]
        assert len(bubbles(app)) == 8  # you, answer, then twice: you, base, tuned


async def test_merge_defaults_to_the_newest_final_adapter_and_lists_say_what_is_true(tiny_model_dir):
    import shutil

    from smolora_engine.cli import main
    from smolora_engine.runs import list_runs
    from tests.test_training import make_project

    make_project("m", tiny_model_dir, max_steps=2, save_steps=1, keep_checkpoints=5)
    assert main(["train", "--project", "m"]) == 0
    assert main(["train", "--project", "m"]) == 0
    older, newer = list_runs("m")
    shutil.rmtree(newer.folder / "adapter")  # the newer run ended with checkpoints only (as a stopped run does)
    for n in range(3):
        chats_dir("m").mkdir(parents=True, exist_ok=True)
        (chats_dir("m") / f"2026010{n}-000000.json").write_text(json.dumps(
            {"started": f"2026010{n}-000000", "turns": [{"user": f"hello {n}", "answers": {"base": "hi"}}]}))
    app = SmoloraApp(project="m")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        pane = app.screen.query_one(MergePane)
        await until(pilot, lambda: pane.source is not None, what="adapters listed")
        assert pane.source == (older.run_id, None)
        source = app.screen.query_one("#merge-source", Select)
        assert source.prompt != "no finished run yet"
        await pilot.press("5")
        await until(pilot, lambda: app.screen.query_one(ChatPane).ready, timeout=120, what="serve ready")
        assert app.screen.query_one("#chat-model", Select).prompt != "loading…"
        saved = app.screen.query_one("#saved", Select)
        assert saved.prompt == "open one of 3 saved" and len(saved._options) == 4
