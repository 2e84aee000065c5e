"""Pilot tests of the answers panel and the end-of-run notice, with the real worker on a tiny model."""

from __future__ import annotations

import json

from smolora_engine import events as ev
from smolora_engine.projects import load_project, save_project
from smolora_tui.app import SmoloraApp
from smolora_tui.run_follow import RunHistory
from smolora_tui.run_notice import EndWatch, desktop_command, notice_text
from smolora_tui.widgets.samples_panel import SamplesPanel
from tests.test_training import make_project
from tests.test_tui_train import SIZE, drawn, kill_workers, shown, status, until


def samples_project(name, model, folder):
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "reference": r}) + "\n"
                               for p, r in (("What is two plus two?", "Four."), ("Name a colour.", "Blue."))))
    make_project(name, model, max_steps=6, eval_steps=2, save_steps=2, grad_accum=1)
    project = load_project(name)
    project.eval.prompts, project.eval.max_new_tokens = str(prompts), 6
    project.eval.checks = ["not_contains:@@@"]
    project.notify.desktop = False
    save_project(project)


async def test_the_answers_panel_pages_prompts_and_evals_and_the_end_is_noticed(tiny_model_dir, tmp_path):
    samples_project("a", tiny_model_dir, tmp_path)
    rings = []
    try:
        app = SmoloraApp(project="a")
        async with app.run_test(size=SIZE) as pilot:
            app.bell = lambda: rings.append(1)  # counted, not silenced: the notice is what is tested
            await pilot.press("3")
            await pilot.press("s")
            await until(pilot, lambda: status(app) == "finished", what="the run to finish")
            await until(pilot, lambda: rings, timeout=5, what="the bell")
            notices = [n for n in app._notifications if "finished" in n.title]
            assert len(notices) == 1 and "pass rate 100%" in notices[0].message and len(rings) == 1
            await until(pilot, lambda: "pass 100%" in drawn(app, "#train-stats"), timeout=5, what="pass rate")

            panel = app.screen.query_one(SamplesPanel)
            assert not panel.display  # the chart first
            await pilot.press("a")
            text = str(panel.render_text(shown(app)))
            assert panel.display and "prompt 1/2" in text and "What is two plus two?" in text
            assert "reference: Four." in text and "eval at step 6 (3/3)" in text
            assert "base: ✓ 1 check(s) passed" in text and "step 4:" in text and "step 6:" in text
            await pilot.press("right_square_bracket")
            text = str(panel.render_text(shown(app)))
            assert "prompt 2/2" in text and "Name a colour." in text
            await pilot.press("comma", "comma")
            text = str(panel.render_text(shown(app)))
            assert "eval at step 2 (1/3), paged back" in text and "step 4:" not in text
            await pilot.press("full_stop", "full_stop", "full_stop")
            assert "eval at step 6 (3/3)" in str(panel.render_text(shown(app)))
            await pilot.press("a")
            assert not panel.display and app.screen.query_one("#loss-plot").display
    finally:
        kill_workers("a")


def test_failed_checks_and_changes_are_marked():
    history = RunHistory("r")

    def answers(text, passed):
        return [{"prompt": "p", "answer": text, "checks": [{"check": "contains:yes", "passed": passed}],
                 "passed": passed}]

    history.add(ev.Samples(step=0, base=True, answers=answers("no", False), pass_rate=0.0, checked=1))
    history.add(ev.Samples(step=5, answers=answers("no", False), pass_rate=0.0, checked=1))
    history.add(ev.Samples(step=10, answers=answers("yes", True), pass_rate=1.0, checked=1, best=True))
    text = SamplesPanel().render_text(history.snapshot())
    lines = str(text).splitlines()
    assert "pass rate 100% (1/1)" in lines[0]
    assert [line for line in lines if line.startswith(("base", "step"))] == [
        "base: ✗ failed: contains:yes", "step 5: ✗ failed: contains:yes  unchanged",
        "step 10: ✓ 1 check(s) passed  changed"]
    assert history.snapshot().best_pass_step == 10 and history.snapshot().plot_pass_rate == ([5, 10], [0.0, 1.0])
    assert "No answers yet" in str(SamplesPanel().render_text(RunHistory("empty")))


def test_only_runs_seen_live_are_noticed_and_the_notice_says_what_happened():
    from smolora_engine.runs import RunInfo

    def info(run_id, status, **kw):
        return RunInfo("p", run_id, None, status=status, **kw)

    watch = EndWatch()
    assert watch.ended([info("old", "finished"), info("new", "running")]) == []
    ended = watch.ended([info("old", "finished"), info("new", "crashed", step=7, max_steps=9, resumable_step=5)])
    assert [i.run_id for i in ended] == ["new"] and watch.ended([info("new", "crashed")]) == []
    title, message, severity = notice_text(ended[0])
    assert title == "run new crashed" and "resumable at step 5" in message and severity == "error"
    title, message, severity = notice_text(info("r", "finished", step=9, max_steps=9, loss=0.5), 0.75,
                                           "early stopping: …")
    assert "loss 0.5000" in message and "pass rate 75%" in message and "early stopping" in message


def test_no_desktop_notification_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert desktop_command("t", "m") is None
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert desktop_command("t", "m") == ["notify-send", "--app-name=smolora-tui", "t", "m"]
