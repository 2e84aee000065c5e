"""Rendering: a Sample becomes token ids and labels, with the loss on the answer only.

Chat (and instruction) samples go through the tokenizer's own chat template, as
the run's `ChatFormat` says (its system message and template options). The
trained spans are found by rendering each conversation prefix: the text between
"prefix + generation prompt" and "prefix + the assistant message" is that
message's answer (its end-of-turn token included, so the model learns to stop); a token
that overlaps an answer is trained, even when it starts on the space a template puts before it.
Prompt/completion rows become a user and an assistant turn when the model has a
chat template (data.pair_format), else prompt + completion with the loss on the
completion. Plain text is trained everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chat_format import ChatFormat, TemplateError
from .shapes import Sample

IGNORE = -100


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, trained) pieces, for display
    truncated: bool = False
    sample: Sample | None = None  # what it was rendered from (eval prompts come from the held-out ones)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


class RenderError(ValueError):
    pass


def _assistant_spans(messages: list[dict[str, str]], tokenizer, fmt: ChatFormat) -> tuple[str, list[tuple[int, int]]]:
    messages = fmt.conversation(messages)
    full = fmt.template(tokenizer, messages)
    spans = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = fmt.template(tokenizer, messages[:i], generation=True) if i else ""
        upto = fmt.template(tokenizer, messages[: i + 1])
        if full.startswith(upto) and upto.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(upto)
            # Keep the turn's end token, not the whitespace the template puts after it.
            while end > start and upto[end - 1] in " \n":
                end -= 1
        else:  # a template whose prefixes are not prefixes: find the answer's text itself
            start = full.find(message["content"], cursor)
            if start < 0:
                raise RenderError("the chat template does not reproduce the assistant's text")
            end = start + len(message["content"])
            eos = tokenizer.eos_token or ""
            if eos and full.startswith(eos, end):
                end += len(eos)
        spans.append((start, end))
        cursor = end
    return full, spans


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


def render_sample(sample: Sample, tokenizer, max_length: int | None = None, fmt: ChatFormat | None = None) -> Rendered:
    """Token ids and labels for one sample (truncated to max_length when given), rendered as `fmt` says."""
    fmt = fmt or ChatFormat()
    try:
        messages = sample.messages
        if not messages and sample.prompt is not None and fmt.pairs_as_chat(tokenizer):
            messages = [{"role": "user", "content": sample.prompt},
                        {"role": "assistant", "content": sample.completion or ""}]
        if messages:
            text, spans = _assistant_spans(messages, tokenizer, fmt)
    except TemplateError as exc:
        raise RenderError(str(exc)) from None
    if not messages and sample.prompt is not None:
        text = sample.prompt + (sample.completion or "") + (tokenizer.eos_token or "")
        spans = [(len(sample.prompt), len(text))]
    elif not messages:
        text = (sample.text or "") + (tokenizer.eos_token or "")
        spans = [(0, len(text))]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = []
    for token_id, (start, end) in zip(ids, encoded["offset_mapping"]):
        # A token that overlaps an answer is trained: one that starts on the template's space before the
        # answer (Mistral's " " + answer, SentencePiece's "▁Paris") carries the answer's first word.
        trained = any((start < e and end > s) or (start == end and s < end <= e) for s, e in spans)
        labels.append(token_id if trained else IGNORE)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Rendered(ids, labels, _segments(text, spans), truncated, sample)
