"""What the model answers while it trains, and when to stop: eval samples and early stopping.

The worker answers the eval prompts (see evaluation/) with the base model before
step 1 and with the current adapter at each eval, and emits a `samples` event
each time. Early stopping follows eval loss, or the pass rate of the checks when
there are any (training.early_stopping_metric); the same metric picks the best
checkpoint, which is always saved and kept, and which training.keep_best writes
as the adapter.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from .. import events as ev
from ..data.chat_format import ChatFormat
from ..evaluation.answers import base_model, generate_answers, score_answers
from ..evaluation.checks import Check, parse_checks
from ..evaluation.prompts import EvalPrompt, PromptsError, select_prompts
from ..project import Project
from .emitter import Emitter


class EvalSampler:
    """The run's eval prompts, answered on demand; keeps the time it spends."""

    def __init__(self, project: Project, tokenizer, prompts: list[EvalPrompt], checks: list[Check]):
        self.settings = project.eval
        self.tokenizer = tokenizer
        self.format = ChatFormat.of(project.data)
        self.prompts = prompts
        self.checks = checks
        self.seconds = 0.0

    @property
    def has_checks(self) -> bool:
        return bool(self.checks) or any(p.checks for p in self.prompts)

    @classmethod
    def for_run(cls, project: Project, tokenizer, held_out: list, emit: Emitter) -> EvalSampler | None:
        """The sampler, or None (with the reason said) when there is nothing to answer."""
        try:
            prompts, source = select_prompts(project.eval.prompts, project.eval.samples,
                                             [r.sample for r in held_out if r.sample is not None])
        except PromptsError as exc:
            shown = "; ".join(str(p) for p in exc.problems[:5])
            more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
            emit(ev.Warning(message=f"{exc}{': ' + shown + more if shown else ''}; training goes on without "
                                    "eval samples (fix the file, or empty eval.prompts to use the eval split)"))
            return None
        if not prompts:
            emit(ev.Log(message=f"eval samples: none ({source})"))
            return None
        checks = parse_checks(project.eval.checks)  # validated with the project
        emit(ev.Log(message=f"eval samples: {source}, answered at each eval (up to "
                            f"{project.eval.max_new_tokens} tokens, {project.eval.time_limit_s:g} s at most)"))
        return cls(project, tokenizer, prompts, checks)

    def answer(self, model, step: int, base: bool = False) -> ev.Samples:
        with base_model(model) if base else contextlib.nullcontext():
            answers = generate_answers(model, self.tokenizer, self.prompts, self.format,
                                       self.settings.max_new_tokens, self.settings.time_limit_s, base=base)
        self.seconds += answers.seconds
        scored = score_answers(self.prompts, answers.texts, self.checks)
        return ev.Samples(step=step, base=base, answers=scored.rows, pass_rate=scored.pass_rate,
                          checked=scored.checked, seconds=round(answers.seconds, 3), cut_short=answers.cut_short,
                          cached=answers.cached)


@dataclass
class BestTracker:
    """The run's metric: the best value and its step, and evals since it improved (early stopping)."""

    metric: str  # eval_loss (lower is better) or pass_rate (higher)
    patience: int = 0  # 0: never stop early
    best: float | None = None
    best_step: int | None = None
    since_best: int = 0
    best_tiebreak: float | None = None  # the best step's eval loss, for a pass rate equal to the best

    def update(self, step: int, value: float | None, tiebreak: float | None = None) -> bool:
        """Record one eval's value; True when this step becomes the best checkpoint.

        `tiebreak` (the eval loss, lower is better) picks between equal pass rates; it moves the
        best checkpoint but is not progress, so a flat pass rate still stops early.
        """
        if value is None or not math.isfinite(value):
            self.since_best += 1
            return False
        better = self.best is None or (value < self.best if self.metric == "eval_loss" else value > self.best)
        tie = (not better and value == self.best and tiebreak is not None and self.best_tiebreak is not None
               and tiebreak < self.best_tiebreak)
        self.since_best = 0 if better else self.since_best + 1
        if better or tie:
            self.best, self.best_step, self.best_tiebreak = value, step, tiebreak
        return better or tie

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def reason(self) -> str:
        shown = f"{self.best:.4f}" if self.metric == "eval_loss" else f"{self.best:.0%}"
        return (f"early stopping: {self.metric} did not improve for {self.patience} eval(s); "
                f"best {shown} at step {self.best_step}")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "best": self.best, "best_step": self.best_step,
                "since_best": self.since_best, "best_tiebreak": self.best_tiebreak}


def choose_metric(project: Project, sampler: EvalSampler | None, has_eval: bool, emit: Emitter) -> str | None:
    """The metric that picks the best checkpoint and stops early; None when the run has neither."""
    wanted = project.training.early_stopping_metric
    if wanted == "auto":
        wanted = "pass_rate" if sampler is not None and sampler.has_checks else "eval_loss"
    patience = project.training.early_stopping_patience
    if wanted == "pass_rate" and (sampler is None or not sampler.has_checks):
        if patience or project.training.early_stopping_metric == "pass_rate":
            emit(ev.Warning(message="training.early_stopping_metric is pass_rate, but no eval prompt has a check "
                                    "(eval.checks, or checks in the prompts file): early stopping is off"))
        return None
    if wanted == "eval_loss" and not has_eval:
        if patience:
            emit(ev.Warning(message="early stopping on eval_loss needs an eval split (data.eval_ratio > 0 or "
                                    "data.eval_path): early stopping is off"))
        return None
    return wanted
