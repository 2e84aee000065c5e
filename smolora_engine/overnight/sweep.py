"""Sweeps and queue additions: `key=value` assignments, each checked like `smolora config`.

A sweep's assignment lists its values with commas (`lora.r=8,16,32`); a list-valued
setting is written in TOML brackets, so its own commas stay inside one value
(`lora.target_modules=["q_proj","v_proj"],["all-linear"]`). The grid is every
combination, in the order the keys were given, the last key changing fastest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..project import Problem, Project

from ..project_load import blocking

from ..project_fields import field_doc, field_docs, parse_assignment, set_value


class SweepError(ValueError):
    """Assignments that cannot be queued: the message says which and why; nothing was queued."""


@dataclass
class Variation:
    overrides: dict[str, Any]
    project: Project  # the project with the overrides applied, checked
    warnings: list[Problem]


def split_values(text: str) -> list[str]:
    """`8,16,32` -> ['8', '16', '32'], leaving commas inside [...], {...} and quotes alone."""
    return _split(text, lambda char: char == ",")


def split_assignments(text: str) -> list[str]:
    """`lora.r=8 eval.checks=["contains:a b"]` -> two assignments: spaces inside brackets and quotes stay."""
    return [part for part in _split(text.strip(), str.isspace) if part]


def _split(text: str, is_separator) -> list[str]:
    parts, current, depth, quote = [], "", 0, ""
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif is_separator(char) and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return parts


def parse_grid(assignments: list[str]) -> list[tuple[str, list[Any]]]:
    """(key, values) for each `key=v1,v2`; a key given twice or an empty value is refused."""
    grid: list[tuple[str, list[Any]]] = []
    for text in assignments:
        if "=" not in text:
            raise SweepError(f"expected key=value1,value2,..., got {text!r}")
        key, raw = (part.strip() for part in text.split("=", 1))
        if any(key == k for k, _ in grid):
            raise SweepError(f"{key} is given twice; list all its values in one assignment: {key}=a,b")
        parts = split_values(raw)
        if any(not p for p in parts):
            raise SweepError(f"{text!r} has an empty value; separate values with single commas")
        grid.append((key, [parse_assignment(f"{key}={p}")[1] for p in parts]))
    return grid


def check_variation(base: Project, overrides: dict[str, Any]) -> Variation:
    """The project with `overrides` applied; SweepError naming the key when a value is refused."""
    project, problems = base, []
    for key, value in overrides.items():
        project, problems = set_value(project, key, value)
        unknown = [p for p in problems if p.unknown_key and (p.field == key or p.field.startswith(key + "."))]
        if unknown:
            section = key.split(".")[0]
            known = [k for k, *_ in field_docs() if k.startswith(section + ".")] or [k for k, *_ in field_docs()]
            raise SweepError(f"unknown key {key}; known keys: " + ", ".join(known))
    if bad := blocking(problems):
        where = " ".join(f"{k}={v!r}" for k, v in overrides.items())
        docs = {p.field: field_doc(p.field) for p in bad if field_doc(p.field)}
        hint = "".join(f"\n  {k}: {d}" for k, d in docs.items())
        raise SweepError(f"{where}: " + "; ".join(p.message for p in bad) + hint)
    return Variation(dict(overrides), project, [p for p in problems if p.warning])


def expand(base: Project, assignments: list[str]) -> list[Variation]:
    """Every combination of the grid, each checked; nothing is returned unless all of them pass."""
    grid = parse_grid(assignments)
    keys = [k for k, _ in grid]
    return [check_variation(base, dict(zip(keys, combo))) for combo in itertools.product(*(v for _, v in grid))]
