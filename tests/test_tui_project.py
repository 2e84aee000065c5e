"""Pilot tests of a project's Data and Settings modes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.widgets import DataTable, Input, Select, Switch, TabbedContent

from smolora_engine import paths
from smolora_engine.demo import demo_train_file
from smolora_engine.projects import create_project, load_project
from smolora_tui.app import SmoloraApp
from smolora_tui.dialogs import ChoiceDialog
from smolora_tui.screens.picker import ProjectPicker
from smolora_tui.screens.project import ProjectScreen
from smolora_tui.state import load_state
from smolora_tui.widgets.data_pane import DataPane
from smolora_tui.widgets.settings_form import FieldRow, SettingsForm, field_id

SIZE = (110, 36)
LIFELONG_WORKERS = ("_loader", "follow-runs", "_serve")


def row(app, key) -> FieldRow:
    return app.screen.query_one(f"#{field_id(key)}", FieldRow)


async def settle(pilot, app):
    """Wait for the app's one-off workers (the file tree's loader and the runs follower live as long as their pane)."""
    mine = [w for w in app.workers if w.name not in LIFELONG_WORKERS]
    if mine:  # an empty list would mean every worker
        await app.workers.wait_for_complete(mine)
    await pilot.pause()


async def open_data(pilot, app) -> DataPane:
    """The Data mode, with its file's preview read."""
    await pilot.pause()
    app.screen.action_mode("data")
    await pilot.pause()
    pane = app.screen.query_one(DataPane)
    await settle(pilot, app)
    return pane


async def type_into(pilot, app, key, text):
    if app.screen.mode != "settings":
        app.screen.action_mode("settings")
        await pilot.pause()
    editor = row(app, key).query_one(Input)
    editor.focus()
    editor.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def test_invalid_value_shows_the_engines_message_and_blocks_save():
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen) and app.screen.mode == "data"  # a new project: where work starts
        await type_into(pilot, app, "lora.r", "-3")
        lora_r = row(app, "lora.r")
        assert lora_r.has_class("-invalid")
        assert "lora.r must be a positive integer, got -3" in str(lora_r.query_one(".doc").render())
        status = str(app.screen.query_one("#settings-status").render())
        assert "need fixing" in status
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert load_project("p").lora.r == 16  # nothing saved
        await type_into(pilot, app, "lora.r", "abc")
        assert "lora.r must be an integer" in str(row(app, "lora.r").query_one(".doc").render())
        await type_into(pilot, app, "lora.r", "32")
        assert not row(app, "lora.r").has_class("-invalid") and row(app, "lora.r").has_class("-changed")
        assert "unsaved" in str(app.screen.query_one("#settings-status").render())
        # The header shows the saved settings while a value is being typed, and says there are unsaved ones.
        summary = str(app.screen.query_one("#summary").render())
        assert "LoRA r=16" in summary and "r=3" not in summary and "unsaved changes" in summary


async def test_numbers_are_decimal_and_far_out_values_are_questioned():
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, app, "training.learning_rate", "0xabc")
        lr = row(app, "training.learning_rate")
        assert lr.has_class("-invalid") and "must be a number, got '0xabc'" in str(lr.query_one(".doc").render())
        await type_into(pilot, app, "training.learning_rate", "5")
        assert not lr.has_class("-invalid") and lr.has_class("-warning")
        assert "far above the usual range" in str(lr.query_one(".doc").render())
        await pilot.press("ctrl+s")  # a warning does not block saving
        await pilot.pause()
        assert load_project("p").training.learning_rate == 5.0
        await type_into(pilot, app, "training.learning_rate", "3e-4")
        assert not lr.has_class("-warning")
        # the chat template's options, typed as a TOML table (e.g. Qwen3's enable_thinking)
        await type_into(pilot, app, "data.template_options", "{enable_thinking = false}")
        assert not row(app, "data.template_options").has_class("-invalid")
        assert app.screen.form.project.data.template_options == {"enable_thinking": False}


async def test_save_writes_the_toml_and_reload_reads_it(tmp_path):
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, app, "training.learning_rate", "1e-4")
        await type_into(pilot, app, "lora.target_modules", "q_proj, v_proj")
        switch = row(app, "training.keep_best").query_one(Switch)
        switch.value = False
        row(app, "training.gradient_checkpointing").query_one(Select).value = "off"
        select = row(app, "training.scheduler").query_one(Select)
        select.value = "linear"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "saved" == str(app.screen.query_one("#settings-status").render())
    with open(paths.project_file("p"), "rb") as handle:
        saved = tomllib.load(handle)
    assert saved["training"]["learning_rate"] == 1e-4
    assert saved["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert saved["training"]["keep_best"] is False and saved["training"]["scheduler"] == "linear"
    assert saved["training"]["gradient_checkpointing"] == "off"

    # edited outside the app, then F5
    text = paths.project_file("p").read_text().replace("r = 16", "r = 64")
    paths.project_file("p").write_text(text)
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert row(app, "lora.r").query_one(Input).value == "64"
        paths.project_file("p").write_text(text.replace("r = 64", "r = 8"))
        await pilot.press("f5")
        await pilot.pause()
        assert row(app, "lora.r").query_one(Input).value == "8"


async def test_leaving_with_unsaved_changes_asks_first():
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, app, "lora.r", "8")
        await pilot.press("escape")  # the first Escape leaves the field, where 1-5 would be typed as text
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen) and app.focused is None
        await pilot.press("3")
        await pilot.pause()
        assert app.screen.mode == "train"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("escape")  # cancel: stay, changes kept
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen) and app.screen.form.dirty
        await pilot.press("escape")
        await pilot.pause()
        await pilot.click("#choice-discard")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)
    assert load_project("p").lora.r == 16


async def test_leave_can_save_and_f5_asks_before_discarding():
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, app, "lora.r", "8")
        await pilot.press("f5")  # reload with unsaved changes: asked, and cancel keeps them
        await pilot.pause()
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.form.dirty and row(app, "lora.r").query_one(Input).value == "8"
        await pilot.press("escape", "escape")  # out of the field, then out of the project
        await pilot.pause()
        await pilot.click("#choice-save")  # save and leave
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)
    assert load_project("p").lora.r == 8


async def test_preset_from_the_palette_and_number_keys_switch_modes():
    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.query_one(TabbedContent).focus()
        await pilot.press("1")
        await pilot.pause()
        assert app.screen.mode == "data"
        await pilot.press("2")
        assert app.screen.mode == "settings"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Preset: quick-test" in titles and "Save settings" not in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Preset: quick", "enter")
        await pilot.pause()
        assert row(app, "training.max_steps").query_one(Input).value == "20"
        assert app.screen.form.dirty
        assert "Save settings" in [c.title for c in app.get_system_commands(app.screen)]
    # the mode the project was left in is remembered
    assert load_state()["modes"]["p"] == "settings"


async def test_theme_switch_is_remembered():
    app = SmoloraApp()
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "textual-light"
        await pilot.pause()
    assert load_state()["theme"] == "textual-light"
    app = SmoloraApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "textual-light"


async def test_the_doctor_shows_why_no_row_is_usable(tmp_path):
    """Settings that leave no usable row: the app says the engine's message and lists every problem row."""
    data = tmp_path / "broken.jsonl"
    data.write_text("\n".join('{"x": %d}' % i for i in range(8)) + "\n")
    project = create_project("p", data=str(data))
    project.data.shape = "prompt_completion"
    project.data.columns = {"prompt": "q", "completion": "a"}
    from smolora_engine.projects import save_project

    save_project(project)
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_data(pilot, app)
        pane.action_check()
        await settle(pilot, app)
        summary = pane.query_one("#doctor-summary")
        text = str(summary.render())
        assert summary.has_class("-error")
        assert "no usable rows (8 read)" in text and "broken.jsonl:1" in text and "None" not in text
        assert pane.query_one("#problems-table", DataTable).row_count == 8


async def test_data_preview_doctor_and_opening_a_problem_row(tmp_path):
    data = tmp_path / "chat.jsonl"
    good = demo_train_file().read_text().splitlines()[:30]
    data.write_text("\n".join(good[:5] + ['{"messages": "not a list"}', "{broken json"] + good[5:]) + "\n")
    (tmp_path / "notes.bin").write_bytes(b"\x00")
    create_project("p", data=str(data))
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_data(pilot, app)
        preview = pane.query_one("#preview", DataTable)
        assert preview.row_count == 31  # the malformed JSON line is not a row (the wrong-typed one is)
        assert "shape: chat" in str(pane.query_one("#preview-info").render())
        tree_files = [str(node.data.path.name) for node in pane.query_one("DataTree").root.children]
        assert "chat.jsonl" in tree_files and "notes.bin" not in tree_files

        pane.action_check()
        await settle(pilot, app)
        summary = str(pane.query_one("#doctor-summary").render())
        assert "usable of 32 rows" in summary and "2 problems" in summary
        problems = pane.query_one("#problems-table", DataTable)
        assert problems.row_count == 2
        problems.focus()
        problems.move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot, app)
        raw = str(pane.query_one("#raw-row").render())
        assert "chat.jsonl:7" in raw and "{broken json" in raw

        # The settings' memory estimate now also gives the figure for this data's longest sample.
        from smolora_engine.estimate import estimate_for, gib, read_facts
        from smolora_engine.models import ensure_model

        longest = pane.report["tokens"]["max"]
        app.screen.action_mode("settings")
        estimate = app.screen.query_one("#estimate")
        await wait_until(pilot, lambda: "longest sample" in str(estimate.render()))
        project = app.screen.form.project
        machine = app.model_facts.machine  # the recipe a worker would choose here: probed dtype, free memory
        recipe = dict(dtype=machine.dtype, free_mb=machine.memory_available / 2**20)
        expected = estimate_for(read_facts(ensure_model(project.model.base)), project,
                                machine.device, longest=longest, **recipe)
        assert f"with this data's longest sample ({longest} tokens): ≈ {gib(expected.total)}" \
            in str(estimate.render())
        assert expected.total < estimate_for(read_facts(ensure_model(project.model.base)), project,
                                             machine.device, **recipe).total
        # The recipe line is the one a run on this data gets: its short samples are packed, not one per row.
        assert expected.packing.packed
        assert (f"recipe for this data: {machine.dtype} (" in str(estimate.render())
                and f"packing {expected.packing.micro_batch} samples per row" in str(estimate.render()))
        await type_into(pilot, app, "data.path", str(demo_train_file()))  # other data: not checked yet
        assert "longest sample" not in str(estimate.render())
        assert f"recipe at max_length: {machine.dtype} (" in str(estimate.render())


async def test_unreadable_project_shows_its_error_and_recovers_after_a_fix():
    create_project("p")
    good = paths.project_file("p").read_text()
    paths.project_file("p").write_text("this is = = not toml")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen)
        assert "cannot be read" in str(app.screen.query_one("#summary").render())
        assert not app.screen.query(SettingsForm)
        paths.project_file("p").write_text(good)
        await pilot.press("f5")
        await pilot.pause()
        assert app.screen.query(SettingsForm)


async def test_modes_and_rows_not_on_screen_are_built_after_the_first_frame():
    """Start-up builds only what the first frame shows; the rest follows without being asked for."""
    from smolora_engine.project_fields import field_specs
    from smolora_tui.widgets.chat_pane import ChatPane
    from smolora_tui.widgets.merge_pane import MergePane
    from smolora_tui.widgets.train_pane import TrainPane

    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ProjectScreen) and screen.mode == "data"
        for _ in range(50):
            if screen.later.done and screen.form.later.done:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        for kind in (DataPane, TrainPane, MergePane, ChatPane):
            assert len(screen.query(kind)) == 1, kind
        assert len(screen.query(FieldRow)) == len([s for s in field_specs() if s.key != "data.columns"])
        assert not any(isinstance(s, ProjectPicker) for s in app.screen_stack)  # made only when going back


async def wait_until(pilot, predicate, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.1)


async def test_choose_a_cached_model_pick_its_layers_and_see_the_memory_estimate(tiny_model_dir, tmp_path,
                                                                                  monkeypatch):
    """A model in the local Hugging Face cache is offered; its own linear layers are the targets offered."""
    import huggingface_hub.constants

    from smolora_engine.estimate import estimate_for, read_facts
    from smolora_tui.dialogs import ModelPickerDialog, TargetsDialog
    from textual.widgets import OptionList, SelectionList, Static

    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-llama" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for file in tiny_model_dir.iterdir():
        (snapshot / file.name).symlink_to(file)
    (cache / "models--acme--tiny-llama" / "refs").mkdir()
    (cache / "models--acme--tiny-llama" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row(app, "model.base").query_one(".chooser").press()
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPickerDialog)
                         and app.screen.query_one(OptionList).option_count >= 1)
        dialog = app.screen
        specs = [source.spec for source in dialog.sources]
        assert "acme/tiny-llama" in specs
        dialog.query_one(OptionList).highlighted = specs.index("acme/tiny-llama")
        await wait_until(pilot, lambda: "LlamaForCausalLM" in str(dialog.query_one("#detail", Static).render()))
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ProjectScreen)
        assert row(app, "model.base").query_one(Input).value == "acme/tiny-llama"
        assert screen.form.project.model.base == "acme/tiny-llama" and screen.form.dirty

        # The estimate follows the chosen model and every setting that costs memory.
        facts = read_facts(snapshot)
        estimate = screen.query_one("#estimate", Static)
        await wait_until(pilot, lambda: "memory to train" in str(estimate.render()))
        expected = estimate_for(facts, screen.form.project, app.model_facts.machine.device)
        assert f"{expected.adapter_params / 1e6:.2f} M adapter parameters" in str(estimate.render())
        before = str(estimate.render())
        await type_into(pilot, app, "training.max_length", "4096")
        assert str(estimate.render()) != before

        screen.choose_targets()
        await wait_until(pilot, lambda: isinstance(app.screen, TargetsDialog))
        choices = app.screen.query_one(SelectionList)
        assert choices.option_count == len(facts.linear)
        choices.deselect_all()
        choices.select("q_proj")
        await pilot.pause()
        app.screen.query_one("#ok").press()
        await pilot.pause()
        assert screen.form.project.lora.target_modules == ["q_proj"]
        assert row(app, "lora.target_modules").query_one(Input).value == "q_proj"


async def test_a_model_folder_is_checked_as_it_is_typed(tiny_model_dir, tmp_path):
    from smolora_tui.dialogs import ModelPickerDialog

    create_project("p")
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.choose_model()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ModelPickerDialog)
        folder = dialog.query_one("#folder", Input)
        folder.focus()
        await pilot.press(*str(tmp_path))
        await pilot.pause()
        assert "has no config.json" in str(dialog.query_one("#error").render())
        assert dialog.query_one("#use-folder").disabled
        folder.value = ""
        await pilot.press(*str(tiny_model_dir))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.form.project.model.base == str(tiny_model_dir.resolve())


async def test_map_odd_column_names_then_see_a_sample_with_its_trained_span(tmp_path, tiny_model_dir):
    """A CSV with columns ask and reply: map them to prompt and completion, save, and render one sample."""
    from textual.widgets import Static

    data = tmp_path / "qa.csv"
    data.write_text("id,ask,reply\n1,What is two plus two?,Four.\n2,Name a colour.,Blue.\n")
    create_project("p", model=str(tiny_model_dir), data=str(data))
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.action_mode("data")
        await app.screen.built("data")
        pane = app.screen.query_one(DataPane)
        await wait_until(pilot, lambda: pane.last_preview is not None and pane.query("#mapping Select"))
        assert "shape: not recognised" in str(pane.query_one("#preview-info").render())

        def editor(name):
            return next((s for s in pane.query("#mapping Select") if s.name == name and s.is_mounted), None)

        editor("shape").value = "prompt_completion"
        await wait_until(pilot, lambda: editor("prompt") is not None)
        await pilot.pause()
        editor("prompt").value = "ask"
        await pilot.pause()
        editor("completion").value = "reply"
        await wait_until(pilot, lambda: "shape: prompt_completion" in str(pane.query_one("#preview-info").render()))
        pane.query_one("DataTree").focus()
        await pilot.press("a")
        await pilot.pause()
        project = app.screen.form.project
        assert project.data.shape == "prompt_completion" and project.data.columns == {"prompt": "ask",
                                                                                      "completion": "reply"}
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert load_project("p").data.columns == {"prompt": "ask", "completion": "reply"}

        await pilot.press("v")
        sample = pane.query_one("#sample-text", Static)
        await wait_until(pilot, lambda: "tokens" in str(sample.render()))
        rendered = sample.render()
        trained = "".join(rendered.plain[span.start:span.end] for span in rendered.spans
                          if span.style.foreground is not None)
        masked = "".join(rendered.plain[span.start:span.end] for span in rendered.spans if span.style.dim)
        assert "Four." in trained and "What is two plus two?" in masked and "Four." not in masked, (rendered.plain, rendered.spans)


async def test_the_sample_view_steps_past_a_row_the_template_cannot_render(tmp_path, tiny_model_dir):
    """A tool-calling row under SmolLM2's template (which writes no calls): v names it, then v shows the next."""
    import json

    from textual.widgets import Static

    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    rows = [{"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "",
                                                                    "tool_calls": [call]},
                          {"role": "tool", "content": "21"}, {"role": "assistant", "content": "21 C."}]},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    create_project("p", model=str(tiny_model_dir), data=str(data))
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_data(pilot, app)
        sample = pane.query_one("#sample-text", Static)
        await pilot.press("v")
        await wait_until(pilot, lambda: "v: the next sample" in str(sample.render()))
        assert f"{data}:1: the model's chat template leaves out message 2's tool call(s)" in str(sample.render())
        await pilot.press("v")
        await wait_until(pilot, lambda: "tokens" in str(sample.render()))
        assert str(sample.render()).startswith(f"sample 2 · {data}:2 · ")


async def test_another_file_shows_nothing_of_the_last_one_and_the_tree_goes_up(tmp_path):
    """The doctor, the sample and the column mapping belong to one file; browsing can leave its folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    chat = folder / "chat.jsonl"
    chat.write_text("\n".join(demo_train_file().read_text().splitlines()[:12] + ["{broken json"]) + "\n")
    other = folder / "odd.csv"
    other.write_text("ask,reply\nWhat is two plus two?,Four.\n")
    (tmp_path / "elsewhere.jsonl").write_text('{"text": "hi"}\n')
    create_project("p", data=str(chat))
    app = SmoloraApp(project="p")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.mode == "data"
        pane = app.screen.query_one(DataPane)
        await settle(pilot, app)
        pane.action_check()
        await settle(pilot, app)
        problems = pane.query_one("#problems-table", DataTable)
        assert problems.row_count == 1 and "usable of 13 rows" in str(pane.query_one("#doctor-summary").render())

        pane.show(other)
        await settle(pilot, app)
        assert problems.row_count == 0
        summary = str(pane.query_one("#doctor-summary").render())
        assert "usable of" not in summary and "This file is not it" in summary
        assert "shape: not recognised" in str(pane.query_one("#preview-info").render())
        # a mapping chosen for this file and applied, then auto again: auto applies no columns
        pane.shape, pane.columns = "prompt_completion", {"prompt": "ask", "completion": "reply"}
        pane.show(other)
        await settle(pilot, app)
        pane.query_one("DataTree").focus()
        await pilot.press("a")
        await pilot.pause()
        assert app.screen.form.project.data.columns == {"prompt": "ask", "completion": "reply"}
        mapping = {s.name: s for s in pane.query("#mapping Select")}
        mapping["shape"].value = "auto"
        await settle(pilot, app)
        pane.query_one("DataTree").focus()
        await pilot.press("a")
        await pilot.pause()
        assert (app.screen.form.project.data.shape, app.screen.form.project.data.columns) == ("auto", {})

        pane.show(chat)  # back to the project's data: its report again
        await settle(pilot, app)
        assert problems.row_count == 1

        tree = pane.query_one("DataTree")
        tree.focus()
        await pilot.press("backspace")
        await settle(pilot, app)
        assert Path(tree.path) == tmp_path
        await until_children(pilot, tree)
        assert "elsewhere.jsonl" in [node.data.path.name for node in tree.root.children]


async def until_children(pilot, tree) -> None:
    for _ in range(100):
        if tree.root.children:
            return
        await pilot.pause(0.05)
