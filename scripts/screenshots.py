"""Write `screenshots/*.svg`: every screen of the real app, driven by Pilot at a laptop size (100 x 30).

Each shot starts from a fresh home folder with the demo project; runs are replayed
from a real demo run's events (tests/scenes.py). The chat shot loads the embedded
model for real (converted once into the shared cache, about 20 s the first time).

Usage: python scripts/screenshots.py [--out screenshots] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def until(pilot, predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate(pilot.app):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for the scene in {pilot.app.screen}")
        await pilot.pause(0.1)


def shown(selector: str, needle: str):
    return lambda app: needle in str(app.screen.query_one(selector).render())


def shots():
    """(name, set-up, project to open, keys, wait-for) for each screenshot."""
    from smolora_engine.projects import create_project

    from tests import scenes

    def picker():
        scenes.add_run("demo")
        create_project("support-bot")
        scenes.broken_project()

    def running():
        scenes.add_run("demo", run_id="20261122-094512-3301")
        scenes.add_run("demo", until_step=17, running=True)

    def merged():
        scenes.add_reports(scenes.add_run("demo"))

    def chat():
        scenes.saved_chat("demo")

    return [
        ("01-projects", picker, None, [], None),
        ("02-data", lambda: None, "demo", ["1"], shown("#preview-info", "rows")),
        ("03-settings", lambda: None, "demo", ["2"], shown("#estimate", "memory to train")),
        ("03b-model-picker", lambda: None, "demo", ["2", lambda app: app.screen.choose_model()],
         shown("#detail", "parameters")),
        ("02b-data-sample", lambda: None, "demo", ["1", "v"], shown("#sample-text", "trained")),
        ("04-train", running, "demo", ["3"], shown("#train-stats", "step 17/29")),
        ("04b-train-answers", running, "demo", ["3", "a", "right_square_bracket"],
         shown("#samples-text", "eval at step 10")),
        ("04c-train-compare", lambda: scenes.compared_runs("demo"), "demo", ["3", "c"],
         shown("#compare-info", "settings that differ: lora.r")),
        ("04d-train-queue", lambda: scenes.queued("demo"), "demo", ["3", "q"],
         shown("#queue-runner", "2 pending")),
        ("05-merge", merged, "demo", ["4"], shown("#export-result", "verified")),
        ("06-chat", chat, "demo", ["5"], lambda app: app.screen.query_one("ChatPane").ready),
        ("07-help", lambda: None, "demo", ["3", "f1"], None),
    ]


async def take(name, setup, project, keys, ready, out: Path, home: Path, models: Path) -> Path:
    from textual.widgets import Input, RichLog, Select

    from smolora_tui.app import SmoloraApp
    from tests import scenes

    scenes.demo(home)
    (home / "cache").mkdir(exist_ok=True)
    (home / "cache" / "models").symlink_to(models, target_is_directory=True)
    setup()
    app = SmoloraApp(project=project)
    app.animation_level = "none"  # the same picture every time
    async with app.run_test(size=scenes.SIZE) as pilot:
        await pilot.pause(0.3)
        for key in keys:  # a key, or something a person does that has no key (opening a dialog)
            if callable(key):
                key(app)
            else:
                await pilot.press(key)
            await pilot.pause(0.2)
        if ready is not None:
            await until(pilot, ready)
        if name == "06-chat":
            select = app.screen.query_one("#saved", Select)
            await until(pilot, lambda _app: len(select._options) > 1)
            select.value = select._options[1][1]
            app.screen.query_one("#prompt", Input).focus()
        await pilot.pause(0.8)
        await until(pilot, scenes.tables_measured)
        for editor in app.screen.query(Input):
            editor.cursor_blink = False
        for log in app.screen.query(RichLog):
            log.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # A fixed, readable home (paths show on the Merge screen); removed before each shot.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "models").mkdir()
        home = Path("/tmp/smolora-demo")
        os.environ["SMOLORA_HOME"] = str(home)
        for name, setup, project, keys, ready in shots():
            if args.only and name not in args.only:
                continue
            path = asyncio.run(take(name, setup, project, keys, ready, args.out, home, Path(tmp) / "models"))
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
