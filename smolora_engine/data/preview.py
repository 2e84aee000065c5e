"""Preview: the first rows of any supported source, fast on huge files.

Readers are streams, so taking the head reads only what it needs. The total row
count is given when it is cheap: Parquet's metadata, or counting newlines in a
file under COUNT_LIMIT bytes; otherwise it is None (unknown).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .readers import detect_format, read_source
from .rows import DataProblem, Row
from .shapes import detect_shape

COUNT_LIMIT = 64 * 1024 * 1024


@dataclass
class Preview:
    source: str
    format: str
    columns: list[str]
    rows: list[dict[str, Any]]
    where: list[str]  # file:line of each row
    problems: list[DataProblem] = field(default_factory=list)
    total_rows: int | None = None
    shape: str | None = None


def _cheap_count(path: Path, fmt: str) -> int | None:
    if not path.is_file():
        return None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return None
    if fmt in ("jsonl", "text") and path.stat().st_size <= COUNT_LIMIT:
        count = 0
        with open(path, "rb") as handle:
            for line in handle:
                count += bool(line.strip())
        return count
    return None


def preview(source: str, n: int = 20, fmt: str = "auto", text_split: str = "line",
            columns: dict[str, str] | None = None) -> Preview:
    path = Path(source).expanduser()
    resolved = detect_format(path, fmt) if path.exists() else "hub"
    rows, where, problems = [], [], []
    for item in itertools.islice(read_source(source, fmt, text_split), n * 5):
        if isinstance(item, Row):
            rows.append(item.data)
            where.append(item.where)
            if len(rows) >= n:
                break
        else:
            problems.append(item)
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    return Preview(str(source), resolved, names, rows, where, problems,
                   _cheap_count(path, resolved), detect_shape(rows, columns or {}))
