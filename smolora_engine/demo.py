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


# ------------------------------------------------------------------ scoring base against tuned

def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 16) -> list[str]:
    """Greedy answers to each prompt (chat template, left-padded batches: many prompts at once on a CPU)."""
    import torch

    answers: list[str] = []
    pad_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True)
                     for p in prompts[start:start + batch_size]]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = pad_side
    return answers


def score(project: str, prompts: list[str] | None = None, max_new_tokens: int = 64) -> dict:
    """The fraction of held-out prompts whose answer shows the behaviour, for the base and the tuned model."""
    from .serve import Engine

    prompts = heldout_prompts() if prompts is None else prompts
    engine = Engine(project)
    if engine.adapter_path is None:
        raise ValueError(f"project {project!r} has no finished run to score; train it first")
    with engine.model.disable_adapter():
        base = generate_answers(engine.model, engine.tokenizer, prompts, max_new_tokens)
    tuned = generate_answers(engine.model, engine.tokenizer, prompts, max_new_tokens)
    return {
        "prompts": prompts, "base_answers": base, "tuned_answers": tuned,
        "base": sum(map(shows_behaviour, base)) / len(prompts),
        "tuned": sum(map(shows_behaviour, tuned)) / len(prompts),
        "run_id": engine.run_id,
    }
