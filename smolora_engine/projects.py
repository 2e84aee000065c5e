"""Projects on disk: list, read, save, create, rename, duplicate, delete.

A file that does not parse is reported with its path, line and reason, left as it
is, and never stops the other projects from loading. Saving over a file that
does not parse needs `overwrite_unreadable=True`: nothing is overwritten silently.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import paths
from .fsutil import atomic_write_text
from .project import Problem, Project, ProjectError
from .project_load import blocking, parse_toml, project_from_dict


@dataclass
class ProjectEntry:
    """One project file as found: the project when it parsed, and what is wrong with it."""

    name: str
    path: Path
    project: Project | None = None
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None  # the file could not be read or parsed at all

    @property
    def usable(self) -> bool:
        return self.project is not None and not blocking(self.problems)

    def describe_problems(self) -> str:
        if self.error:
            return self.error
        return "\n".join(f"{self.path}: {p.message}" for p in self.problems)


def read_project(name: str) -> ProjectEntry:
    """Read one project file; never raises for a bad file, reports it instead."""
    path = paths.project_file(name)
    entry = ProjectEntry(name=name, path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        entry.error = f"no project named {name!r} (looked for {path}); create it with `smolora init {name}`"
        return entry
    except (OSError, UnicodeDecodeError) as exc:
        entry.error = f"{path}: cannot be read: {exc}"
        return entry
    try:
        raw = parse_toml(text, str(path))
    except ProjectError as exc:
        entry.error = str(exc)
        return entry
    entry.project, entry.problems = project_from_dict(raw, name)
    return entry


def load_project(name: str) -> Project:
    """The project, or a ProjectError that lists every problem that stops it from being used."""
    if problem := paths.check_project_name(name):
        raise ProjectError(problem)
    entry = read_project(name)
    if entry.error:
        raise ProjectError(entry.error)
    if bad := blocking(entry.problems):
        lines = "\n".join(f"  {p.message}" for p in bad)
        raise ProjectError(f"{entry.path} has {len(bad)} problem(s):\n{lines}", bad)
    assert entry.project is not None
    return entry.project


def list_projects() -> list[ProjectEntry]:
    folder = paths.projects_dir()
    if not folder.is_dir():
        return []
    return [read_project(p.stem) for p in sorted(folder.glob("*.toml")) if not p.name.startswith(".")]


def project_names() -> list[str]:
    folder = paths.projects_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def save_project(project: Project, *, overwrite_unreadable: bool = False) -> Path:
    """Validate and write the project atomically; refuse settings with problems."""
    if problem := paths.check_project_name(project.name):
        raise ProjectError(problem)
    checked, problems = project_from_dict(project.to_dict(), project.name)
    if bad := blocking(problems):
        lines = "\n".join(f"  {p.message}" for p in bad)
        raise ProjectError(f"not saved: {len(bad)} problem(s):\n{lines}", bad)
    path = paths.project_file(project.name)
    if path.exists() and not overwrite_unreadable:
        current = read_project(project.name)
        if current.error:
            raise ProjectError(f"not saved: {current.error}\nFix or remove the file first; it was left as it is.")
    atomic_write_text(path, checked.to_toml())
    return path


def create_project(name: str, *, model: str | None = None, data: str | None = None,
                   description: str = "") -> Project:
    if problem := paths.check_project_name(name):
        raise ProjectError(problem)
    if paths.project_file(name).exists():
        raise ProjectError(f"a project named {name!r} already exists ({paths.project_file(name)})")
    project = Project(name=name, description=description)
    if model:
        project.model.base = model
    if data:
        project.data.path = str(Path(data).expanduser().resolve())
    save_project(project)
    return project


def duplicate_project(name: str, new_name: str) -> Project:
    source = load_project(name)
    if paths.project_file(new_name).exists():
        raise ProjectError(f"a project named {new_name!r} already exists")
    copy = replace(source, name=new_name)
    save_project(copy)
    return copy


def rename_project(name: str, new_name: str) -> Project:
    if problem := paths.check_project_name(new_name):
        raise ProjectError(problem)
    if paths.project_file(new_name).exists() or paths.project_data_dir(new_name).exists():
        raise ProjectError(f"a project named {new_name!r} already exists")
    project = replace(load_project(name), name=new_name)
    save_project(project)
    old_data = paths.project_data_dir(name)
    if old_data.exists():
        paths.project_data_dir(new_name).parent.mkdir(parents=True, exist_ok=True)
        old_data.rename(paths.project_data_dir(new_name))
    paths.project_file(name).unlink()
    return project


def delete_project(name: str, *, keep_runs: bool = False) -> None:
    if problem := paths.check_project_name(name):
        raise ProjectError(problem)
    path = paths.project_file(name)
    if not path.exists():
        raise ProjectError(f"no project named {name!r}")
    path.unlink()
    if not keep_runs:
        shutil.rmtree(paths.project_data_dir(name), ignore_errors=True)
