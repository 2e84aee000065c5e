"""Tool calling in chat data: an assistant's calls, the tools' results, and the tools a row offers.

The forms people bring become the one Hugging Face chat templates read:
- OpenAI: an assistant message with `tool_calls`, each `{"type": "function", "function": {"name",
  "arguments"}}` with the arguments as JSON text or an object; then `{"role": "tool", "content"}`, with
  `tool_call_id` or `name` where the dataset has them;
- calls without the `function` wrapper (`{"name", "arguments"}`), as some datasets write them;
- ShareGPT as LLaMA-Factory writes it: `{"from": "function_call", "value": "{\"name\": …, \"arguments\":
  …}"}` (one call or a list), then `{"from": "observation", "value": …}`;
- any of these calls as data or as JSON text (some datasets keep `tool_calls` as a string);
- a row's `tools`: the functions' JSON schemas, a list or its JSON text, each wrapped or bare.

Arguments become an object, which templates write with `tojson`. A call whose arguments are not JSON,
or that has no name, makes its row a bad row that says so: the model would otherwise learn to write it.
"""

from __future__ import annotations

import json
from typing import Any

# What datasets call the message that carries a tool's result: OpenAI's tool (and its older function),
# Llama 3.1's ipython, LLaMA-Factory's observation.
TOOL_ROLES = ("tool", "function", "ipython", "observation", "function_response")
SHAREGPT_CALL = "function_call"
KEPT_TOOL_FIELDS = ("tool_call_id", "name")  # what a template may print beside a tool's result


class ToolDataError(ValueError):
    """A tool call or a tool schema that cannot be trained as it is."""


def _json(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ToolDataError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos}): "
                            f"{value[:60]!r}") from None


def normalize_calls(raw: Any) -> list[dict[str, Any]]:
    """An assistant message's `tool_calls` as `[{"type": "function", "function": {"name", "arguments"}}]`."""
    if not isinstance(raw, list) or not raw:
        raise ToolDataError(f"tool_calls must be a non-empty list of calls, got {type(raw).__name__}")
    calls = []
    for number, item in enumerate(raw, start=1):
        what = f"tool call {number}"
        if not isinstance(item, dict):
            raise ToolDataError(f"{what} must be an object, got {type(item).__name__}")
        function = item.get("function", item)
        if not isinstance(function, dict):
            raise ToolDataError(f"{what}: 'function' must be an object, got {type(function).__name__}")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ToolDataError(f"{what} has no function name")
        arguments = _json(function.get("arguments", function.get("parameters", {})), f"{what} ({name}): arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolDataError(f"{what} ({name}): arguments must be an object, got {type(arguments).__name__}")
        call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
        if isinstance(item.get("id"), str):
            call["id"] = item["id"]
        calls.append(call)
    return calls


def parse_calls(value: Any) -> list[dict[str, Any]]:
    """An assistant's calls as a dataset holds them: a list of calls or one call (LLaMA-Factory's
    `function_call` turn, OpenAI's older `function_call`), as data or as its JSON text."""
    parsed = _json(value, "tool_calls")
    return normalize_calls(parsed if isinstance(parsed, list) else [parsed])


def normalize_tools(raw: Any) -> list[dict[str, Any]]:
    """A row's tools as `[{"type": "function", "function": schema}]`, from a list or its JSON text."""
    tools = _json(raw, "tools")
    if not isinstance(tools, list):
        raise ToolDataError(f"tools must be a list of function schemas, got {type(tools).__name__}")
    out = []
    for number, tool in enumerate(tools, start=1):
        if not isinstance(tool, dict):
            raise ToolDataError(f"tool {number} must be an object (a function's schema), got {type(tool).__name__}")
        schema = tool.get("function", tool)
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not schema["name"].strip():
            raise ToolDataError(f"tool {number} has no function name")
        out.append({"type": "function", "function": schema})
    return out


def result_text(content: Any) -> str | None:
    """A tool's result as text: text as it is, JSON data as JSON text."""
    if isinstance(content, str):
        return content
    if isinstance(content, (dict, list, int, float, bool)):
        return json.dumps(content, ensure_ascii=False)
    return None


def call_names(message: dict[str, Any]) -> list[str]:
    return [call["function"]["name"] for call in message.get("tool_calls") or ()]


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [tool["function"]["name"] for tool in tools or ()]


def calls_text(message: dict[str, Any]) -> str:
    """An assistant's calls as text a person reads (and a reference to compare answers with)."""
    return "\n".join(json.dumps({"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
                                ensure_ascii=False) for call in message.get("tool_calls") or ())
