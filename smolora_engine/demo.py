"""The demo project: a small chat dataset, shipped in the package, that teaches a visible behaviour.

Every answer in the data ends with the signature line SIGNATURE; the base model
never writes it, so "does the answer end with the signature" scores the tuning
without judgement (see bench/demo_quality.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import paths
from .project import Project

DEMO_NAME = "demo"
SIGNATURE = "-- Smolora"
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def demo_train_file() -> Path:
    return DEMO_DATA / "signature_chat.jsonl"


def heldout_prompts() -> list[str]:
    with open(DEMO_DATA / "heldout_prompts.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["prompt"] for line in handle if line.strip()]


def shows_behaviour(answer: str) -> bool:
    return answer.strip().endswith(SIGNATURE)


def demo_project() -> Project:
    project = Project(name=DEMO_NAME, description="Teaches the embedded model to sign every answer.")
    project.data.path = str(demo_train_file())
    project.training.epochs = 1.0
    project.training.save_steps = 10
    project.training.eval_steps = 10
    return project


def setup_demo() -> Project:
    """Create the demo project unless it exists (an existing one is left as the user changed it)."""
    from .projects import load_project, save_project

    if paths.project_file(DEMO_NAME).exists():
        return load_project(DEMO_NAME)
    project = demo_project()
    save_project(project)
    return project
