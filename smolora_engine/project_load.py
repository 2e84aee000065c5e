"""Reading a project from parsed TOML: every problem named, nothing raised, nothing lost.

`project_from_dict` never raises on bad values: it returns the project built from
what was valid plus *every* problem found, each naming its field, so a person can
fix a file in one pass. Unknown keys are reported (with the likely meant key, also
for names from Hugging Face, PEFT, TRL and SmolFactory configs) and kept, so a save
writes them back. Light: no torch.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import fields
from typing import Any, get_type_hints

from .project import Problem, Project, ProjectError, SCHEMA_VERSION, SECTIONS, TYPE_WORDS


def _coerce(value: Any, kind: type) -> tuple[bool, Any]:
    """Check `value` against the field's type; ints are accepted where numbers are."""
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value), value
    if kind is dict:  # a table of scalars; a field's own check narrows it (data.columns: column names)
        return isinstance(value, dict) and all(isinstance(v, (str, bool, int, float)) for v in value.values()), value
    return isinstance(value, kind), value


def _check_field(path: str, f, kind: type, value: Any) -> tuple[Any, Problem | None]:
    choices = f.metadata.get("choices")
    if isinstance(value, bool) and kind is str and {"on", "off"} <= set(choices):
        value = "on" if value else "off"  # an on/off setting that used to be true or false
    ok, value = _coerce(value, kind)
    if not ok:
        return None, Problem(path, f"{path} must be {TYPE_WORDS[kind]}, got {value!r}")
    if choices and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        return None, Problem(path, f"{path} must be one of {allowed}, got {value!r}")
    check = f.metadata.get("check")
    wanted = check(value) if check else None
    if wanted:
        return None, Problem(path, f"{path} must be {wanted}, got {value!r}")
    warn = f.metadata.get("warn")
    if warn and (why := warn(value)):
        return value, Problem(path, f"{path} = {value!r} is {why}", warning=True)
    return value, None


# Names people bring from Hugging Face, PEFT, TRL and SmolFactory configs.
SYNONYMS = {
    "rank": "r", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "targets": "target_modules",
    "lr": "learning_rate", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "max_seq_length": "max_length", "lr_scheduler_type": "scheduler",
    "warmup": "warmup_ratio", "model_name": "base", "base_model": "base", "dataset": "path",
}


def _unknown(path: str, known: list[str]) -> Problem:
    leaf = path.rsplit(".", 1)[-1]
    close = [SYNONYMS[leaf]] if SYNONYMS.get(leaf) in known else difflib.get_close_matches(leaf, known, n=1)
    prefix = path.rsplit(".", 1)[0] + "." if "." in path else ""
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    return Problem(path, f"unknown key {path}{hint}; it is kept in the file but not used", unknown_key=True)


def _build_section(section: str, cls: type, raw: Any, problems: list[Problem], unknown: dict) -> Any:
    if not isinstance(raw, dict):
        problems.append(Problem(section, f"{section} must be a table ([{section}]), got {raw!r}"))
        return cls()
    hints = get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{section}.{key}"
        f = by_name.get(key)
        if f is None:
            problems.append(_unknown(path, list(by_name)))
            unknown.setdefault(section, {})[key] = value
            continue
        kind = getattr(hints[key], "__origin__", hints[key])
        checked, problem = _check_field(path, f, kind, value)
        if problem:
            problems.append(problem)
        if problem is None or problem.warning:
            values[key] = checked
    return cls(**values)


def tracker_missing(report_to: str) -> str | None:
    """Why training.report_to cannot log here (its package is not installed), or None when it can."""
    import importlib.util

    module = {"tensorboard": "tensorboard", "trackio": "trackio"}.get(report_to)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return (f"training.report_to = {report_to!r} needs the {module} package, which is not installed: "
            f"pip install 'smolora-tui[{report_to}]' (into the environment smolora runs in), or set "
            "training.report_to = \"none\"")


def _cross_checks(project: Project) -> list[Problem]:
    problems = []
    t = project.training
    if t.logging_steps > t.save_steps:
        problems.append(Problem("training.logging_steps",
                                f"training.logging_steps must be at most training.save_steps ({t.save_steps}), "
                                f"got {t.logging_steps}"))
    if t.early_stopping_patience and t.eval_steps == 0:
        problems.append(Problem("training.early_stopping_patience",
                                "training.early_stopping_patience needs evals during the run: set "
                                "training.eval_steps to a positive number (now 0: only at the end)"))
    if (missing := tracker_missing(t.report_to)) is not None:
        problems.append(Problem("training.report_to", missing, warning=True))
    if project.data.columns:
        allowed = ("text", "instruction", "input", "output", "system", "prompt", "completion", "messages", "tools")
        for key in project.data.columns:
            if key not in allowed:
                problems.append(Problem(f"data.columns.{key}",
                                        f"data.columns.{key} is not a known role; use one of "
                                        + ", ".join(allowed)))
    return problems


def project_from_dict(raw: dict[str, Any], name: str | None = None) -> tuple[Project, list[Problem]]:
    """Build a project from parsed TOML; return it with every problem found (never raises)."""
    problems: list[Problem] = []
    unknown: dict[str, Any] = {}
    version = raw.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(Problem("schema_version", f"schema_version must be a positive integer, got {version!r}"))
        version = SCHEMA_VERSION
    elif version > SCHEMA_VERSION:
        problems.append(Problem("schema_version",
                                f"schema_version {version} is newer than this smolora understands "
                                f"({SCHEMA_VERSION}); upgrade smolora-tui"))
    raw = migrate(raw, version)
    file_name = raw.get("name", name)
    if name is not None and file_name != name:
        problems.append(Problem("name", f"name must match the file name {name!r}, got {file_name!r}"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem("description", f"description must be a string, got {description!r}"))
        description = ""
    sections = {}
    for section, cls in SECTIONS.items():
        sections[section] = _build_section(section, cls, raw.get(section, {}), problems, unknown)
    for key, value in raw.items():
        if key not in SECTIONS and key not in ("schema_version", "name", "description"):
            problems.append(_unknown(key, [*SECTIONS, "schema_version", "name", "description"]))
            unknown[key] = value
    project = Project(name=name or str(file_name or ""), schema_version=SCHEMA_VERSION,
                      description=description, unknown=unknown, **sections)
    problems.extend(_cross_checks(project))
    return project, problems


def migrate(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older file's keys up to SCHEMA_VERSION (version 1 is the first: nothing to do yet)."""
    return raw


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """Parse TOML, turning a syntax error into a ProjectError naming the file, line and reason."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{source}: not valid TOML: {exc}") from exc


def blocking(problems: list[Problem]) -> list[Problem]:
    """Problems that stop a project from being used (unknown keys are only reported)."""
    return [p for p in problems if not p.unknown_key and not p.warning]


def warnings_of(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.warning]
