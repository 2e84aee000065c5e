"""Readers: every supported source becomes a stream of `Row`s and `DataProblem`s.

A reader never raises on bad content: a row it cannot use becomes a problem that
names the file, the line (or the row index where a format has no lines) and the
reason. This module picks the reader for a source (by its extension, or as declared);
the readers themselves are in line_formats.py (text, JSONL, JSON, CSV: line-numbered)
and table_formats.py (Parquet, Arrow folders, the local hub cache).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .line_formats import TEXT_SUFFIXES, folder_files, not_read, read_csv, read_json, read_jsonl, read_text
from .rows import DataProblem, DataSourceError, Item
from .table_formats import read_arrow_folder, read_hub_cache, read_parquet

SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", **{s: "text" for s in TEXT_SUFFIXES},
}
SUPPORTED_SUFFIXES = tuple(SUFFIX_FORMATS)


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or (
                path / "dataset_dict.json").is_file():
            return "arrow"
        return "text"
    suffix = path.suffix.lower()
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    raise DataSourceError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'}; supported: "
        + ", ".join(sorted(set(SUPPORTED_SUFFIXES))) + "; or set data.format"
    )


def read_source(source: str | os.PathLike, fmt: str = "auto", text_split: str = "line") -> Iterator[Item]:
    """Rows and problems from a file, a folder, or a cached hub dataset id."""
    path = Path(source).expanduser()
    if not path.exists():
        if fmt in ("auto", "hub") and str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
            yield from read_hub_cache(str(source))
            return
        raise DataSourceError(f"{path}: no such file or folder")
    fmt = detect_format(path, fmt)
    if path.is_dir() and fmt not in ("text", "arrow"):
        yield from _read_folder(path, fmt, text_split)
        return
    if fmt == "text":
        yield from read_text(path, text_split)
    elif fmt == "jsonl":
        yield from read_jsonl(path)
    elif fmt == "json":
        yield from read_json(path)
    elif fmt in ("csv", "tsv"):
        yield from read_csv(path, "\t" if fmt == "tsv" else None)
    elif fmt == "parquet":
        yield from read_parquet(path)
    elif fmt == "arrow":
        yield from read_arrow_folder(path)
    else:
        raise DataSourceError(f"{path}: unsupported format {fmt!r}")


def _read_folder(path: Path, fmt: str, text_split: str) -> Iterator[Item]:
    """A folder of files of one declared format (e.g. many .jsonl shards)."""
    suffixes = tuple(s for s, f in SUFFIX_FORMATS.items() if f == fmt)
    files, others = folder_files(path, suffixes)
    if not files:
        yield DataProblem(str(path), None, f"no {fmt} files in this folder", kind="empty")
        return
    for file in files:
        yield from read_source(file, fmt, text_split)
    yield from not_read(others, fmt, suffixes)
