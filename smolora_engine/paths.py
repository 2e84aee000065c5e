"""Where smolora keeps its files (platformdirs), and the SMOLORA_HOME override.

    config_dir()/projects/<name>.toml        a project's settings
    data_dir()/projects/<name>/runs/<id>/    one training run
    cache_dir()/models/                      base models converted once

Setting SMOLORA_HOME moves all three under one folder (HOME/config, HOME/data,
HOME/cache); tests and demos use it so they never touch a user's real folders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path

APP_NAME = "smolora-tui"
HOME_ENV = "SMOLORA_HOME"

# Project names become file and folder names: keep them portable.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def config_dir() -> Path:
    home = _home()
    return home / "config" if home else user_config_path(APP_NAME)


def data_dir() -> Path:
    home = _home()
    return home / "data" if home else user_data_path(APP_NAME)


def cache_dir() -> Path:
    home = _home()
    return home / "cache" if home else user_cache_path(APP_NAME)


def projects_dir() -> Path:
    return config_dir() / "projects"


def models_cache_dir() -> Path:
    return cache_dir() / "models"


def check_project_name(name: str) -> str | None:
    """Return why `name` cannot be a project name, or None if it can."""
    if not _NAME_RE.match(name or ""):
        return (
            f"project name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return None


def project_file(name: str) -> Path:
    return projects_dir() / f"{name}.toml"


def project_data_dir(name: str) -> Path:
    return data_dir() / "projects" / name


def runs_dir(name: str) -> Path:
    return project_data_dir(name) / "runs"
