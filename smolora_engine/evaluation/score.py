"""`smolora eval`: the base model and the tuned one (adapter, checkpoint or merged) on the eval prompts.

The prompts and checks are the project's `[eval]` settings as they are now (so a
check added after training scores an old run); the rendering is the run's own
(its frozen ChatFormat). Every prompt of `eval.prompts` is answered, or the eval
split's first `eval.samples` rows; `limit` changes either count.
"""

from __future__ import annotations

from typing import Callable

from .answers import base_model, generate_answers, score_answers
from .checks import parse_checks
from .prompts import EvalPrompt, prompt_of_sample, read_prompts_file


def project_prompts(project, tokenizer, limit: int | None = None) -> tuple[list[EvalPrompt], str]:
    """The prompts `smolora eval` answers, and where they come from."""
    if project.eval.prompts:
        prompts = read_prompts_file(project.eval.prompts)
        chosen = prompts[:limit] if limit else prompts
        return chosen, f"{len(chosen)} of the {len(prompts)} prompt(s) of {project.eval.prompts}"
    from ..data import prepare

    held = prepare(project.data, tokenizer, project.training.max_length, seed=project.data.split_seed).eval
    count = limit or project.eval.samples
    chosen = [prompt_of_sample(r.sample, i) for i, r in enumerate(held[:count], 1) if r.sample is not None]
    if not chosen:
        raise ValueError(f"project {project.name!r} has no eval prompts: set eval.prompts to a file of prompts, "
                         "or give the data an eval split (data.eval_ratio or data.eval_path)")
    return chosen, f"the eval split's first {len(chosen)} row(s)"


def evaluate(project_name: str, run_id: str | None = None, checkpoint: int | None = None, merged: bool = False,
             limit: int | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Answers and pass rates of base and tuned; `tuned` names what was scored (adapter, checkpoint, merged)."""
    from ..projects import load_project
    from ..runs import NoAdapter
    from ..serve import Engine

    say = progress or (lambda _message: None)
    project = load_project(project_name)
    checks = parse_checks(project.eval.checks)
    engine = Engine(project_name, run_id, checkpoint, progress=say)
    if engine.adapter_path is None:
        raise NoAdapter(f"project {project_name!r} has no finished run to score; train it first "
                        f"(`smolora train --project {project_name}`)")
    if merged and engine.merged_path is None:
        raise NoAdapter(f"run {engine.run_id} has no merged model{f' of checkpoint {checkpoint}' if checkpoint else ''}"
                        f"; run `smolora merge --project {project_name} --run {engine.run_id}` first")
    prompts, source = project_prompts(project, engine.tokenizer, limit)
    tokens = project.eval.max_new_tokens
    say(f"answering {source} with the base model")
    with base_model(engine.model):
        base = generate_answers(engine.model, engine.tokenizer, prompts, engine.format, tokens, base=True)
    if base.cached:
        say("the base model's answers: kept from an earlier answer to the same prompts (same model and settings)")
    tuned_name = "merged" if merged else f"checkpoint-{checkpoint}" if checkpoint is not None else "adapter"
    say(f"answering them with the {tuned_name}")
    tuned = generate_answers(engine._model_for("merged") if merged else engine.model, engine.tokenizer, prompts,
                             engine.format, tokens)
    out = {"project": project_name, "run_id": engine.run_id, "tuned": tuned_name, "source": source,
           "checks": [str(c) for c in checks], "prompts": [p.to_dict() for p in prompts]}
    for key, answers in (("base", base), ("adapter", tuned)):
        scored = score_answers(prompts, answers.texts, checks)
        out[key] = {"pass_rate": scored.pass_rate, "checked": scored.checked,
                    "passed": sum(1 for r in scored.rows if r["passed"]), "seconds": round(answers.seconds, 2),
                    "cached": answers.cached, "answers": scored.rows}
    return out


def rate_text(side: dict) -> str:
    if side["pass_rate"] is None:
        return "no checks (set eval.checks, or give prompts their own)"
    return f"{side['pass_rate']:.0%} ({side['passed']}/{side['checked']})"


def print_report(result: dict, width: int = 100) -> None:
    """The table `smolora eval` prints: each prompt with both answers and their verdicts, then the rates."""
    def line(text: str, room: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= room else text[:room - 1] + "…"

    print(f"run {result['run_id']}: base and {result['tuned']} on {result['source']}"
          + (f"; checks on every answer: {', '.join(result['checks'])}" if result["checks"] else ""))
    for number, (base, tuned) in enumerate(zip(result["base"]["answers"], result["adapter"]["answers"]), 1):
        print(f"{number:>3}  {line(base['prompt'], width - 5)}")
        for name, row in (("base", base), (result["tuned"], tuned)):
            mark = {True: "pass", False: "FAIL", None: "    "}[row["passed"]]
            failed = [c["check"] for c in row["checks"] if not c["passed"]]
            note = f"  [failed: {', '.join(failed)}]" if failed else ""
            label = f"     {name:<14.14} {mark} "
            print(label + line(row["answer"] or "(empty)", max(20, width - len(label) - len(note))) + note)
    kept = " (answers kept from an earlier answer to the same prompts)" if result["base"].get("cached") else ""
    print(f"base:    {rate_text(result['base'])}{kept}")
    print(f"{result['tuned'] + ':':<8} {rate_text(result['adapter'])}")
