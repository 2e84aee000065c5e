"""Readers: every supported source becomes a stream of `Row`s and `DataProblem`s.

A reader never raises on bad content: a row it cannot use becomes a problem that
names the file, the line (or the row index where a format has no lines) and the
reason. Text formats are read line by line (streamed), so a large file costs
little memory. Standard-library parsers are used for JSONL, JSON and CSV because
they can say *which line* is bad; `datasets` and pyarrow read the binary formats.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", **{s: "text" for s in TEXT_SUFFIXES},
}
SUPPORTED_SUFFIXES = tuple(SUFFIX_FORMATS)
_SNIFF = 8192


@dataclass(frozen=True)
class Row:
    data: dict[str, Any]
    file: str
    line: int | None = None  # 1-based line where the row starts (text formats)
    index: int | None = None  # 0-based row index (Parquet, Arrow, JSON objects)

    @property
    def where(self) -> str:
        return where(self.file, self.line, self.index)


@dataclass(frozen=True)
class DataProblem:
    file: str
    line: int | None
    reason: str
    index: int | None = None
    kind: str = "invalid"  # a short code to count problems by: malformed_json, missing_field, ...

    @property
    def where(self) -> str:
        return where(self.file, self.line, self.index)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "row": self.index, "kind": self.kind, "reason": self.reason}


Item = Union[Row, DataProblem]


def where(file: str, line: int | None, index: int | None) -> str:
    if line is not None:
        return f"{file}:{line}"
    if index is not None:
        return f"{file} row {index}"
    return file


class DataSourceError(Exception):
    """The source itself cannot be read (missing, unsupported): nothing to report row by row."""


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


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF)
    return b"\x00" in head


def _binary_problem(path: Path) -> DataProblem:
    return DataProblem(str(path), 1, "the file is binary, not text (it contains NUL bytes); "
                                     "is it the right file, or a different format renamed?", kind="binary")


def iter_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line; text is None where the line is not valid UTF-8."""
    with open(path, "rb") as handle:
        first = True
        for number, raw in enumerate(handle, start=1):
            if first and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            first = False
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                yield number, None


def _not_utf8(path: Path, line: int) -> DataProblem:
    return DataProblem(str(path), line, "not UTF-8 text; re-save the file as UTF-8", kind="not_utf8")


# ---------------------------------------------------------------- text files

def text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def read_text(path: Path, split: str = "line") -> Iterator[Item]:
    """A text file or a folder of them (recursive): one sample per line, paragraph or file."""
    files = text_files(path)
    if not files:
        yield DataProblem(str(path), None, "no .txt or .md files in this folder", kind="empty")
        return
    for file in files:
        if _looks_binary(file):
            yield _binary_problem(file)
            continue
        if split == "line":
            for number, text in iter_lines(file):
                if text is None:
                    yield _not_utf8(file, number)
                elif text.strip():
                    yield Row({"text": text.strip()}, str(file), number)
        else:
            yield from _paragraphs(file, whole_file=split == "file")


def _paragraphs(file: Path, whole_file: bool) -> Iterator[Item]:
    lines: list[str] = []
    start = None
    for number, text in iter_lines(file):
        if text is None:
            yield _not_utf8(file, number)
            continue
        if not text.strip() and not whole_file:
            if lines:
                yield Row({"text": "\n".join(lines).strip()}, str(file), start)
            lines, start = [], None
            continue
        if start is None and text.strip():
            start = number
        if start is not None:
            lines.append(text)
    if lines and "\n".join(lines).strip():
        yield Row({"text": "\n".join(lines).strip()}, str(file), start)


# ---------------------------------------------------------------- JSON Lines

def read_jsonl(path: Path) -> Iterator[Item]:
    if _looks_binary(path):
        yield _binary_problem(path)
        return
    for number, text in iter_lines(path):
        if text is None:
            yield _not_utf8(path, number)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield DataProblem(str(path), number, f"malformed JSON: {exc.msg} (column {exc.colno})",
                              kind="malformed_json")
            continue
        except RecursionError:
            yield DataProblem(str(path), number, "malformed JSON: nested too deeply", kind="malformed_json")
            continue
        if not isinstance(value, dict):
            yield DataProblem(str(path), number, f"expected a JSON object, got {type(value).__name__}",
                              kind="wrong_type")
            continue
        yield Row(value, str(path), number)


# ---------------------------------------------------------------- JSON

def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def read_json(path: Path) -> Iterator[Item]:
    """A JSON list of objects, or an object holding one (e.g. {"data": [...]})."""
    if _looks_binary(path):
        yield _binary_problem(path)
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield DataProblem(str(path), raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text; re-save the file as UTF-8",
                          kind="not_utf8")
        return
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if not text.strip():
        yield DataProblem(str(path), 1, "the file is empty", kind="empty")
        return
    try:
        if text[start] == "[":
            yield from _json_array(path, text, start, decoder)
            return
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        yield DataProblem(str(path), exc.lineno, f"malformed JSON: {exc.msg} (column {exc.colno})",
                          kind="malformed_json")
        return
    except RecursionError:
        yield DataProblem(str(path), 1, "malformed JSON: nested too deeply", kind="malformed_json")
        return
    if isinstance(value, dict):
        key = next((k for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
        if key is None:
            yield Row(value, str(path), 1)  # a single example
            return
        for index, item in enumerate(value[key]):
            if isinstance(item, dict):
                yield Row(item, str(path), None, index)
            else:
                yield DataProblem(str(path), None, f"{key}[{index}]: expected a JSON object, got "
                                                   f"{type(item).__name__}", index, kind="wrong_type")
        return
    yield DataProblem(str(path), 1, f"expected a list of objects, got {type(value).__name__}", kind="wrong_type")


def _json_array(path: Path, text: str, pos: int, decoder: json.JSONDecoder) -> Iterator[Item]:
    """Decode a top-level array element by element, so each row knows its line."""
    pos += 1
    index = 0
    length = len(text)
    while True:
        while pos < length and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= length:
            raise json.JSONDecodeError("the list is not closed with ']'", text, pos)
        if text[pos] == "]":
            return
        value, end = decoder.raw_decode(text, pos)
        line = _line_of(text, pos)
        if isinstance(value, dict):
            yield Row(value, str(path), line, index)
        else:
            yield DataProblem(str(path), line, f"expected a JSON object, got {type(value).__name__}", index,
                              kind="wrong_type")
        index += 1
        pos = end


# ---------------------------------------------------------------- CSV / TSV

class _LineCounter(io.TextIOBase):
    """Feeds csv one decoded line at a time and knows which physical line it is on."""

    def __init__(self, path: Path):
        self._lines = iter_lines(path)
        self.line = 0
        self.bad_lines: list[int] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while True:
            number, text = next(self._lines)
            self.line = number
            if text is None:
                self.bad_lines.append(number)
                continue
            return text + "\n"


def read_csv(path: Path, delimiter: str | None = None) -> Iterator[Item]:
    if _looks_binary(path):
        yield _binary_problem(path)
        return
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    source = _LineCounter(path)
    reader = csv.reader(source, delimiter=delimiter)
    header: list[str] | None = None
    reported = 0
    while True:
        start = source.line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield DataProblem(str(path), start, f"CSV error: {exc}", kind="malformed_csv")
            continue
        while reported < len(source.bad_lines):
            yield _not_utf8(path, source.bad_lines[reported])
            reported += 1
        if not record or not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [h.strip() for h in record]
            continue
        if len(record) != len(header):
            yield DataProblem(str(path), start, f"expected {len(header)} fields (the header's), got {len(record)}",
                              kind="wrong_field_count")
            continue
        yield Row(dict(zip(header, record)), str(path), start)
    while reported < len(source.bad_lines):
        yield _not_utf8(path, source.bad_lines[reported])
        reported += 1
    if header is None:
        yield DataProblem(str(path), 1, "the file is empty (no header row)", kind="empty")


# ---------------------------------------------------------------- Parquet, Arrow, hub cache

def read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        yield DataProblem(str(path), None, f"not a readable Parquet file: {exc}", kind="unreadable")
        return
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                yield Row(record, str(path), None, index)
                index += 1
    except Exception as exc:  # a damaged row group: report where reading stopped
        yield DataProblem(str(path), None, f"damaged Parquet data from this row on: {exc}", index,
                          kind="unreadable")


def read_arrow_folder(path: Path) -> Iterator[Item]:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except Exception as exc:
        yield DataProblem(str(path), None, f"not a folder written by datasets' save_to_disk: {exc}",
                          kind="unreadable")
        return
    if isinstance(loaded, DatasetDict):
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    for index, record in enumerate(loaded):
        yield Row(dict(record), str(path), None, index)


def read_hub_cache(dataset_id: str) -> Iterator[Item]:
    from datasets import load_dataset

    try:
        loaded = load_dataset(dataset_id, split="train", download_mode="reuse_cache_if_exists")
    except Exception as exc:
        raise DataSourceError(
            f"{dataset_id!r} is not a file or folder here, and not a dataset in the local Hugging Face cache "
            f"({type(exc).__name__}); smolora never downloads: copy the data here and set data.path"
        ) from exc
    for index, record in enumerate(loaded):
        yield Row(dict(record), dataset_id, None, index)


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
        yield from read_csv(path, "\t" if fmt == "tsv" else ",")
    elif fmt == "parquet":
        yield from read_parquet(path)
    elif fmt == "arrow":
        yield from read_arrow_folder(path)
    else:
        raise DataSourceError(f"{path}: unsupported format {fmt!r}")


def _read_folder(path: Path, fmt: str, text_split: str) -> Iterator[Item]:
    """A folder of files of one declared format (e.g. many .jsonl shards)."""
    suffixes = [s for s, f in SUFFIX_FORMATS.items() if f == fmt]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        yield DataProblem(str(path), None, f"no {fmt} files in this folder", kind="empty")
    for file in files:
        yield from read_source(file, fmt, text_split)
