"""Saved chat conversations: one JSON file per conversation in the project's data folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from smolora_engine import paths
from smolora_engine.fsutil import atomic_write_text


def chats_dir(project: str) -> Path:
    return paths.project_data_dir(project) / "chats"


@dataclass
class Conversation:
    """One saved conversation: the turns sent to the model, and what each model answered."""

    started: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    turns: list[dict] = field(default_factory=list)  # {"user": str, "answers": {model: str}, "settings": {...}}

    @property
    def title(self) -> str:
        first = self.turns[0]["user"] if self.turns else "(empty)"
        return f"{self.started}  {first[:40]}"

    def messages(self, model: str, system: str | None = None) -> list[dict]:
        """The history as chat messages with `model`'s own answers.

        In compare mode each side is sent its own history, so the base model never sees (and copies)
        what the tuned one said. A turn `model` did not answer (the user switched models) contributes
        the answer that was shown then. `system` (even "") replaces the one training used; None keeps it.
        """
        out = [{"role": "system", "content": system}] if system is not None else []
        for turn in self.turns:
            out.append({"role": "user", "content": turn["user"]})
            answers = turn.get("answers", {})
            answer = answers.get(model)
            if answer is None and answers:
                answer = next((a for m, a in answers.items() if m != "base"), None) or answers.get("base")
            if answer is not None:
                out.append({"role": "assistant", "content": answer})
        return out

    def save(self, project: str) -> Path:
        path = chats_dir(project) / f"{self.started}.json"
        atomic_write_text(path, json.dumps({"started": self.started, "turns": self.turns}, indent=1,
                                           ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Conversation:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(started=str(data.get("started", path.stem)), turns=list(data.get("turns", [])))


def saved_conversations(project: str) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(chats_dir(project).glob("*.json"), reverse=True):
        try:
            out.append((Conversation.load(path).title, path))
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # a damaged file is skipped, never overwritten
    return out
