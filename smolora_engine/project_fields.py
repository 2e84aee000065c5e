"""The settings as fields: their specs and docs, reading and setting one by dotted key (as
`smolora config NAME key=value` and the settings form do), and the presets. Light: no torch."""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, dataclass, fields
from typing import Any, get_type_hints

from .project import Problem, Project, SECTIONS, TYPE_WORDS
from .project_load import project_from_dict


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse `key=value` as written on a command line: the value is TOML, or else a plain string."""
    if "=" not in text:
        raise ValueError(f"expected key=value, got {text!r}")
    key, value = (part.strip() for part in text.split("=", 1))
    if _NOT_DECIMAL.match(value):  # TOML reads 0xabc as 2748: numbers here are decimal, so it stays text
        return key, value
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


_NOT_DECIMAL = re.compile(r"^[+-]?0[xob]", re.IGNORECASE)


def set_value(project: Project, key: str, value: Any) -> tuple[Project, list[Problem]]:
    """Return a copy of `project` with dotted `key` set to `value`, and the problems of the result."""
    raw = project.to_dict()
    parts = key.split(".")
    target = raw
    for part in parts[:-1]:
        node = target.get(part)
        if not isinstance(node, dict):
            node = target[part] = {}
        target = node
    target[parts[-1]] = value
    return project_from_dict(raw, project.name)


@dataclass(frozen=True)
class FieldSpec:
    """One setting as a form or a reference table shows it."""

    key: str  # dotted: "lora.r"
    kind: type  # int, float, str, bool or list
    default: Any
    doc: str
    choices: tuple[str, ...] = ()

    @property
    def type_word(self) -> str:
        return TYPE_WORDS[self.kind]

    @property
    def full_doc(self) -> str:
        return self.doc + (" One of: " + ", ".join(self.choices) + "." if self.choices else "")


def field_specs() -> list[FieldSpec]:
    specs = []
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        for f in fields(cls):
            kind = getattr(hints[f.name], "__origin__", hints[f.name])
            default = f.default if f.default is not MISSING else f.default_factory()
            specs.append(FieldSpec(f"{section}.{f.name}", kind, default, f.metadata["doc"],
                                   tuple(f.metadata.get("choices") or ())))
    return specs


def field_docs() -> list[tuple[str, str, Any, str]]:
    """(dotted key, type word, default, doc) for every setting: the source of the README reference."""
    return [(s.key, s.type_word, s.default, s.full_doc) for s in field_specs()]


def get_value(project: Project, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(project, section), name)


# Starting points offered by the settings screen and `smolora config NAME --preset P`.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "quick-test": ("A few minutes on a laptop CPU: does the pipeline work on my data?", {
        "lora.r": 8, "lora.alpha": 16, "lora.target_modules": ["q_proj", "v_proj"], "training.max_steps": 20,
        "training.max_length": 512, "training.eval_steps": 10, "training.save_steps": 10,
        "training.learning_rate": 5e-4}),
    "balanced": ("The defaults: all linear layers, r=16, one epoch.", {
        "lora.r": 16, "lora.alpha": 32, "lora.target_modules": ["all-linear"], "training.max_steps": 0,
        "training.epochs": 1.0, "training.max_length": 1024, "training.eval_steps": 50,
        "training.save_steps": 50, "training.learning_rate": 5e-4}),
    "quality": ("More capacity and epochs, a lower rate: for a GPU or a long CPU run.", {
        "lora.r": 32, "lora.alpha": 64, "lora.target_modules": ["all-linear"], "lora.use_rslora": True,
        "training.max_steps": 0, "training.epochs": 3.0, "training.max_length": 2048,
        "training.learning_rate": 2e-4, "training.eval_steps": 100, "training.save_steps": 100}),
}


def apply_preset(project: Project, name: str) -> tuple[Project, list[Problem]]:
    raw = project.to_dict()
    for key, value in PRESETS[name][1].items():
        section, field_name = key.split(".", 1)
        raw.setdefault(section, {})[field_name] = value
    return project_from_dict(raw, project.name)


def field_doc(key: str) -> str:
    for dotted, _kind, _default, doc in field_docs():
        if dotted == key:
            return doc
    return ""
