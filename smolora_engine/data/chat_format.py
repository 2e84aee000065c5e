"""How conversations become text: one definition for training, serve, generate, chat and the Modelfile.

A run freezes its settings in run.toml, so `ChatFormat.of(run's data settings)` gives
the rendering that trained it: the system message added to conversations that have
none (empty: the chat template's own default), the options passed to the chat
template (e.g. Qwen3's `enable_thinking`), and whether prompt/completion rows go
through the template as a user and an assistant turn. Everything that talks to a
model through its template renders through this class, so training and use cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PAIR_FORMATS = ("auto", "chat", "raw")


class TemplateError(ValueError):
    """The tokenizer has no chat template where one is needed."""


@dataclass(frozen=True)
class ChatFormat:
    system: str = ""  # added to conversations without a system turn; "" leaves the template's default
    options: dict[str, Any] = field(default_factory=dict)  # extra variables for the chat template
    pairs: str = "auto"  # prompt/completion rows: chat (through the template), raw (concatenated), auto

    @classmethod
    def of(cls, data: Any) -> ChatFormat:
        """From a project's (or a run's frozen) data settings: a DataSettings or its dict."""
        get = data.get if isinstance(data, dict) else lambda key, default: getattr(data, key, default)
        return cls(system=str(get("system_prompt", "") or ""), options=dict(get("template_options", {}) or {}),
                   pairs=str(get("pair_format", "auto") or "auto"))

    def conversation(self, messages: list[dict]) -> list[dict]:
        """The messages with the configured system message first, unless they bring their own."""
        if self.system and not (messages and messages[0].get("role") == "system"):
            return [{"role": "system", "content": self.system}, *messages]
        return list(messages)

    def template(self, tokenizer, messages: list[dict], generation: bool = False, tools: list[dict] | None = None) -> str:
        """The chat template applied to exactly these messages (and the tools they may call), with this
        format's options. A template that refuses them (Gemma's alternation, Llama's one call a turn)
        raises TemplateError with its own words."""
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateError("the model's tokenizer has no chat template; use a chat model or plain text data")
        from jinja2 import TemplateError as JinjaError

        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation,
                                                 **self.variables(tools))
        except JinjaError as exc:
            raise TemplateError(f"the model's chat template refuses this conversation: {exc}") from None

    def variables(self, tools: list[dict] | None = None) -> dict[str, Any]:
        """What the chat template is given beside the messages: the tools (where there are any) and the options."""
        return {**({"tools": tools} if tools else {}), **self.options}

    def prompt(self, tokenizer, messages: list[dict], tools: list[dict] | None = None) -> str:
        """What the model is given to answer `messages`: the conversation rendered, then the generation prompt."""
        return self.template(tokenizer, self.conversation(messages), generation=True, tools=tools)

    def pairs_as_chat(self, tokenizer) -> bool:
        """Do prompt/completion rows render as a user and an assistant turn (else: prompt + completion)?"""
        if self.pairs == "raw":
            return False
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if self.pairs == "chat" and not has_template:
            raise TemplateError("data.pair_format is 'chat' but the model's tokenizer has no chat template; "
                                "set data.pair_format = \"raw\" for a base model")
        return has_template

    def system_in_effect(self, tokenizer) -> str:
        """The system message a conversation without one is rendered with ("" when there is none)."""
        return self.system or template_default_system(tokenizer, self.options)


def template_default_system(tokenizer, options: dict | None = None) -> str:
    """The system message the chat template inserts by itself (SmolLM2's, Qwen2.5's), or "".

    Rendered with a marker system message and without one: the text the template puts where
    the marker stood is its default.
    """
    if not getattr(tokenizer, "chat_template", None):
        return ""
    mark, user = "SYSMARKQZX", {"role": "user", "content": "USERMARKQZX"}
    try:
        with_system = tokenizer.apply_chat_template([{"role": "system", "content": mark}, user], tokenize=False,
                                                    **(options or {}))
        bare = tokenizer.apply_chat_template([user], tokenize=False, **(options or {}))
    except Exception:  # a template without a system role: nothing inserted either
        return ""
    if mark not in with_system or "USERMARKQZX" not in with_system:
        return ""
    start = with_system.index(mark)
    prefix, suffix = with_system[:start], with_system[start + len(mark):with_system.index("USERMARKQZX")]
    if not suffix or not bare.startswith(prefix):
        return ""
    end = bare.find(suffix, len(prefix))
    if end < 0 or end > bare.index("USERMARKQZX"):
        return ""
    return bare[len(prefix):end]
