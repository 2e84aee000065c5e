"""Shapes: what a row means, detected from its columns, and each row turned into a `Sample`.

- text: {"text": ...}
- instruction (alpaca): {"instruction", "input"?, "output", "system"?}
- prompt_completion: {"prompt", "completion"}
- chat: OpenAI {"messages": [{"role", "content"}]} or ShareGPT {"conversations": [{"from", "value"}]},
  with tool calls and results and a row's "tools" where the data has them (tool_calls.py)

Instruction rows become chat messages (so the model's chat template renders them);
prompt/completion rows go through the template as a user and an assistant turn too
when the model has one (data.pair_format), with the loss on the completion. A project's
`data.columns` maps roles to other column names, e.g. {text = "body"}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .rows import DataProblem, Row, where
from .tool_calls import (KEPT_TOOL_FIELDS, SHAREGPT_CALL, TOOL_ROLES, ToolDataError, normalize_tools, parse_calls,
                         result_text)

SHAPES = ("text", "instruction", "prompt_completion", "chat")

# Default column names for each role, tried in order.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversations", "conversation"),
    "instruction": ("instruction",),
    "input": ("input", "context"),
    "output": ("output", "response"),
    "system": ("system",),
    # the pairs people name their columns: prompt/completion, question/answer, q/a, input/output,
    # instruction/response (an instruction shape), prompt/response, query/answer
    "prompt": ("prompt", "question", "q", "query", "input"),
    "completion": ("completion", "answer", "a", "response", "output", "chosen"),
    "text": ("text", "content", "body", "document"),
    "tools": ("tools", "functions"),  # a chat row's function schemas, for the template to show
}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "bot": "assistant", "chatgpt": "assistant", "system": "system"}


@dataclass
class Sample:
    """One training example in a normal form, with where it came from."""

    file: str
    line: int | None = None
    index: int | None = None
    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # role and content; an assistant's tool_calls
    tools: list[dict[str, Any]] | None = None  # the functions a conversation may call (tool_calls.py)

    @property
    def where(self) -> str:
        return where(self.file, self.line, self.index)

    @property
    def shape(self) -> str:
        if self.messages:
            return "chat"
        if self.prompt is not None:
            return "prompt_completion"
        return "text"

    def key(self) -> str:
        """Identity for de-duplication."""
        if self.messages:
            turns = "\x1e".join(f"{m['role']}\x1f{m['content']}" + (f"\x1f{json.dumps(m['tool_calls'], sort_keys=True)}"
                                                                  if m.get("tool_calls") else "")
                                for m in self.messages)
            return turns + (f"\x1d{json.dumps(self.tools, sort_keys=True)}" if self.tools else "")
        if self.prompt is not None:
            return f"{self.prompt}\x1e{self.completion}"
        return self.text or ""


def resolve_columns(keys: set[str], mapping: dict[str, str]) -> dict[str, str]:
    """Role -> column name, from the project's mapping first, then the default names present."""
    out = dict(mapping)
    for role, names in DEFAULT_COLUMNS.items():
        if role not in out:
            found = next((n for n in names if n in keys), None)
            if found:
                out[role] = found
    return out


def detect_shape(rows: list[dict[str, Any]], mapping: dict[str, str] | None = None) -> str | None:
    """The shape most rows have (None when no known columns are found)."""
    mapping = mapping or {}
    votes: dict[str, int] = {}
    for data in rows:
        cols = resolve_columns(set(data), mapping)
        if "messages" in cols and cols["messages"] in data:
            shape = "chat"
        elif "instruction" in cols and "output" in cols:
            shape = "instruction"
        elif "prompt" in cols and "completion" in cols:
            shape = "prompt_completion"
        elif "text" in cols:
            shape = "text"
        else:
            continue
        votes[shape] = votes.get(shape, 0) + 1
    return max(votes, key=votes.get) if votes else None


def describe_columns(keys: set[str]) -> str:
    return ", ".join(sorted(keys)) or "(none)"


def _problem(row: Row, reason: str, kind: str) -> DataProblem:
    return DataProblem(row.file, row.line, reason, row.index, kind=kind)


def _text_field(row: Row, column: str | None, role: str, required: bool = True) -> str | DataProblem | None:
    if column is None or column not in row.data or row.data[column] is None:
        if not required:
            return None
        if column is not None and column in row.data:  # a null in a table or JSON
            return _problem(row, f"field '{column}' is null", "empty_field")
        name = column or DEFAULT_COLUMNS[role][0]
        return _problem(row, f"missing field '{name}' (columns: {describe_columns(set(row.data))}); "
                             f"map another column with data.columns.{role}", "missing_field")
    value = row.data[column]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return _problem(row, f"field '{column}' must be text, got {type(value).__name__}", "wrong_type")
    if required and not value.strip():
        return _problem(row, f"field '{column}' is empty", "empty_field")
    return value


def _content_text(content: Any) -> str | None:
    """Message content as text: a string, or OpenAI's list of parts with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "".join(parts)
    return None


def normalize_messages(row: Row, raw: Any, column: str) -> list[dict[str, Any]] | DataProblem:
    if not isinstance(raw, list):
        return _problem(row, f"field '{column}' must be a list of messages, got {type(raw).__name__}", "wrong_type")
    if not raw:
        return _problem(row, f"field '{column}' is an empty list", "empty_field")
    messages = []
    for i, message in enumerate(raw, start=1):
        if not isinstance(message, dict):
            return _problem(row, f"message {i} must be an object, got {type(message).__name__}", "wrong_type")
        calls = None
        if "role" in message:
            role, content, calls = message.get("role"), message.get("content"), message.get("tool_calls")
            if calls is None and isinstance(message.get("function_call"), dict):  # OpenAI's older form
                calls = message["function_call"]
        elif "from" in message:
            source, content = str(message.get("from")).lower(), message.get("value")
            role = SHAREGPT_ROLES.get(source, message.get("from"))
            if source == SHAREGPT_CALL:
                role, calls, content = "assistant", content, ""
        else:
            return _problem(row, f"message {i} has no 'role' (OpenAI) or 'from' (ShareGPT) key", "missing_field")
        role = "tool" if str(role).lower() in TOOL_ROLES else role
        if role not in ("system", "user", "assistant", "tool"):
            return _problem(row, f"message {i} has role {role!r}; use system, user, assistant or tool", "bad_role")
        if calls is not None and role != "assistant":
            return _problem(row, f"message {i} ({role}) has tool_calls: only an assistant calls tools", "bad_role")
        if calls is not None:
            try:
                calls = parse_calls(calls)
            except ToolDataError as exc:
                return _problem(row, f"message {i}: {exc}", "bad_tool_call")
            content = "" if content is None else content
        text = _content_text(content)
        if role == "tool" and text is None:
            text = result_text(content)
        if text is None:
            return _problem(row, f"message {i} ({role}) has no text content", "wrong_type")
        normal: dict[str, Any] = {"role": role, "content": text}
        if calls:
            normal["tool_calls"] = calls
        if role == "tool":
            normal.update({key: message[key] for key in KEPT_TOOL_FIELDS if isinstance(message.get(key), str)})
        messages.append(normal)
    return check_turns(row, messages)


def row_tools(row: Row, column: str | None) -> list[dict[str, Any]] | DataProblem | None:
    """The functions a chat row offers (None where it offers none), or what is wrong with them."""
    offered = row.data.get(column) if column else None
    if offered is None or (isinstance(offered, (str, list)) and not str(offered).strip("[] ")):  # "", []: none
        return None
    try:
        return normalize_tools(offered)
    except ToolDataError as exc:
        return _problem(row, f"field '{column}': {exc}", "bad_tool_call")


ORDER = "system first, then user and assistant alternating; tool results only after an assistant's turn"


def check_turns(row: Row, messages: list[dict[str, Any]]) -> list[dict[str, Any]] | DataProblem:
    """System first (optional), then user and assistant alternating, ending with an assistant answer. An
    assistant that calls tools is followed by their results (one or more tool messages), then by the
    assistant again; calls written in the assistant's text may be followed by results too."""
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    expected: tuple[str, ...] = ("user",)
    for i, message in enumerate(turns):
        number = i + 1 + (len(messages) - len(turns))
        role = message["role"]
        if role not in expected:
            wanted = " or ".join(repr(r) for r in expected)
            return _problem(row, f"bad role order: message {number} is {role!r} where {wanted} was expected "
                                 f"({ORDER})", "role_order")
        if role == "assistant" and not message["content"].strip() and not message.get("tool_calls"):
            return _problem(row, f"empty assistant turn (message {number})", "empty_assistant")
        # After an assistant: its calls' results, where it made calls (in tool_calls, or written in its
        # text, as Hermes-style data does), or the user's next turn.
        expected = {"user": ("assistant",), "tool": ("tool", "assistant")}.get(
            role, ("tool",) if message.get("tool_calls") else ("user", "tool"))
    if not turns or turns[-1]["role"] != "assistant":
        return _problem(row, "the conversation does not end with an assistant answer to train on", "role_order")
    return messages


def to_sample(row: Row, shape: str, mapping: dict[str, str]) -> Sample | DataProblem:
    cols = resolve_columns(set(row.data), mapping)
    origin = (row.file, row.line, row.index)
    if shape == "chat":
        column = cols.get("messages")
        if column is None or column not in row.data:
            return _problem(row, f"missing field 'messages' (columns: {describe_columns(set(row.data))})",
                            "missing_field")
        messages = normalize_messages(row, row.data[column], column)
        if isinstance(messages, DataProblem):
            return messages
        tools = row_tools(row, cols.get("tools"))
        return tools if isinstance(tools, DataProblem) else Sample(*origin, messages=messages, tools=tools)
    if shape == "instruction":
        values = {}
        for role, required in (("instruction", True), ("input", False), ("output", True), ("system", False)):
            value = _text_field(row, cols.get(role), role, required)
            if isinstance(value, DataProblem):
                return value
            values[role] = value
        user = values["instruction"].strip()
        if values["input"] and values["input"].strip():
            user = f"{user}\n\n{values['input'].strip()}"
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": values["output"]}]
        if values["system"] and values["system"].strip():
            messages.insert(0, {"role": "system", "content": values["system"].strip()})
        return Sample(*origin, messages=messages)
    if shape == "prompt_completion":
        prompt = _text_field(row, cols.get("prompt"), "prompt")
        if isinstance(prompt, DataProblem):
            return prompt
        completion = _text_field(row, cols.get("completion"), "completion")
        if isinstance(completion, DataProblem):
            return completion
        return Sample(*origin, prompt=prompt, completion=completion)
    text = _text_field(row, cols.get("text"), "text")
    if isinstance(text, DataProblem):
        return text
    return Sample(*origin, text=text)
