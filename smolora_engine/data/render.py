"""Rendering: a Sample becomes token ids and labels, with the loss on the answer only.

Chat (and instruction) samples go through the tokenizer's own chat template, as
the run's `ChatFormat` says (its system message and template options). The
trained spans are found by rendering each conversation prefix: the text between
"prefix + generation prompt" and "prefix + the assistant message" is that
message's answer (its end-of-turn token included, so the model learns to stop); a token
that overlaps an answer is trained, even when it starts on the space a template puts before it.
Where the template marks the assistant's text with `{% generation %}` (SmolLM3's does), the
tokenizer's own mask (`return_assistant_tokens_mask`) decides instead, as the model's authors meant;
the prefix method still runs beside it, and a token it trains that the markers leave out (an answer
token, the turn's end) is trained too and counted (`Rendered.mask_missed`), so the two cannot
silently disagree.
Prompt/completion rows become a user and an assistant turn when the model has a
chat template (data.pair_format), else prompt + completion with the loss on the
completion. Plain text is trained everywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .chat_format import ChatFormat, TemplateError
from .shapes import Sample
from .tool_calls import call_names, tool_names

IGNORE = -100
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
MASKS = {"prefix": "answer spans found from the template's prefixes",
         "template": "the chat template's {% generation %} markers"}


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, trained) pieces, for display
    truncated: bool = False
    sample: Sample | None = None  # what it was rendered from (eval prompts come from the held-out ones)
    mask: str = ""  # for conversations, which method put the loss on the answers (MASKS)
    mask_missed: int = 0  # tokens the prefix method trains that the template's markers left out (trained too)
    mask_extra: int = 0  # tokens the template's markers train beyond the answer spans (an assistant header)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


class RenderError(ValueError):
    pass


NOT_RENDERED = 3  # the exit status of `smolora data sample` for a sample that raises RenderError


def _assistant_spans(messages: list[dict], tokenizer, fmt: ChatFormat,
                     tools: list[dict] | None = None) -> tuple[str, list[tuple[int, int]]]:
    messages = fmt.conversation(messages)
    full = fmt.template(tokenizer, messages, tools=tools)
    spans = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = fmt.template(tokenizer, messages[:i], generation=True, tools=tools) if i else ""
        upto = fmt.template(tokenizer, messages[: i + 1], tools=tools)
        if full.startswith(upto) and upto.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(upto)
            # Keep the turn's end token, not the whitespace the template puts after it.
            while end > start and upto[end - 1] in " \n":
                end -= 1
        elif message.get("tool_calls"):
            _check_calls_written(full[cursor:], message, i + 1)  # a template that drops them says so first
            start, end = _calls_span(full, before, upto, cursor)
        else:  # a template whose prefixes are not prefixes: find the answer's text itself
            start = full.find(message["content"], cursor)
            if start < 0:
                raise RenderError("the chat template does not reproduce the assistant's text")
            end = start + len(message["content"])
            eos = tokenizer.eos_token or ""
            if eos and full.startswith(eos, end):
                end += len(eos)
        _check_calls_written(full[start:end], message, i + 1)
        spans.append((start, end))
        cursor = end
    _check_tools_shown(full, messages, tools)
    return full, spans


def _calls_span(full: str, before: str, upto: str, cursor: int) -> tuple[int, int]:
    """A tool-calling turn where the template writes a last turn otherwise (Qwen3's empty think block):
    the turn as rendered last, less what only a last turn gets before it, found where it stands in
    the whole conversation."""
    if not (full.startswith(before) and upto.startswith(before)) or len(before) < cursor:
        raise RenderError("the chat template does not reproduce the assistant's tool calls")
    start, turn = len(before), upto[len(before):].rstrip(" \n")
    for cut in range(len(turn)):
        if full.startswith(turn[cut:], start):
            return start, start + len(turn) - cut
    raise RenderError("the chat template does not reproduce the assistant's tool calls")


def _check_calls_written(answer: str, message: dict, number: int) -> None:
    """An assistant's tool calls are in its trained text: a template that drops them (SmolLM2's) would
    teach the model to answer with nothing."""
    missing = [name for name in call_names(message) if name not in answer]
    if missing:
        raise RenderError(f"the model's chat template leaves out message {number}'s tool call(s) ({', '.join(missing)}):"
                          " use a model whose template writes tool calls (Qwen3, Llama 3.x), or write the calls "
                          "into the assistant's text the way your model expects")


def _check_tools_shown(full: str, messages: list[dict], tools: list[dict] | None) -> None:
    """The row's tools, and every tool result, are in the text the model reads."""
    missing = [name for name in tool_names(tools) if name not in full]
    if missing:
        raise RenderError(f"the model's chat template does not show the row's tools ({', '.join(missing)}): use a "
                          "model whose template takes `tools` (Qwen3, Llama 3.x), or describe them in the system "
                          "message")
    for number, message in enumerate(messages, start=1):
        result = message["content"].strip()
        # As it is, or as a JSON string (Llama 3.x writes every result with tojson).
        if message["role"] == "tool" and result and result not in full and \
                json.dumps(result, ensure_ascii=False)[1:-1] not in full:
            raise RenderError(f"the model's chat template leaves out message {number}'s tool result")


def _template_mask(messages: list[dict], tokenizer, fmt: ChatFormat, ids: list[int],
                   tools: list[dict] | None = None) -> list[int] | None:
    """The tokenizer's own assistant mask where the template has `{% generation %}` markers, else None.

    None too where it cannot be had (a slow tokenizer has no offsets) or does not describe these
    exact ids; the prefix method then stands alone.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not GENERATION_MARKER.search(template) or not tokenizer.is_fast:
        return None
    out = tokenizer.apply_chat_template(fmt.conversation(messages), tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, **fmt.variables(tools))
    if list(out["input_ids"]) != ids:
        return None
    return list(out["assistant_masks"])


def _token_spans(offsets: list[tuple[int, int]], trained: list[bool]) -> list[tuple[int, int]]:
    """The text spans covered by runs of consecutive trained tokens."""
    spans: list[tuple[int, int]] = []
    previous = False
    for (start, end), on in zip(offsets, trained):
        if on and previous:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        elif on:
            spans.append((start, end))
        previous = on
    return spans


def _segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    out, pos = [], 0
    for start, end in spans:
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def mask_note(extra: int, missed: int) -> str:
    """What the template's own markers train beyond the answers, or leave out of them."""
    notes = []
    if extra:
        notes.append(f"they also train {extra} token(s) of the template's own (the assistant header)")
    if missed:
        notes.append(f"they leave {missed} answer token(s) out, trained anyway")
    return ("; " + "; ".join(notes)) if notes else ""


def render_sample(sample: Sample, tokenizer, max_length: int | None = None, fmt: ChatFormat | None = None) -> Rendered:
    """Token ids and labels for one sample (truncated to max_length when given), rendered as `fmt` says."""
    fmt = fmt or ChatFormat()
    try:
        messages = sample.messages
        if not messages and sample.prompt is not None and fmt.pairs_as_chat(tokenizer):
            messages = [{"role": "user", "content": sample.prompt},
                        {"role": "assistant", "content": sample.completion or ""}]
        if messages:
            text, spans = _assistant_spans(messages, tokenizer, fmt, sample.tools)
    except TemplateError as exc:
        raise RenderError(str(exc)) from None
    if not messages and sample.prompt is not None:
        text = sample.prompt + (sample.completion or "") + (tokenizer.eos_token or "")
        spans = [(len(sample.prompt), len(text))]
    elif not messages:
        text = (sample.text or "") + (tokenizer.eos_token or "")
        spans = [(0, len(text))]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    # A token that overlaps an answer is trained: one that starts on the template's space before the
    # answer (Mistral's " " + answer, SentencePiece's "▁Paris") carries the answer's first word.
    trained = [any((start < e and end > s) or (start == end and s < end <= e) for s, e in spans)
               for start, end in offsets]
    mask, missed, extra = ("prefix" if messages else ""), 0, 0
    if messages and (marked := _template_mask(messages, tokenizer, fmt, ids, sample.tools)) is not None:
        mask = "template"
        missed = sum(1 for p, t in zip(trained, marked) if p and not t)
        extra = sum(1 for p, t in zip(trained, marked) if t and not p)
        trained = [bool(t) or p for p, t in zip(trained, marked)]
        spans = _token_spans(offsets, trained)
    labels = [token_id if on else IGNORE for token_id, on in zip(ids, trained)]
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Rendered(ids, labels, _segments(text, spans), truncated, sample, mask, missed, extra)
