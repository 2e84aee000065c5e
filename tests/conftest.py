"""Every test runs with SMOLORA_HOME in a temporary folder and no model hub.

The embedded model is converted once per test session into a shared cache that
every test's home links to, so only one test pays the ~20 s conversion.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def shared_machine(tmp_path_factory) -> Path:
    """This machine's measured facts (the precision probe): measured by the first test that needs them."""
    return tmp_path_factory.mktemp("machine")


@pytest.fixture(autouse=True)
def smolora_home(tmp_path, monkeypatch, shared_models, shared_machine) -> Path:
    home = tmp_path / "smolora-home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "models").symlink_to(shared_models, target_is_directory=True)
    (home / "cache" / "machine").symlink_to(shared_machine, target_is_directory=True)
    monkeypatch.setenv("SMOLORA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded_model(shared_models, tmp_path_factory) -> dict:
    """Convert the embedded model once for the whole session; returns where and how long."""
    from smolora_engine.models import DEFAULT_MODEL, ensure_model

    home = tmp_path_factory.mktemp("embedded-home")
    (home / "cache").mkdir()
    (home / "cache" / "models").symlink_to(shared_models, target_is_directory=True)
    old = os.environ.get("SMOLORA_HOME")
    os.environ["SMOLORA_HOME"] = str(home)
    try:
        started = time.monotonic()
        folder = ensure_model(DEFAULT_MODEL)
        seconds = time.monotonic() - started
    finally:
        if old is None:
            os.environ.pop("SMOLORA_HOME", None)
        else:
            os.environ["SMOLORA_HOME"] = old
    return {"path": folder, "first_s": seconds}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama model folder with the embedded model's tokenizer (for fast unit tests)."""
    from tests.helpers import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def load_family_model(tmp_path_factory):
    """A tiny random model of a family (tests/family_models.py), loaded in float32: a fresh copy each call."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.family_models import make_family_model

    folders: dict[str, Path] = {}

    def load(family: str):
        if family not in folders:
            folders[family] = make_family_model(tmp_path_factory.mktemp(family), family)
        return AutoModelForCausalLM.from_pretrained(folders[family], dtype=torch.float32)

    return load


@pytest.fixture(scope="session")
def bpe_model(tmp_path_factory) -> Path:
    """A tiny random llama with a byte-level BPE tokenizer trained here (exportable to GGUF)."""
    from tests.helpers import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-bpe"), bpe=True)


@pytest.fixture
def trained(bpe_model) -> str:
    """A project whose one run finished (4 steps on the demo data) with a non-trivial adapter."""
    from smolora_engine.cli import main
    from smolora_engine.demo import demo_train_file
    from smolora_engine.projects import create_project, save_project
    from smolora_engine.runs import list_runs

    project = create_project("art", model=str(bpe_model), data=str(demo_train_file()))
    project.training.grad_accum = 1
    project.training.eval_steps = 0
    project.training.max_steps = 4
    project.training.learning_rate = 5e-2  # large, so the adapter visibly changes the logits
    project.training.max_length = 128
    save_project(project)
    assert main(["train", "--project", "art"]) == 0
    (run,) = list_runs("art")
    assert run.status == "finished"
    return "art"


def run_python(code: str, env: dict | None = None, timeout: float = 120) -> str:
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout
