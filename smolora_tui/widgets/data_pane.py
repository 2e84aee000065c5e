"""Browse data files, preview their first rows, and run the data doctor in the background."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, DirectoryTree, Static

from smolora_engine.data.preview import Preview, preview

from ..engine_cli import run_engine

DATA_SUFFIXES = {".txt", ".md", ".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow"}
CELL_WIDTH = 60


class DataTree(DirectoryTree):
    """Folders, and only the files smolora can read."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in DATA_SUFFIXES)]


def cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "⏎")
    return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 1] + "…"


def histogram(buckets: list, width: int = 40) -> str:
    """The doctor's token-length histogram ([low, high, count] buckets) as text bars."""
    if not buckets:
        return ""
    top = max(count for _low, _high, count in buckets) or 1
    return "\n".join(f"{low:>6}-{high:<6} {'█' * round(count / top * width)} {count}"
                     for low, high, count in buckets)


class DataPane(Widget):
    """Left: a file tree; right: the preview of the selected file, and the doctor's report."""

    DEFAULT_CSS = """
    DataPane { layout: horizontal; height: 1fr; }
    DataPane DataTree { width: 32; border-right: solid $primary-background; }
    DataPane #data-right { width: 1fr; }
    DataPane #preview-info { height: auto; padding: 0 1; background: $panel; }
    DataPane #preview { height: 1fr; }
    DataPane #doctor { height: auto; max-height: 14; padding: 0 1; border-top: solid $primary-background; }
    DataPane #problems-table { height: auto; max-height: 10; }
    DataPane #raw-row { display: none; height: auto; max-height: 6; padding: 0 1; background: $error 15%; }
    DataPane #doctor.-running { color: $text-muted; }
    DataPane .-error { color: $error; }
    """
    BINDINGS = [
        Binding("c", "check", "Check data", id="data.check", tooltip="Run the data doctor on the project's data"),
        Binding("u", "use_file", "Use this file", id="data.use", tooltip="Set data.path to the selected file"),
    ]

    class UseFile(Message):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

    def __init__(self, project_name: str, root: Path, selected: Path | None = None, *, id: str | None = None):
        super().__init__(id=id)
        self.project_name, self.root, self.selected = project_name, root, selected
        self.last_preview: Preview | None = None
        self.report: dict | None = None

    def compose(self) -> ComposeResult:
        yield DataTree(self.root)
        with Vertical(id="data-right"):
            yield Static("Select a file on the left to preview it.", id="preview-info", markup=False)
            yield DataTable(id="preview", zebra_stripes=True, cursor_type="row")
            yield Static(id="raw-row", markup=False)
            with Vertical(id="doctor"):
                yield Static("Press c to check the project's data (the doctor runs in the background).",
                             id="doctor-summary", markup=False)
                yield DataTable(id="problems-table", cursor_type="row")

    def on_mount(self) -> None:
        if self.selected is not None and self.selected.is_file():
            self.show(self.selected)

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.show(event.path)

    def show(self, path: Path, highlight: str | None = None) -> None:
        self.selected = path
        self.query_one("#preview-info", Static).update(f"reading {path} …")
        self._load(path, highlight)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load(self, path: Path, highlight: str | None) -> None:
        try:
            result = preview(str(path), n=200)
        except Exception as exc:  # unreadable file: say so, keep the app
            self.app.call_from_thread(self._failed, path, exc)
            return
        self.app.call_from_thread(self._show, result, highlight)

    def _failed(self, path: Path, exc: Exception) -> None:
        info = self.query_one("#preview-info", Static)
        info.update(f"{path}: {exc}")
        info.add_class("-error")
        self.query_one("#preview", DataTable).clear(columns=True)

    def _show(self, result: Preview, highlight: str | None) -> None:
        self.last_preview = result
        info = self.query_one("#preview-info", Static)
        info.remove_class("-error")
        total = f"{result.total_rows:,} rows" if result.total_rows is not None else "row count unknown (large file)"
        problems = f", {len(result.problems)} unreadable in the first rows" if result.problems else ""
        info.update(f"{result.source}  ·  {result.format}  ·  shape: {result.shape or 'not recognised'}  ·  "
                    f"{total}{problems}")
        table = self.query_one("#preview", DataTable)
        table.clear(columns=True)
        table.add_column("where", key="where")
        for name in result.columns:
            table.add_column(name, key=name)
        target = None
        for index, (row, where) in enumerate(zip(result.rows, result.where)):
            table.add_row(Path(where).name, *(cell(row.get(c, "")) for c in result.columns), key=str(index))
            if highlight is not None and where == highlight:
                target = index
        if target is not None:
            table.move_cursor(row=target)
            table.focus()

    def action_use_file(self) -> None:
        if self.selected is not None:
            self.post_message(self.UseFile(self.selected))

    # ------------------------------------------------------------------ the doctor, as a worker process

    def action_check(self) -> None:
        summary = self.query_one("#doctor-summary", Static)
        summary.update("checking … (tokenizing every sample in a worker process)")
        self.query_one("#doctor").add_class("-running")
        self._check()

    @work(exclusive=True, group="doctor", exit_on_error=False)
    async def _check(self) -> None:
        result = await run_engine("data", "check", "--project", self.project_name, "--json")
        self.query_one("#doctor").remove_class("-running")
        try:
            report = json.loads(result.stdout or "null")
        except json.JSONDecodeError:
            report = None
        if not isinstance(report, dict):
            message = result.stderr.strip().splitlines()[-1:] or ["the doctor failed"]
            summary = self.query_one("#doctor-summary", Static)
            summary.update(message[0])
            summary.add_class("-error")
            return
        self.show_report(report)

    def show_report(self, report: dict) -> None:
        self.report = report
        summary = self.query_one("#doctor-summary", Static)
        summary.remove_class("-error")
        tokens = report.get("tokens") or {}
        problems = report.get("problems", [])
        lines = [f"{report.get('rows_kept', 0):,} usable of {report.get('rows_read', 0):,} rows ({report.get('shape')})"
                 f"  ·  {report.get('train_rows', 0):,} train / {report.get('eval_rows', 0):,} eval"
                 f"  ·  {report.get('duplicates', 0):,} duplicates  ·  {len(problems):,} problems"]
        if tokens:
            lines.append(f"tokens per sample: min {tokens.get('min')}, median {tokens.get('median')}, "
                         f"p95 {tokens.get('p95')}, max {tokens.get('max')}  ·  {tokens.get('per_epoch', 0):,} "
                         f"per epoch, {tokens.get('trained_per_epoch', 0):,} trained  ·  "
                         f"{report.get('truncated', 0)} truncated")
        lines.append(histogram(report.get("histogram") or []))
        summary.update("\n".join(line for line in lines if line))
        table = self.query_one("#problems-table", DataTable)
        table.clear(columns=True)
        table.add_columns("where", "kind", "problem")
        for index, problem in enumerate(problems):
            table.add_row(problem_where(problem), problem.get("kind", ""), problem.get("reason", ""), key=str(index))

    @on(DataTable.RowSelected, "#problems-table")
    def _open_problem(self, event: DataTable.RowSelected) -> None:
        """Selecting a problem shows that row: its raw text, and its file's preview."""
        event.stop()
        problem = (self.report or {}).get("problems", [])[int(event.row_key.value)]
        file = problem.get("file")
        if file and Path(file).is_file():
            self.show(Path(file), highlight=problem_where(problem))
            if problem.get("line"):
                self._raw_line(Path(file), int(problem["line"]), problem.get("reason", ""))

    @work(thread=True, exclusive=True, group="raw", exit_on_error=False)
    def _raw_line(self, path: Path, line: int, reason: str) -> None:
        import itertools

        with open(path, encoding="utf-8", errors="replace") as handle:
            text = next(itertools.islice(handle, line - 1, line), "").rstrip("\n")
        self.app.call_from_thread(self._show_raw, f"{path.name}:{line}  {reason}\n{text}")

    def _show_raw(self, text: str) -> None:
        raw = self.query_one("#raw-row", Static)
        raw.update(text)
        raw.display = True


def problem_where(problem: dict) -> str:
    file, line, row = problem.get("file", ""), problem.get("line"), problem.get("row")
    return f"{file}:{line}" if line is not None else f"{file} row {row}" if row is not None else file
