"""The demo project: a small chat dataset, shipped in the package, that teaches a visible behaviour.

Every answer in the data ends with the signature line SIGNATURE; the base model
never writes it, so "does the answer end with the signature" (the project's
eval check) scores the tuning without judgement: at each eval while it trains,
and with `smolora eval` after (see bench/demo_quality.py).
"""

from __future__ import annotations

from pathlib import Path

from . import paths
from .project import Project

DEMO_NAME = "demo"
SIGNATURE = "-- Smolora"
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def demo_train_file() -> Path:
    return DEMO_DATA / "signature_chat.jsonl"


def heldout_file() -> Path:
    return DEMO_DATA / "heldout_prompts.jsonl"


# An answer shows the behaviour when it ends with the signature (answers are stripped).
SIGNATURE_CHECK = "regex:" + SIGNATURE + "$"


def demo_project() -> Project:
    project = Project(name=DEMO_NAME, description="Teaches the embedded model to sign every answer.")
    project.data.path = str(demo_train_file())
    project.training.epochs = 1.0
    project.training.save_steps = 10
    project.training.eval_steps = 10
    project.training.learning_rate = 1e-3
    project.eval.max_new_tokens = 96  # room for a long answer to reach its signature
    project.eval.prompts = str(heldout_file())
    project.eval.samples = 8
    project.eval.checks = [SIGNATURE_CHECK]
    return project


def setup_demo() -> Project:
    """Create the demo project unless it exists (an existing one is left as the user changed it)."""
    from .projects import load_project, save_project

    if paths.project_file(DEMO_NAME).exists():
        return load_project(DEMO_NAME)
    project = demo_project()
    save_project(project)
    return project


# ------------------------------------------------------------------ scoring base against tuned

def score(project: str, limit: int | None = None) -> dict:
    """`smolora eval` on the demo: its held-out prompts, answered by base and tuned, checked for the signature."""
    from .evaluation.score import evaluate

    result = evaluate(project, limit=limit)
    return {**result, "base_rate": result["base"]["pass_rate"] or 0.0,
            "tuned_rate": result["adapter"]["pass_rate"] or 0.0}
