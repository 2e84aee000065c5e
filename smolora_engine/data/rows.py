"""What every reader yields: a `Row` of data, or a `DataProblem` naming its file and line (or row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


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
