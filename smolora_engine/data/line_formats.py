"""The formats read line by line: text files and folders, JSON Lines, JSON and CSV/TSV.

Standard-library parsers, because they can say *which line* is bad; text formats are
streamed, so a large file costs little memory. Nothing here raises on bad content: a row
that cannot be used becomes a `DataProblem` with its file, line and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Iterator

from .rows import DataProblem, Item, Row

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
_SNIFF = 8192


def _binary_problem(path: Path) -> DataProblem | None:
    """The problem with a file that is not text (NUL bytes in its head), or None for a text file."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF)
    if b"\x00" not in head:
        return None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # what "Unicode text" exports write
        return DataProblem(str(path), 1, "the file is UTF-16 text, not UTF-8; re-save it as UTF-8 (in a "
                                         "spreadsheet: CSV UTF-8)", kind="not_utf8")
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

def folder_files(path: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """A folder's files (recursive, hidden ones aside): those with one of `suffixes`, and the rest."""
    read: list[Path] = []
    others: list[Path] = []
    for file in sorted(path.rglob("*")):
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts):
            (read if file.suffix.lower() in suffixes else others).append(file)
    return read, others


def not_read(files: list[Path], fmt: str, suffixes: tuple[str, ...]) -> Iterator[DataProblem]:
    """A problem for each file of a folder that its format does not read: said, never dropped unseen."""
    what = f"{fmt} ({', '.join(suffixes)} files)"
    for file in files:
        yield DataProblem(str(file), None, f"not read: this folder is read as {what}; give the file one "
                                           "of those extensions if it belongs, or move it out", kind="not_read")


def read_text(path: Path, split: str = "line") -> Iterator[Item]:
    """A text file or a folder of them (recursive): one sample per line, paragraph or file."""
    files, others = ([path], []) if path.is_file() else folder_files(path, TEXT_SUFFIXES)
    if not files:
        yield DataProblem(str(path), None, "no .txt or .md files in this folder", kind="empty")
        return
    for file in files:
        if binary := _binary_problem(file):
            yield binary
            continue
        if split == "line":
            for number, text in iter_lines(file):
                if text is None:
                    yield _not_utf8(file, number)
                elif text.strip():
                    yield Row({"text": text.strip()}, str(file), number)
        else:
            yield from _paragraphs(file, whole_file=split == "file")
    yield from not_read(others, "text", TEXT_SUFFIXES)


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
    if binary := _binary_problem(path):
        yield binary
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
    if binary := _binary_problem(path):
        yield binary
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
        if exc.msg == "Extra data" and _one_object_per_line(text, start, decoder):
            yield from read_jsonl(path)  # JSON Lines named .json (as datasets' to_json writes them)
            return
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


def _one_object_per_line(text: str, start: int, decoder: json.JSONDecoder) -> bool:
    """Whether the text starts as JSON Lines do: an object alone on its line, then another on the next."""
    try:
        first, end = decoder.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):
        return False
    rest = text[end:].lstrip(" \t\r")
    return isinstance(first, dict) and rest.startswith("\n") and rest.lstrip().startswith("{")


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


DELIMITERS = (",", ";", "\t", "|")  # a .csv's delimiter is one of these, the first that fits its lines
_SNIFF_LINES = 50


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a delimited text file: the first of DELIMITERS (a comma, then the semicolon
    spreadsheets write where the comma is the decimal mark, a tab, a bar) that splits the header into
    two or more fields and nearly every one of the first lines into as many; else the one that splits
    the most of them as the header; a comma when none splits the header."""
    lines = []
    for _number, text in iter_lines(path):
        if text is not None and text.strip():
            lines.append(text)
        if len(lines) >= _SNIFF_LINES:
            break
    best, best_share = ",", 0.0
    for delimiter in DELIMITERS:
        try:
            counts = [len(record) for record in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        share = sum(c == counts[0] for c in counts) / len(counts)
        if share >= 0.9:
            return delimiter
        if share > best_share:  # many rows of the wrong length: still the likeliest, and they are reported
            best, best_share = delimiter, share
    return best


def read_csv(path: Path, delimiter: str | None = None) -> Iterator[Item]:
    """CSV or TSV with a header row; without a `delimiter`, a .tsv is tab-separated and any other file's
    delimiter is sniffed from its first lines (sniff_delimiter)."""
    if binary := _binary_problem(path):
        yield binary
        return
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(path)
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
