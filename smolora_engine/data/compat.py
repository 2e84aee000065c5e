"""SmoLoRA's data helpers, with the same names and results, except that what SmoLoRA
skipped silently (malformed lines, rows without the field) is reported as a warning
that names the file and line.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

from .line_formats import read_csv as _csv_rows, read_jsonl as _jsonl_rows, read_text
from .rows import DataProblem
from .doctor import chunk_words
from pathlib import Path


class DataWarning(UserWarning):
    """Rows that were not used, each with its file and line."""


def _report(problems: list[DataProblem]) -> None:
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        warnings.warn(DataWarning(f"{len(problems)} row(s) skipped:\n{shown}{more}"), stacklevel=3)


def _texts(items, text_field: str) -> list[str]:
    texts, problems = [], []
    for item in items:
        if isinstance(item, DataProblem):
            problems.append(item)
            continue
        value = item.data.get(text_field)
        if isinstance(value, str) and value.strip():
            texts.append(value.strip())
        else:
            reason = f"missing field '{text_field}'" if text_field not in item.data else f"field '{text_field}' is empty or not text"
            problems.append(DataProblem(item.file, item.line, reason, item.index, kind="missing_field"))
    _report(problems)
    return texts


def read_txt_folder(folder_path: str) -> list[str]:
    """Every non-empty line of every .txt file in the folder (SmoLoRA: non-recursive .txt only)."""
    files = sorted(Path(folder_path).glob("*.txt"))
    items = [item for f in files for item in read_text(f, "line")]
    return _texts(items, "text")


def read_jsonl(file_path: str, text_field: str = "text") -> list[str]:
    return _texts(_jsonl_rows(Path(file_path)), text_field)


def read_csv(file_path: str, text_field: str = "text") -> list[str]:
    return _texts(_csv_rows(Path(file_path)), text_field)


def chunk_texts(texts: list[str], chunk_size: int = 0) -> list[str]:
    if chunk_size <= 0:
        return texts
    return [chunk for text in texts for chunk in chunk_words(text, chunk_size) if chunk]


def prepare_dataset(source: str, text_field: str = "text", chunk_size: int = 0, file_type: Optional[str] = None):
    """A `datasets.Dataset` with one "text" column, as SmoLoRA's prepare_dataset."""
    from datasets import Dataset

    if file_type is None:
        if os.path.isdir(source):
            file_type = "txt"
        elif source.endswith(".jsonl"):
            file_type = "jsonl"
        elif source.endswith(".csv"):
            file_type = "csv"
        else:
            raise ValueError("Cannot infer file type. Please specify file_type.")
    readers = {"txt": lambda: read_txt_folder(source), "jsonl": lambda: read_jsonl(source, text_field),
               "csv": lambda: read_csv(source, text_field)}
    if file_type not in readers:
        raise ValueError(f"Unsupported file_type: {file_type}")
    texts = chunk_texts(readers[file_type](), chunk_size)
    before = len(texts)
    texts = list(dict.fromkeys(t for t in texts if t.strip()))
    if before != len(texts):
        warnings.warn(DataWarning(f"{before - len(texts)} duplicate text(s) removed"), stacklevel=2)
    return Dataset.from_dict({"text": texts})
