"""Greedy answers to eval prompts: batched (left-padded), bounded in time, rendered as training rendered.

A conversation or a pair goes through the run's ChatFormat (its system message and
template options), so what is scored is what the model was taught to answer; a
plain-text prompt is continued as raw text. When the time limit runs out, the
answers so far are kept and the rest are empty, and `cut_short` says so.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from ..data.chat_format import ChatFormat
from .checks import Check, apply_checks
from .prompts import EvalPrompt


@dataclass
class Answers:
    texts: list[str]
    seconds: float
    cut_short: bool  # the time limit ended generation early
    cached: bool = False  # the base model's answers of an earlier run (answer_cache.py), not generated now


def prompt_ids(prompt: EvalPrompt, tokenizer, fmt: ChatFormat) -> list[int]:
    if prompt.kind == "chat" or (prompt.kind == "pair" and fmt.pairs_as_chat(tokenizer)):
        messages = prompt.messages or [{"role": "user", "content": prompt.user}]
        return tokenizer(fmt.prompt(tokenizer, messages, prompt.tools), add_special_tokens=False)["input_ids"]
    return tokenizer(prompt.user)["input_ids"]


def generate_answers(model, tokenizer, prompts: list[EvalPrompt], fmt: ChatFormat, max_new_tokens: int = 64,
                     time_limit_s: float | None = None, batch_size: int = 16, base: bool = False) -> Answers:
    """Greedy answers, `batch_size` prompts at a time; the model is put in eval mode and back. `base`: the
    model answers as the base model (a plain model, or its adapter disabled), whose answers are kept
    between runs (answer_cache.py)."""
    started = time.monotonic()
    from ..export.families import stop_token_ids
    from .answer_cache import answers_key, cached_answers, keep_answers

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(model, tokenizer) or None
    encoded = [prompt_ids(p, tokenizer, fmt) for p in prompts]
    key = answers_key(model, encoded, {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "pad": pad,
                                       "stops": stops}) if base else None
    if key is not None and (texts := cached_answers(key, len(prompts))) is not None:
        return Answers(texts, time.monotonic() - started, False, cached=True)
    answers = _generate(model, tokenizer, encoded, max_new_tokens, time_limit_s, batch_size, pad, stops, started)
    if key is not None and not answers.cut_short:
        keep_answers(key, answers.texts, answers.seconds)
    return answers


def _generate(model, tokenizer, encoded: list[list[int]], max_new_tokens: int, time_limit_s: float | None,
              batch_size: int, pad: int, stops, started: float) -> Answers:
    import torch

    deadline = started + time_limit_s if time_limit_s else None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts: list[str] = []
    cut = False
    try:
        for start in range(0, len(encoded), batch_size):
            left = deadline - time.monotonic() if deadline else None
            if left is not None and left <= 0:
                cut = True
                texts += [""] * (len(encoded) - start)
                break
            batch = encoded[start:start + batch_size]
            width = max(len(ids) for ids in batch)
            ids = torch.tensor([[pad] * (width - len(row)) + row for row in batch], device=device)
            mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in batch], device=device)
            extra = {"max_time": left} if left is not None else {}
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, temperature=None, top_p=None, top_k=None,
                                     pad_token_id=pad, use_cache=True, eos_token_id=stops, **extra)
            texts += [t.strip() for t in tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]
            if deadline and time.monotonic() >= deadline:
                cut = cut or start + batch_size < len(encoded) or out.shape[1] - width >= max_new_tokens
    finally:
        if was_training:
            model.train()
    return Answers(texts, time.monotonic() - started, cut)


def base_model(model):
    """A context in which a PEFT model answers as its base (adapter off); nothing for a plain model."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


@dataclass
class Scored:
    """The answers to the prompts, each prompt's verdicts, and the pass rate over prompts that have checks."""

    rows: list[dict]
    pass_rate: float | None  # None: no prompt has a check
    checked: int


def score_answers(prompts: list[EvalPrompt], answers: list[str], checks: list[Check]) -> Scored:
    rows, passed, checked = [], 0, 0
    for prompt, answer in zip(prompts, answers):
        verdicts = apply_checks([*checks, *prompt.checks], answer)
        ok = all(v.passed for v in verdicts) if verdicts else None
        if ok is not None:
            checked += 1
            passed += ok
        rows.append({"prompt": prompt.label, "where": prompt.where, "reference": prompt.reference,
                     "answer": answer, "checks": [{"check": v.check, "passed": v.passed} for v in verdicts],
                     "passed": ok})
    return Scored(rows, passed / checked if checked else None, checked)
