"""Pilot tests of the training dashboard with the real detached worker on a tiny model."""

from __future__ import annotations

import math
import os
import signal
import time

from textual.widgets import Button

from smolora_engine.runs import list_runs
from smolora_tui.app import SmoloraApp
from smolora_tui.screens.project import ProjectScreen
from smolora_tui.run_follow import RunHistory, thin
from smolora_tui.widgets.run_text import short_id
from smolora_tui.widgets.runs_table import RunsTable
from smolora_tui.widgets.train_pane import TrainPane
from tests.test_training import make_project

SIZE = (120, 36)


async def until(pilot, predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pane(app) -> TrainPane:
    return app.screen.query_one(TrainPane)


def shown(app):
    p = pane(app)
    return p.runs.history(p.shown) if p.shown else None


def steps(history) -> list[int]:
    """The steps the chart draws (every step, while a run is shorter than the chart's buckets)."""
    return history.plot_loss[0]


def drawn(app, selector: str) -> str:
    """What a dashboard widget shows now (it redraws every REDRAW_S, so tests wait for it)."""
    return str(app.screen.query_one(selector).render())


def status(app) -> str:
    h = shown(app)
    return h.info.status if h and h.info else ""


def kill_workers(project: str) -> None:
    for info in list_runs(project):
        if info.status == "running":
            os.kill(info.pid, signal.SIGKILL)


async def test_start_stop_resume_reattach_and_crash(tiny_model_dir):
    make_project("t", tiny_model_dir, max_steps=100000, save_steps=5, logging_steps=1)
    try:
        app = SmoloraApp(project="t")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            assert app.screen.mode == "train"
            assert app.screen.query_one("#stop", Button).disabled  # nothing is running
            await pilot.press("s")
            await until(pilot, lambda: shown(app) and len(steps(shown(app))) >= 3, what="step events")
            assert status(app) == "running"
            # The dashboard redraws every REDRAW_S: wait for the figures rather than race the timer.
            await until(pilot, lambda: "step " in drawn(app, "#train-stats"), timeout=5, what="figures drawn")
            stats = drawn(app, "#train-stats")
            assert "tok/s" in stats and "ETA" in stats
            assert not app.screen.query_one("#stop", Button).disabled
            assert app.screen.query_one("#start", Button).disabled  # one run at a time

            await pilot.press("x")  # stop: a checkpoint is saved
            await until(pilot, lambda: status(app) == "stopped", what="stopped")
            history = shown(app)
            stopped_at = steps(history)[-1]
            assert history.info.resumable_step == stopped_at
            assert (stopped_at, True) in history.disk_checkpoints
            await until(pilot, lambda: f"step {stopped_at} ✓" in drawn(app, "#checkpoints"), timeout=5,
                        what="checkpoint listed")
            assert "checkpoint saved" in "\n".join(line.text for line in history.log)

            await until(pilot, lambda: not app.screen.query_one("#resume", Button).disabled, what="resume offered")
            await pilot.press("r")
            await until(pilot, lambda: status(app) == "running" and steps(shown(app))[-1] > stopped_at + 2,
                        what="resumed steps")
            seen = steps(shown(app))
            assert seen[:stopped_at] == list(range(1, stopped_at + 1))  # the curve continues
            assert seen == sorted(seen) and len(set(seen)) == len(seen)
            run_id = pane(app).shown
        # The app has quit: the worker goes on.
        info = list_runs("t")[0]
        assert info.status == "running"

        app = SmoloraApp(project="t")
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, ProjectScreen) and app.screen.mode == "train"  # lands on the dashboard
            await until(pilot, lambda: shown(app) and shown(app).info, what="history replayed")
            assert pane(app).shown == run_id
            before = steps(shown(app))
            assert before[0] == 1 and before[-1] >= stopped_at + 2  # the whole history
            await until(pilot, lambda: steps(shown(app))[-1] > before[-1] + 2, what="live steps")

            os.kill(shown(app).info.pid, signal.SIGKILL)
            await until(pilot, lambda: status(app) == "crashed", timeout=10, what="crashed")
            await until(pilot, lambda: not app.screen.query_one("#resume", Button).disabled, what="resume offered")
            assert "crashed" in drawn(app, "#train-stats")
    finally:
        kill_workers("t")


def test_smoothing_resume_and_thinning():
    from smolora_engine import events as ev

    history = RunHistory("r")
    for step in (1, 2, 3):
        history.add(ev.Step(step=step, loss=1.0))
    assert history.snapshot().plot_smoothed == ([1, 2, 3], [1.0, 1.0, 1.0])  # debiased: a flat curve stays flat
    history.add(ev.Step(step=4, loss=None))  # a NaN loss is written as null: left out, not drawn as 0
    history.add(ev.Step(step=5, loss=3.0))
    xs, ys = history.snapshot().plot_smoothed
    assert xs == [1, 2, 3, 5] and 1.0 < ys[-1] < 3.0
    history.add(ev.Started(resumed_from=2))  # resumed from a checkpoint at step 2: the curve continues from there
    history.add(ev.Step(step=3, loss=2.0))
    assert history.snapshot().plot_loss == ([1, 2, 3], [1.0, 1.0, 2.0])

    xs, ys = thin(list(range(1000)), [float(i) for i in range(1000)], limit=100)
    assert 100 <= len(xs) == len(ys) <= 200 and xs[-1] == 999
    assert abs(ys[0] - 3.5) < 1e-9  # the mean of its bucket (8 points: 0..7)
    assert abs(sum(ys) / len(ys) - 499.5) < 5
    xs, ys = thin([1, 2, 3], [1.0, math.nan, 3.0])
    assert (xs, ys) == ([1, 3], [1.0, 3.0])  # missing values are left out


def test_a_long_run_keeps_a_bounded_curve():
    from smolora_engine import events as ev

    history = RunHistory("long")
    for step in range(1, 200_001):
        history.add(ev.Step(step=step, loss=1.0 + (step % 10) / 10))
    for curve in history.curves.values():
        assert len(curve.xs) <= 2 * curve.limit
    xs, ys = history.snapshot().plot_loss
    assert xs[-1] == 200_000 and all(abs(y - 1.45) < 0.01 for y in ys[:-1])  # bucket means of the saw-tooth


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_start_follows_the_new_run_and_a_stop_counts_down_to_an_explicit_kill(tiny_model_dir):
    from smolora_engine.cli import main
    from smolora_engine.projects import load_project, save_project
    from smolora_tui.dialogs import ConfirmDialog

    make_project("k", tiny_model_dir, max_steps=2, save_steps=100000, logging_steps=1)
    assert main(["train", "--project", "k"]) == 0  # an earlier, finished run
    (old,) = [i.run_id for i in list_runs("k")]
    project = load_project("k")
    project.training.max_steps = 100000
    save_project(project)
    try:
        app = SmoloraApp(project="k")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await until(pilot, lambda: pane(app).shown == old, what="the finished run shown")
            await pilot.press("r")  # nothing to resume: it says so
            await until(pilot, lambda: any("finished at step 2: nothing to resume" in n for n in notices(app)), timeout=5,
                        what="resume refused")
            await pilot.press("s")
            await until(pilot, lambda: pane(app).shown not in (None, old) and status(app) == "running"
                        and len(steps(shown(app))) >= 2, what="the new run followed")
            new = pane(app).shown
            await until(pilot, lambda: f"run {short_id(new)}" in drawn(app, "#train-stats"), timeout=5, what="drawn")
            await pilot.press("f1")  # help lists start and resume while a run goes (pressed, they say why not)
            from smolora_tui.screens.help import HelpScreen

            await until(pilot, lambda: isinstance(app.screen, HelpScreen), timeout=5, what="help")
            keys = [key for key, _text in app.screen.keys]
            assert "s" in keys and "r" in keys and "x" in keys
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), timeout=5, what="help closed")
            await pilot.press("s")  # one run at a time: it says why
            await until(pilot, lambda: any("one run per project" in n for n in notices(app)), timeout=5,
                        what="start refused")

            # A step that never ends (SIGSTOP): the stop waits, counting down; x again asks, then kills.
            os.kill(shown(app).info.pid, signal.SIGSTOP)
            await pilot.press("x")
            await until(pilot, lambda: "killed in" in drawn(app, "#train-stats"), timeout=5, what="countdown")
            assert not app.screen.query_one("#stop", Button).disabled
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=5, what="kill asked")
            assert "no checkpoint yet" in app.screen.question
            await pilot.click("#confirm")
            await until(pilot, lambda: status(app) == "crashed", timeout=20, what="killed")
            await until(pilot, lambda: any("nothing to resume" in n and "was killed" in n for n in notices(app)),
                        timeout=10, what="the kill's message")
            await pilot.press("r")
            await until(pilot, lambda: any("has no complete checkpoint" in n for n in notices(app)), timeout=5,
                        what="resume without a checkpoint refused")
    finally:
        for info in list_runs("k"):
            if info.status == "running":
                os.kill(info.pid, signal.SIGCONT)
        kill_workers("k")


async def test_logs_wrap_again_at_a_new_width():
    from textual.app import App

    from smolora_tui.widgets.rewrap_log import RewrapLog

    class One(App):
        def compose(self):
            yield RewrapLog(wrap=True, min_width=20, markup=False)

    app = One()
    async with app.run_test(size=(100, 10)) as pilot:
        log = app.query_one(RewrapLog)
        log.write("word " * 60)  # 300 characters
        await pilot.pause()
        wide = len(log.lines)
        await pilot.resize_terminal(40, 10)
        await pilot.pause()
        assert len(log.lines) > wide and max(line.cell_length for line in log.lines) <= 40
        await pilot.resize_terminal(100, 10)
        await pilot.pause()
        assert len(log.lines) == wide


def test_y_ticks_are_evenly_spaced_with_one_precision():
    from smolora_tui.widgets.run_text import even_ticks

    ticks, labels = even_ticks(0.42, 2.82, 4)
    gaps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(gaps) == 1 and labels == ["0.42", "1.22", "2.02", "2.82"]
    ticks, labels = even_ticks(0.1, 10.0, 3, log=True)
    assert [round(t, 6) for t in ticks] == [0.1, 1.0, 10.0] and len({len(label.split(".")[-1]) for label in labels}) == 1
    assert even_ticks(1.0, 1.0, 4) == ([1.0], ["1"])  # a flat curve: one tick


async def test_the_run_shown_stays_put_as_the_table_fills(smolora_home):
    """Rows added then the cursor put on the running run: the first row's stale highlight must not win."""
    from tests import scenes

    scenes.demo(smolora_home)
    scenes.add_run("demo", run_id="20261122-094512-3301")
    scenes.add_run("demo", until_step=17, running=True)
    app = SmoloraApp(project="demo")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: pane(app).shown == scenes.RUN_ID and len(pane(app).query_one(RunsTable).run_ids) == 2, what="runs")
        seen = set()
        for _ in range(8):
            await pilot.pause(0.25)
            seen.add(pane(app).shown)
        assert seen == {scenes.RUN_ID}
        table = app.screen.query_one("#runs-table")
        assert table.cursor_row == 1


def test_the_run_list_fits_80_columns():
    from smolora_tui.widgets.run_text import count, list_labels

    assert list_labels(["20261122-101500-1234", "20261122-111500-1234"]) == ["11-22 10:15", "11-22 11:15"]
    assert list_labels(["20261122-101500-1234", "20261122-101530-1234"]) == ["11-22 10:15:00", "11-22 10:15:30"]
    assert [count(n) for n in (950, 9999, 12_345, 100_000)] == ["950", "9999", "12k", "100k"]
