"""The base model's greedy answers, kept between runs: the same model, prompts and settings answer the same.

Every run answers its eval prompts with the base model before step 1, and `smolora eval` answers
them again: on a CPU that is 10-15 s for the demo's 8 prompts and minutes for a larger model,
every time, with the same result. Greedy decoding of the same token ids by the same weights, in
the same dtype, on the same device, library versions and thread count, in the same batches, gives
the same tokens; all of that is the key, so a changed file, template, system prompt, setting or
library answers afresh. Answers cut short by the time limit are not kept.

Entries live under the cache folder (`answers/`), one small JSON file each.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import paths
from ..fsutil import atomic_write_text


def _folder_stamp(folder: str) -> list:
    """The model folder's files, each with its size and modification time (weights replaced: a new key)."""
    path = Path(folder)
    if not path.is_dir():
        return [folder]
    return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in path.iterdir() if f.is_file())


def answers_key(model, encoded: list[list[int]], settings: dict) -> str | None:
    """The key of these prompts' base answers, or None when the model's files are not known."""
    import torch
    import transformers

    config = model.config
    source = getattr(config, "_name_or_path", "")
    if not source:
        return None
    parameter = next(model.parameters())
    facts = {
        "model": str(Path(source).resolve()) if Path(source).exists() else source,
        "files": _folder_stamp(source),
        "dtype": str(parameter.dtype), "device": parameter.device.type,
        "attention": getattr(config, "_attn_implementation", None),
        "torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
        "prompts": encoded, **settings,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def _entry(key: str) -> Path:
    return paths.cache_dir() / "answers" / f"{key}.json"


def cached_answers(key: str, count: int) -> list[str] | None:
    try:
        texts = json.loads(_entry(key).read_text())["texts"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none kept, or an unreadable entry: answer afresh (and keep the new answers)
    return texts if isinstance(texts, list) and len(texts) == count else None


def keep_answers(key: str, texts: list[str], seconds: float) -> None:
    entry = _entry(key)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(entry, json.dumps({"texts": texts, "seconds": round(seconds, 3)}))
    except OSError:
        pass  # a cache that cannot be written only costs the next run the same answers again
