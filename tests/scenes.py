"""Scenes for snapshot tests and `scripts/screenshots.py`: a project in a known state, deterministic.

Training runs are replayed from `tests/data/demo-run-events.jsonl`, the events of a
real run of the demo project (`smolora demo`, 29 steps on a 2-core AMD EPYC, with its eval samples), so the
dashboard shows real curves. A "running" run gets this process as its worker, so
liveness says running for as long as the app is shown.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

from smolora_engine import events as ev
from smolora_engine import paths
from smolora_engine.demo import setup_demo
from smolora_engine.projects import create_project, load_project, save_project
from smolora_engine.runs import COMPLETE_MARKER, process_start_time, run_dir

DATA = Path(__file__).resolve().parent / "data"
RUN_ID = "20261122-102301-7540"
SIZE = (100, 30)


def tables_measured(app) -> bool:
    """A DataTable measures its columns when it is next idle, which a busy machine can delay past the picture."""
    from rich.cells import cell_len
    from textual.widgets import DataTable

    for table in app.screen.query(DataTable):
        if table._require_update_dimensions or table._new_rows or table._updated_cells:
            return False  # rows or cells added since it was last idle: their widths are not measured yet
        for column in table.ordered_columns:
            widest = max((cell_len(str(value)) for value in table.get_column(column.key)), default=0)
            if column.auto_width and column.content_width < widest:
                return False
    return True


def svg_lines(svg: str) -> list[str]:
    """The text of a snapshot's SVG, line by line (each line is drawn as runs of text at one height)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text[^>]*? x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg, re.S):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text)))
    return ["".join(text for _, text in sorted(rows[y])).replace("\xa0", " ") for y in sorted(rows)]


def real_events() -> list[ev.Event]:
    return ev.read_events(DATA / "demo-run-events.jsonl")


def add_run(project: str, run_id: str = RUN_ID, until_step: int | None = None, running: bool = False,
            error: ev.Error | None = None, adapter: bool = True) -> Path:
    """A run folder replaying the real demo run (cut at `until_step`), with its checkpoints on disk."""
    folder = run_dir(project, run_id)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "run.toml").write_text(load_project(project).to_toml())
    lines = []
    for event in real_events():
        if until_step is not None and (getattr(event, "step", 0) or 0) > until_step:
            break
        if until_step is not None and isinstance(event, ev.Finished):
            break
        if isinstance(event, ev.Started):
            event.run_id, event.project = run_id, project
            event.pid, event.pid_start = (os.getpid(), process_start_time()) if running else (0, None)
        if isinstance(event, ev.Checkpoint):
            event.path = str(folder / "checkpoints" / f"checkpoint-{event.step}")
            Path(event.path).mkdir(parents=True, exist_ok=True)
            (Path(event.path) / "adapter_config.json").write_text("{}")
            (Path(event.path) / COMPLETE_MARKER).write_text("{}")
        if isinstance(event, ev.Finished):
            event.path = str(folder / "adapter")
        lines.append(event.to_json())
    if error is not None:
        lines.append(error.to_json())
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    if adapter and until_step is None and error is None:
        (folder / "adapter").mkdir(exist_ok=True)
        (folder / "adapter" / "adapter_config.json").write_text("{}")
    return folder


def add_reports(folder: Path, ok: bool = True) -> None:
    """The merge and export reports of a run, as `smolora merge` / `export` write them."""
    merged = folder / "merged"
    merged.mkdir(exist_ok=True)
    (merged / "smolora-merge.json").write_text(json.dumps({
        "path": str(merged), "base": "smollm2-135m-instruct", "adapter": str(folder / "adapter"),
        "dtype": "float32", "max_abs_logit_diff": 5.91e-05, "prompts": 3, "ok": True}))
    exports = folder / "exports" / "gguf"
    exports.mkdir(parents=True, exist_ok=True)
    check = {"agreement": 0.947 if ok else 0.31, "max_abs_logprob_diff": 1.538 if ok else 9.2,
             "mean_kl": 0.012 if ok else 2.3, "same_tokenization": ok,
             "as_stored": {"agreement": 1.0 if ok else 0.29, "mean_kl": 0.0 if ok else 2.31}}
    (exports / "smolora-export.json").write_text(json.dumps({
        "path": str(exports / "model-q8_0.gguf"), "quant": "q8_0", "bytes": 144_703_488,
        "modelfile": str(exports / "Modelfile-q8_0"), "check": check, "checks": {"transformers": check},
        "unchecked": ["llama.cpp check not run: llama-cpp-python is not installed "
                      "(pip install \"smolora-tui[llamacpp]\")"], "ok": ok}))


def demo(home: Path) -> str:
    """The demo project in a fresh home (SMOLORA_HOME must point at `home`), its data copied there.

    (The data's path shows on screen: inside the home it is the same on every checkout.)
    """
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    project = setup_demo()
    data = home / "demo-data" / "signature_chat.jsonl"
    data.parent.mkdir()
    shutil.copy(project.data.path, data)
    shutil.copy(Path(project.data.path).parent / "heldout_prompts.jsonl", data.parent)
    project.data.path = str(data)
    save_project(project)
    return project.name


def broken_project(name: str = "notes") -> None:
    path = paths.project_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('name = "notes"\n[lora]\nr = "sixteen"\nalpha = \n')


def bad_data_project(name: str = "support") -> Path:
    """A project whose JSONL has a broken line, an empty answer and a row of the wrong shape."""
    data = paths.project_data_dir(name) / "support.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"instruction": "Reset my password", "output": "Open Settings > Account > Reset."}),
            '{"instruction": "Cancel my order", "output": "Go to Orders and press Cancel."',
            json.dumps({"instruction": "Where is my parcel?", "output": ""}),
            json.dumps({"question": "Do you ship abroad?"}),
            json.dumps({"instruction": "Change my address", "output": "Settings > Addresses > Edit."})]
    data.write_text("\n".join(rows) + "\n")
    project = create_project(name, data=str(data))
    save_project(project)
    return data


def saved_chat(project: str) -> Path:
    target = paths.project_data_dir(project) / "chats" / "20261122-103026.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "demo-chat.json", target)
    return target


SECOND_RUN = "20261122-114507-7611"


def compared_runs(project: str) -> tuple[str, str]:
    """Two runs of the demo with different lora.r and learning rate: the real run, and a slower learner.

    The second is the real run's events up to step 20 with its losses raised 15 % (a picture of two
    curves apart, not a measurement), its settings changed in its run.toml.
    """
    add_run(project)
    folder = add_run(project, SECOND_RUN, until_step=20, adapter=False)
    settings = load_project(project)
    settings.lora.r, settings.lora.alpha, settings.training.learning_rate = 8, 16, 2e-4
    (folder / "run.toml").write_text(settings.to_toml())
    events = ev.read_events(folder / "events.jsonl")
    for event in events:
        if isinstance(event, ev.Step) and event.loss is not None:
            event.loss *= 1.15
        if isinstance(event, ev.Eval) and event.eval_loss is not None:
            event.eval_loss *= 1.15
    stopped = ev.Stopped(step=20, checkpoint=str(folder / "checkpoints" / "checkpoint-20"), reason="stop requested",
                         time=events[-1].time + 1)
    (folder / "events.jsonl").write_text("".join(e.to_json() + "\n" for e in [*events, stopped]))
    return RUN_ID, SECOND_RUN


def queued(project: str) -> None:
    """A queue in every state a runner leaves: done, stopped (resumable), failed, and two pending."""
    from smolora_engine.overnight.queue_file import editing

    first, second = compared_runs(project)
    base = load_project(project).to_dict()
    with editing() as queue:
        done = queue.add(project, {"lora.r": 16}, base, sweep="lora.r=16,8")
        done.status, done.run_id = "done", first
        stopped = queue.add(project, {"lora.r": 8, "training.learning_rate": 2e-4}, base, sweep="lora.r=16,8")
        stopped.status, stopped.run_id = "stopped", second
        failed = queue.add("support", {"training.max_length": 4096}, base)
        failed.status = "failed"
        failed.message = "/data/support.jsonl: no such file: the data moved after it was queued"
        queue.add(project, {"lora.r": 32, "lora.alpha": 64}, base)
        queue.add(project, {"training.learning_rate": 1e-3, "training.epochs": 2.0}, base)
        for entry, when in zip(queue.entries, range(5)):
            entry.added = 1795_000_000.0 + when  # a fixed time: the picture is the same on every run
