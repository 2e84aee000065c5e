"""Pilot tests of the project picker and `--project`."""

from textual.widgets import DataTable, Input

from smolora_engine import paths
from smolora_engine.projects import create_project, load_project
from smolora_tui.app import SmoloraApp
from smolora_tui.dialogs import ConfirmDialog, TextInputDialog
from smolora_tui.screens.picker import ProjectPicker
from smolora_tui.screens.project import ProjectScreen


async def test_create_project_from_picker():
    app = SmoloraApp()
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, ProjectPicker)
        await pilot.press("n")
        assert isinstance(app.screen, TextInputDialog)
        await pilot.press(*"bad name")
        assert app.screen.query_one("#ok").disabled
        app.screen.query_one(Input).value = ""
        await pilot.press(*"fresh", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen) and app.screen.project_name == "fresh"
    assert load_project("fresh").name == "fresh"


async def test_project_flag_opens_project_directly():
    create_project("mine")
    app = SmoloraApp(project="mine")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen)
        assert "lora.r" not in str(app.screen.query_one("#problems").render())
        await pilot.press("escape")
        assert isinstance(app.screen, ProjectPicker)


async def test_unknown_project_offers_to_create_it():
    app = SmoloraApp(project="newone")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen)
    assert paths.project_file("newone").exists()


async def test_unreadable_project_shows_error_and_others_work():
    create_project("good")
    paths.project_file("broken").write_text("r = = 1\n")
    app = SmoloraApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        assert "not valid TOML" in str(app.screen.query_one("#detail").render())  # "broken" sorts first
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)  # refused, with a notification
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen) and app.screen.project_name == "good"


async def test_delete_asks_first():
    create_project("victim")
    app = SmoloraApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        assert paths.project_file("victim").exists()
        await pilot.press("d", "tab", "enter")
        await pilot.pause()
    assert not paths.project_file("victim").exists()
