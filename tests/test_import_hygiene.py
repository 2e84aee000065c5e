"""The contract of DESIGN.md: the engine never imports textual/rich; the TUI never imports the ML stack."""

from tests.conftest import run_python

HEAVY = ("torch", "transformers", "peft", "trl", "datasets")


def test_engine_does_not_import_textual_or_rich():
    out = run_python(
        "import sys, smolora_engine, smolora_engine.cli, smolora_engine.projects, smolora_engine.events\n"
        "import smolora_engine.models, smolora_engine.device\n"
        "print(' '.join(m for m in ('textual', 'rich') if m in sys.modules))"
    )
    assert out.strip() == ""


def test_running_tui_does_not_import_ml_stack():
    code = (
        "import asyncio, sys\n"
        "from smolora_tui.app import SmoloraApp\n"
        "async def main():\n"
        "    app = SmoloraApp(project='demo')\n"
        "    async with app.run_test(size=(100, 30)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert run_python(code).strip() == ""
