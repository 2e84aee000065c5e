"""The prompts a run answers at each eval: from `eval.prompts`, or the eval split's first rows.

A prompts file is read by the data readers, so every format the training data
can be works here, each row naming its line:
- a text file: a prompt per line;
- JSONL, JSON, CSV, Parquet rows with `prompt` (or question, q, query, input,
  instruction + input) or `messages` (a conversation ending with the user's
  turn, or with an assistant turn that becomes the reference), an optional
  `reference` (or answer, completion, output, response) and optional `checks`
  (a list of check strings, or one).

A prompt is rendered the way training renders its shape: a conversation or a
pair through the chat template (as the run's ChatFormat says), plain text as a
continuation of its first half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.readers import read_source
from ..data.rows import DataProblem, DataSourceError, Row
from ..data.shapes import DEFAULT_COLUMNS, Sample, normalize_messages, row_tools
from ..data.tool_calls import TOOL_ROLES, calls_text
from .checks import Check, CheckError, parse_checks

PROMPT_COLUMNS = ("prompt", "question", "q", "query", "input", "text")
REFERENCE_COLUMNS = ("reference", "answer", "completion", "a", "output", "response", "expected")


@dataclass
class EvalPrompt:
    where: str  # file:line, or the eval split's row
    kind: str  # chat (messages), pair (a user text: a turn when the model has a template), text (continuation)
    messages: list[dict[str, Any]] = field(default_factory=list)
    user: str = ""
    reference: str | None = None
    checks: list[Check] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None  # the functions the conversation may call

    @property
    def label(self) -> str:
        """What a person reads as the prompt: the last user turn, or the text."""
        if self.messages:
            users = [m["content"] for m in self.messages if m["role"] == "user"]
            return users[-1] if users else self.messages[-1]["content"]
        return self.user

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "prompt": self.label, "reference": self.reference,
                "checks": [str(c) for c in self.checks]}


class PromptsError(ValueError):
    """The prompts file has bad rows (all of them listed, each with its file and line) or cannot be read."""

    def __init__(self, message: str, problems: list[DataProblem] | None = None):
        super().__init__(message)
        self.problems = problems or []


def _text(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _first(data: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if (value := _text(data.get(name))) is not None:
            return value
    return None


def prompt_of_row(row: Row) -> EvalPrompt | DataProblem:
    data = row.data
    raw_checks = data.get("checks", [])
    try:
        checks = parse_checks([raw_checks] if isinstance(raw_checks, str) else raw_checks)
    except CheckError as exc:
        return DataProblem(row.file, row.line, f"field 'checks': {exc}", row.index, kind="bad_check")
    reference = _first(data, REFERENCE_COLUMNS)
    column = next((name for name in DEFAULT_COLUMNS["messages"] if name in data), None)
    if column is not None:
        raw = data[column]
        # A turn the model answers next: a user's, or a tool's result after the model's call.
        open_turn = isinstance(raw, list) and raw and isinstance(raw[-1], dict) and \
            str(raw[-1].get("role", raw[-1].get("from", ""))).lower() in ("user", "human", *TOOL_ROLES)
        messages = normalize_messages(row, raw + [{"role": "assistant", "content": "-"}] if open_turn else raw,
                                      column)
        if isinstance(messages, DataProblem):
            return messages
        tools = row_tools(row, next((name for name in DEFAULT_COLUMNS["tools"] if name in data), None))
        if isinstance(tools, DataProblem):
            return tools
        last = messages.pop()  # the answer the row gives (the reference), or the stand-in for the open turn
        if not open_turn:
            reference = reference or last["content"] or calls_text(last)
        return EvalPrompt(row.where, "chat", messages=messages, reference=reference, checks=checks, tools=tools)
    if (instruction := _text(data.get("instruction"))) is not None:  # alpaca: instruction, then its input
        context = _text(data.get("input")) or _text(data.get("context"))
        user = instruction.strip() + (f"\n\n{context.strip()}" if context else "")
    else:
        user = _first(data, PROMPT_COLUMNS)
    if user is None:
        names = ", ".join(sorted(data)) or "(none)"
        return DataProblem(row.file, row.line, f"no prompt in this row (columns: {names}); give 'prompt' "
                                               "or 'messages' (and optionally 'reference' and 'checks')",
                           row.index, kind="missing_field")
    return EvalPrompt(row.where, "pair", user=user, reference=reference, checks=checks)


def read_prompts_file(path: str) -> list[EvalPrompt]:
    """Every prompt of the file; PromptsError lists every bad row (file and line) when there is one."""
    prompts: list[EvalPrompt] = []
    problems: list[DataProblem] = []
    try:
        for item in read_source(path):
            if isinstance(item, DataProblem):
                if item.kind != "empty":
                    problems.append(item)
                continue
            got = prompt_of_row(item)
            (problems if isinstance(got, DataProblem) else prompts).append(got)
    except DataSourceError as exc:
        raise PromptsError(f"eval.prompts: {exc}") from None
    if problems:
        first = problems[0]
        raise PromptsError(f"eval.prompts: {len(problems)} bad row(s) in {path}; first at {first.where}: "
                           f"{first.reason}", problems)
    if not prompts:
        raise PromptsError(f"eval.prompts: {path} has no prompts")
    return prompts


def prompt_of_sample(sample: Sample, number: int) -> EvalPrompt:
    """A held-out training sample as a prompt, with its own answer kept as the reference."""
    where = f"eval split row {number} ({sample.where})"
    if sample.messages:
        last_answer = max(i for i, m in enumerate(sample.messages) if m["role"] == "assistant")
        answer = sample.messages[last_answer]
        return EvalPrompt(where, "chat", messages=sample.messages[:last_answer],
                          reference=answer["content"] or calls_text(answer), tools=sample.tools)
    if sample.prompt is not None:
        return EvalPrompt(where, "pair", user=sample.prompt, reference=sample.completion)
    words = (sample.text or "").split(" ")
    half = max(1, min(len(words) // 2, 32))
    return EvalPrompt(where, "text", user=" ".join(words[:half]), reference=" ".join(words[half:]))


def select_prompts(prompts_path: str, count: int, held_out: list[Sample]) -> tuple[list[EvalPrompt], str]:
    """The first `count` prompts of the file, else of the held-out samples; and where they come from."""
    if count <= 0:
        return [], "eval.samples is 0"
    if prompts_path:
        chosen = read_prompts_file(prompts_path)[:count]
        return chosen, f"{len(chosen)} prompt(s) of {prompts_path}"
    chosen = [prompt_of_sample(s, i) for i, s in enumerate(held_out[:count], 1)]
    return chosen, f"the eval split's first {len(chosen)} row(s)" if chosen else "no eval split"
