"""What the app remembers between sessions (theme, the mode each project was left in): a small TOML file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from smolora_engine import paths
from smolora_engine.fsutil import atomic_write_text


def state_file() -> Path:
    return paths.config_dir() / "tui.toml"


def load_state() -> dict[str, Any]:
    try:
        with open(state_file(), "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # a missing or broken UI state file only loses preferences
    return data if isinstance(data, dict) else {}


def update_state(**changes: Any) -> None:
    data = load_state()
    for key, value in changes.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    state_file().parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_file(), tomli_w.dumps(data))
