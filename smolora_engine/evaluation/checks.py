"""Checks on a model's answer: `contains:TEXT`, `not_contains:TEXT`, `regex:PATTERN`, `max_words:N`, `json`.

A check is written as a short string, in the project (`eval.checks`, applied to
every answer) or per prompt in the eval prompts file. `contains` and `not_contains`
are case-sensitive (write `regex:(?i)text` for a case-insensitive match); `regex`
searches anywhere in the answer; `max_words` counts whitespace-separated words;
`json` passes when the whole answer (surrounding whitespace, or a ```json fence,
aside) parses as JSON.

Light on purpose (standard library only): the settings screen checks them as typed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

KINDS = ("contains", "not_contains", "regex", "max_words", "json")
EXAMPLE = "'contains:TEXT', 'not_contains:TEXT', 'regex:PATTERN', 'max_words:N' or 'json'"


class CheckError(ValueError):
    """A check that cannot be parsed; the message says which and why."""


@dataclass(frozen=True)
class Check:
    kind: str
    value: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "json" else f"{self.kind}:{self.value}"

    def passes(self, answer: str) -> bool:
        if self.kind == "contains":
            return self.value in answer
        if self.kind == "not_contains":
            return self.value not in answer
        if self.kind == "regex":
            return re.search(self.value, answer) is not None
        if self.kind == "max_words":
            return len(answer.split()) <= int(self.value)
        return _parses_as_json(answer)


def _parses_as_json(answer: str) -> bool:
    text = answer.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fence:
        text = fence.group(1)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def parse_check(text: object) -> Check:
    """One check from its string form; CheckError says what is wrong with it."""
    if not isinstance(text, str):
        raise CheckError(f"{text!r} is not a check; write {EXAMPLE}")
    kind, sep, value = text.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise CheckError(f"{text!r}: unknown check {kind!r}; the kinds are {', '.join(KINDS)}")
    if kind == "json":
        if value.strip():
            raise CheckError(f"{text!r}: json takes no value; write 'json'")
        return Check("json")
    if not sep or value == "":
        raise CheckError(f"{text!r}: {kind} needs a value after the colon, e.g. '{kind}:"
                         + ("50'" if kind == "max_words" else "hello'"))
    if kind == "max_words":
        if not value.strip().isdigit() or int(value) < 1:
            raise CheckError(f"{text!r}: max_words needs a positive whole number, e.g. 'max_words:50'")
        return Check(kind, str(int(value)))
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise CheckError(f"{text!r}: not a valid regular expression ({exc})") from None
    return Check(kind, value)


def parse_checks(items: object) -> list[Check]:
    """A list of checks; CheckError names the entry (counted from 1) that is wrong."""
    if not isinstance(items, list):
        raise CheckError(f"{items!r} is not a list of checks; write e.g. [\"contains:hello\", \"max_words:50\"]")
    out = []
    for number, item in enumerate(items, 1):
        try:
            out.append(parse_check(item))
        except CheckError as exc:
            raise CheckError(f"check {number} of {len(items)}, {exc}") from None
    return out


def checks_problem(items: list) -> str | None:
    """For the project's field check: what a list of checks must be, or None when it parses."""
    try:
        parse_checks(items)
    except CheckError as exc:
        return f"a list of checks such as {EXAMPLE} ({exc})"
    return None


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool


def apply_checks(checks: list[Check], answer: str) -> list[Verdict]:
    return [Verdict(str(check), check.passes(answer)) for check in checks]
