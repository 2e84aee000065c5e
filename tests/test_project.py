"""Projects: round trip, every validation message, unknown keys, corrupt files, atomic writes."""

from __future__ import annotations

import os

import pytest

from smolora_engine import paths
from smolora_engine.fsutil import atomic_write_text
from smolora_engine.project import Project, ProjectError
from smolora_engine.project_load import project_from_dict
from smolora_engine.project_fields import field_docs, parse_assignment, set_value
from smolora_engine.projects import (
    create_project, delete_project, duplicate_project, list_projects, load_project, read_project,
    rename_project, save_project,
)


def test_round_trip_keeps_every_setting():
    project = Project(name="alpha", description="a test")
    project.model.base = "/models/tiny"
    project.lora.r = 32
    project.lora.target_modules = ["q_proj", "v_proj"]
    project.training.learning_rate = 1e-4
    project.data.columns = {"text": "body"}
    save_project(project)
    loaded = load_project("alpha")
    assert loaded == project
    assert paths.project_file("alpha").read_text().startswith("schema_version = 1")


def test_defaults_are_valid_and_documented():
    project, problems = project_from_dict({}, "x")
    assert problems == []
    docs = field_docs()
    assert len(docs) > 30
    assert all(doc for _key, _kind, _default, doc in docs)


@pytest.mark.parametrize("key, value, message", [
    ("lora.r", 0, "lora.r must be a positive integer, got 0"),
    ("lora.r", 2.5, "lora.r must be an integer, got 2.5"),
    ("lora.r", True, "lora.r must be an integer, got True"),
    ("lora.alpha", -1, "lora.alpha must be a positive number, got -1.0"),
    ("lora.dropout", 1.0, "lora.dropout must be a number from 0 up to (not including) 1, got 1.0"),
    ("lora.target_modules", [], "lora.target_modules must be a non-empty list of strings, got []"),
    ("lora.target_modules", "q_proj", "lora.target_modules must be a list of strings, got 'q_proj'"),
    ("lora.use_dora", "yes", "lora.use_dora must be true or false, got 'yes'"),
    ("model.device", "tpu", "model.device must be one of 'auto', 'cuda', 'mps', 'cpu', got 'tpu'"),
    ("model.dtype", "int8", "model.dtype must be one of 'auto', 'float32', 'bfloat16', 'float16', got 'int8'"),
    ("model.base", 3, "model.base must be a string, got 3"),
    ("training.learning_rate", 0, "training.learning_rate must be a positive number, got 0.0"),
    ("training.epochs", float("nan"), "training.epochs must be a positive number, got nan"),
    ("training.batch_size", 0, "training.batch_size must be a positive integer, got 0"),
    ("training.grad_accum", -2, "training.grad_accum must be a positive integer, got -2"),
    ("training.max_steps", -1, "training.max_steps must be an integer >= 0, got -1"),
    ("training.scheduler", "step", "training.scheduler must be one of 'cosine', 'linear', 'constant', "
                                   "'constant_with_warmup', got 'step'"),
    ("training.warmup_ratio", 1.5, "training.warmup_ratio must be a number from 0 up to (not including) 1, got 1.5"),
    ("training.launcher", "mpi", "training.launcher must be one of 'none', 'torchrun', 'accelerate', got 'mpi'"),
    ("data.eval_ratio", -0.1, "data.eval_ratio must be a number from 0 up to (not including) 1, got -0.1"),
    ("data.shape", "qa", "data.shape must be one of 'auto', 'text', 'instruction', 'prompt_completion', "
                         "'chat', got 'qa'"),
    ("data.columns", {"text": 1}, "data.columns must be a table of column names (strings), got {'text': 1}"),
    ("data.columns", {"text": [1]}, "data.columns must be a table, got {'text': [1]}"),
    ("data.chunk_size", -5, "data.chunk_size must be an integer >= 0, got -5"),
    ("output.export_quant", "q3_k_s", "output.export_quant must be one of 'q4_k_m', 'q5_k_m', 'q6_k', 'q8_0', 'f16', "
                                      "'q4_0', 'q4_1', 'q5_0', 'q5_1', got 'q3_k_s'"),
])
def test_each_validation_message(key, value, message):
    project, problems = set_value(Project(name="p"), key, value)
    assert [p.message for p in problems] == [message]
    assert problems[0].field == key


def test_all_problems_reported_at_once():
    raw = {"lora": {"r": 0, "alpha": 0}, "training": {"batch_size": "big"}, "model": {"device": "tpu"}}
    _project, problems = project_from_dict(raw, "p")
    assert {p.field for p in problems} == {"lora.r", "lora.alpha", "training.batch_size", "model.device"}


def test_cross_field_check():
    raw = {"training": {"logging_steps": 100, "save_steps": 10}}
    _project, problems = project_from_dict(raw, "p")
    assert [p.message for p in problems] == [
        "training.logging_steps must be at most training.save_steps (10), got 100"]


def test_unknown_keys_are_reported_and_kept_on_save(tmp_path):
    paths.projects_dir().mkdir(parents=True)
    paths.project_file("u").write_text(
        'name = "u"\nflavour = "mint"\n[lora]\nrank = 8\n[training]\nlearning_rate = 0.001\n')
    entry = read_project("u")
    messages = [p.message for p in entry.problems]
    assert "unknown key lora.rank (did you mean lora.r?); it is kept in the file but not used" in messages
    assert any(m.startswith("unknown key flavour") for m in messages)
    project = load_project("u")  # unknown keys do not block use
    assert project.training.learning_rate == 0.001
    save_project(project)
    text = paths.project_file("u").read_text()
    assert "rank = 8" in text and 'flavour = "mint"' in text


def test_corrupt_toml_is_reported_with_line_and_left_untouched():
    paths.projects_dir().mkdir(parents=True)
    bad = paths.project_file("broken")
    content = 'name = "broken"\n[lora]\nr = = 3\n'
    bad.write_text(content)
    create_project("fine")
    entries = {e.name: e for e in list_projects()}
    assert entries["fine"].usable
    assert not entries["broken"].usable
    assert str(bad) in entries["broken"].error and "line 3" in entries["broken"].error
    with pytest.raises(ProjectError, match="line 3"):
        load_project("broken")
    with pytest.raises(ProjectError, match="left as it is"):
        save_project(Project(name="broken"))
    assert bad.read_text() == content


def test_save_refuses_invalid_settings():
    project = Project(name="p")
    project.lora.r = -1
    with pytest.raises(ProjectError) as info:
        save_project(project)
    assert info.value.problems[0].message == "lora.r must be a positive integer, got -1"
    assert not paths.project_file("p").exists()


def test_interrupted_write_leaves_old_file_intact(monkeypatch):
    target = paths.project_file("p")
    save_project(Project(name="p"))
    before = target.read_bytes()

    def crash(_fd):  # the data is written, the power goes before it is durable and renamed
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    project = Project(name="p")
    project.lora.r = 64
    with pytest.raises(OSError):
        save_project(project)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["p.toml"]  # no temp file left behind


def test_killed_writer_leaves_old_file_intact(tmp_path):
    """A process killed in the middle of an atomic write never leaves a half-written file."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "state.toml"
    atomic_write_text(target, "old = 1\n")
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import smolora_engine.fsutil as f\n"
        "real = os.replace\n"
        "def slow(a, b):\n"
        "    print('written', flush=True); sys.stdin.read()\n"
        "os.replace = slow\n"
        f"f.atomic_write_text(Path({str(target)!r}), 'new = 2\\n' * 100000)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "old = 1\n"


def test_parse_assignment_values():
    assert parse_assignment("lora.r=32") == ("lora.r", 32)
    assert parse_assignment("training.learning_rate = 1e-4") == ("training.learning_rate", 1e-4)
    assert parse_assignment("lora.use_dora=true") == ("lora.use_dora", True)
    assert parse_assignment('lora.target_modules=["q_proj"]') == ("lora.target_modules", ["q_proj"])
    assert parse_assignment("model.base=/some/path") == ("model.base", "/some/path")
    with pytest.raises(ValueError):
        parse_assignment("no-equals")


def test_create_rename_duplicate_delete():
    create_project("one", data=".")
    with pytest.raises(ProjectError, match="already exists"):
        create_project("one")
    with pytest.raises(ProjectError, match="not allowed"):
        create_project("../evil")
    run_dir = paths.runs_dir("one") / "r1"
    run_dir.mkdir(parents=True)
    rename_project("one", "two")
    assert not paths.project_file("one").exists()
    assert (paths.runs_dir("two") / "r1").is_dir()
    assert load_project("two").name == "two"
    duplicate_project("two", "three")
    assert load_project("three").data.path == load_project("two").data.path
    delete_project("two")
    assert not paths.project_data_dir("two").exists()
    assert [e.name for e in list_projects()] == ["three"]


def test_newer_schema_version_is_reported():
    _project, problems = project_from_dict({"schema_version": 99}, "p")
    assert "newer than this smolora understands" in problems[0].message
