"""Pilot tests of the queue and compare views: a real runner training tiny models, runs read from disk."""

from __future__ import annotations

import time

from textual.widgets import DataTable, Input

from smolora_engine.demo import setup_demo
from smolora_engine.overnight.queue_file import read_queue
from smolora_engine.overnight.runner import runner_holder
from smolora_tui.app import SmoloraApp
from smolora_tui.screens.compare import CompareScreen
from smolora_tui.screens.queue import QueueScreen
from tests import scenes
from tests.test_queue import make_project
from tests.test_tui_train import until

SIZE = (100, 30)


def table_column(app, selector: str, column: int) -> list[str]:
    table = app.screen.query_one(selector, DataTable)
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def type_in_dialog(pilot, text: str) -> None:
    editor = pilot.app.screen.query_one(Input)
    editor.value = text
    await pilot.pause()


async def test_the_queue_view_adds_sweeps_moves_removes_and_runs(tiny_model_dir):
    make_project("q", tiny_model_dir)
    app = SmoloraApp(project="q")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "q")
        await until(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.loaded, what="the queue")
        assert "The queue is empty." in str(app.screen.query_one("#queue-note").render())

        await pilot.press("a")
        await type_in_dialog(pilot, "lora.r=0")
        assert "lora.r must be a positive integer" in str(app.screen.query_one("#error").render())
        assert app.screen.query_one("#ok").disabled
        await type_in_dialog(pilot, "training.max_steps=2")
        await pilot.press("enter")
        await until(pilot, lambda: len(read_queue().entries) == 1, what="the entry")

        await pilot.press("w")
        await type_in_dialog(pilot, "lora.r=2,4")
        await pilot.press("enter")
        await until(pilot, lambda: table_column(app, "#queue-table", 0) == ["1", "2", "3"], what="the sweep")
        assert table_column(app, "#queue-table", 4)[1:] == ["lora.r=2", "lora.r=4"]

        await pilot.press("down", "down")
        await until(pilot, lambda: app.screen.highlighted() == 3)
        await pilot.press("k")  # entry 3 moves before entry 2
        await until(pilot, lambda: table_column(app, "#queue-table", 0) == ["1", "3", "2"], what="the move")
        await until(pilot, lambda: app.screen.highlighted() == 3)
        await pilot.press("down", "d")
        await pilot.click("#confirm")
        await until(pilot, lambda: table_column(app, "#queue-table", 0) == ["1", "3"], what="the removal")

        await pilot.press("g")
        await until(pilot, lambda: "runner: pid " in str(app.screen.query_one("#queue-runner").render()),
                    what="the runner")
        await until(pilot, lambda: table_column(app, "#queue-table", 1) == ["done", "done"], timeout=240,
                    what="both entries trained")
        await until(pilot, lambda: runner_holder() is None, timeout=30, what="the runner to end")
        await pilot.press("escape")
        assert not isinstance(app.screen, QueueScreen)
    runs = {e.id: e.run_id for e in read_queue().entries}
    assert all(runs.values()) and len(set(runs.values())) == 2


async def test_the_compare_view_tells_the_runs_apart_and_leaves_one_out():
    setup_demo()
    first, second = scenes.compared_runs("demo")
    app = SmoloraApp(project="demo")
    started = time.monotonic()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None,
                    what="the comparison")
        info = lambda: str(app.screen.query_one("#compare-info").render())  # noqa: E731
        assert "2 of 2 runs  ·  settings that differ: lora.r, lora.alpha, training.learning_rate" in info()
        table = app.screen.query_one("#compare-table", DataTable)
        headers = [str(c.label) for c in table.ordered_columns]
        assert headers[2:] == ["final loss", "best eval", "pass rate", "tok/s", "wall", "status", "lora.r",
                               "lora.alpha", "training.learning_rate"]
        assert table_column(app, "#compare-table", 7) == ["finished", "stopped"]
        assert table_column(app, "#compare-table", 8) == ["16", "8"]
        await pilot.press("down", "space")
        assert "1 of 2 runs  ·  settings that differ: none: the same settings  ·  1 left out" in info()
        await pilot.press("space")
        assert "2 of 2 runs" in info()
        await pilot.press("e")
        assert app.screen.eval_curves
    assert time.monotonic() - started < 60
