"""Browse data files, preview their first rows, and run the data doctor in the background."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, DirectoryTree, Label, Select, Static

from smolora_engine.data.preview import Preview, preview
from smolora_engine.data.render import NOT_RENDERED
from smolora_engine.data.shapes import SHAPES, resolve_columns

from ..dialogs import TextInputDialog
from ..engine_cli import run_engine
from .data_text import cell, problem_where, render_sample, report_histogram, report_summary
from .measured_table import MeasuredTable

DATA_SUFFIXES = {".txt", ".md", ".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow"}
# The roles each shape reads, and which of them a row may leave out.
ROLES = {"text": ("text",), "instruction": ("instruction", "input", "output", "system"),
         "prompt_completion": ("prompt", "completion"), "chat": ("messages", "tools")}
OPTIONAL_ROLES = {"input", "system", "tools"}


class DataTree(DirectoryTree):
    """Folders, and only the files smolora can read."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in DATA_SUFFIXES)]


class DataPane(Widget):
    """Left: a file tree; right: the preview of the selected file, and the doctor's report."""

    DEFAULT_CSS = """
    DataPane { layout: horizontal; height: 1fr; }
    DataPane DataTree { width: 32; border-right: solid $primary-background; }
    DataPane #data-right { width: 1fr; }
    DataPane #preview-info { height: auto; padding: 0 1; background: $panel; }
    DataPane #mapping { layout: grid; grid-size: 4; grid-columns: auto 1fr auto 1fr; grid-gutter: 0 1;
                        height: auto; padding: 0 1; background: $panel; }
    /* A column name longer than its box is cut with an ellipsis, never wrapped onto a second line. */
    DataPane #mapping SelectCurrent Static#label { text-wrap: nowrap; text-overflow: ellipsis; }
    DataPane #sample { display: none; height: auto; max-height: 12; padding: 0 1;
                       border-top: solid $primary-background; }
    DataPane #sample.-shown { display: block; }
    DataPane #preview { height: 1fr; min-height: 4; }
    /* What to act on first: the summary, then the problems; the histogram last. It scrolls when the
       terminal is short, and leaves the preview its rows. */
    DataPane #doctor { height: auto; max-height: 14; padding: 0 1; border-top: solid $primary-background; }
    DataPane #doctor-histogram { height: auto; }
    DataPane #problems-table { height: auto; max-height: 10; }
    DataPane #raw-row { display: none; height: auto; max-height: 6; padding: 0 1; background: $error 15%; }
    DataPane #doctor.-running { color: $text-muted; }
    DataPane .-error { color: $error; }
    """
    BINDINGS = [
        Binding("c", "check", "Check", id="data.check", tooltip="Run the data doctor on the project's data"),
        Binding("u", "use_file", "Use file", id="data.use", tooltip="Set data.path to the selected file"),
        Binding("a", "apply_mapping", "Apply map", id="data.mapping",
                tooltip="Set data.shape and data.columns to the shape and columns chosen above the preview"),
        Binding("v", "sample", "Sample", id="data.sample",
                tooltip="Show the next sample as the model sees it: chat template, trained text highlighted"),
        Binding("backspace", "parent", "Up", id="data.parent", tooltip="Browse the folder above this one"),
        Binding("g", "go_to", "Go to…", id="data.goto", tooltip="Type a folder or file to browse"),
    ]

    class UseFile(Message):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

    class Checked(Message):
        """The doctor has read the project's (saved) data: its longest sample in tokens, before truncation."""

        def __init__(self, longest: int | None):
            super().__init__()
            self.longest = longest

    class MappingChosen(Message):
        def __init__(self, shape: str, columns: dict[str, str]):
            super().__init__()
            self.shape, self.columns = shape, columns

    def __init__(self, project_name: str, root: Path, selected: Path | None = None, *, data: Path | None = None,
                 shape: str = "auto", columns: dict[str, str] | None = None, id: str | None = None):
        super().__init__(id=id)
        self.project_name, self.root, self.selected = project_name, root, selected
        self.last_preview: Preview | None = None
        self.report: dict | None = None
        self.shape, self.columns = shape, dict(columns or {})  # the mapping being edited
        # The project's saved data and its mapping: what the doctor and the sample view read.
        self.project_data: Path | None = data
        self.project_mapping = (shape, dict(columns or {}))
        self.sample_index = -1
        self._mapping_for: tuple = ()  # what the mapping editors were built for

    def compose(self) -> ComposeResult:
        yield DataTree(self.root)
        with Vertical(id="data-right"):
            yield Static("Select a file on the left to preview it.", id="preview-info", markup=False)
            yield Horizontal(id="mapping")
            yield MeasuredTable(id="preview", zebra_stripes=True, cursor_type="row")
            with VerticalScroll(id="sample"):
                yield Static(id="sample-text")
            yield Static(id="raw-row", markup=False)
            with VerticalScroll(id="doctor"):
                yield Static("Press c to check the project's data (the doctor runs in the background).",
                             id="doctor-summary", markup=False)
                yield MeasuredTable(id="problems-table", cursor_type="row")
                yield Static(id="doctor-histogram", markup=False)

    def on_mount(self) -> None:
        if self.selected is not None and self.selected.is_file():
            self.show(self.selected)

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.show(event.path)

    def show(self, path: Path, highlight: str | None = None) -> None:
        if path != self.selected:
            self._forget(path)
        self.selected = path
        self.query_one("#preview-info", Static).update(f"reading {path} …")
        self._load(path, highlight)

    def is_project_data(self, path: Path | None) -> bool:
        data = self.project_data
        return path is not None and data is not None and (path == data or data in path.parents)

    def _forget(self, path: Path) -> None:
        """Another file: nothing shown about the last one may look as if it were about this one."""
        self.sample_index = -1
        self.query_one("#sample").remove_class("-shown")
        self.query_one("#raw-row").display = False
        self.shape, self.columns = (self.project_mapping[0], dict(self.project_mapping[1])) \
            if self.is_project_data(path) else ("auto", {})
        self._mapping_for = ()
        if self.report is not None and self.is_project_data(path):
            self.show_report(self.report)
            return
        summary = self.query_one("#doctor-summary", Static)
        summary.remove_class("-error")
        data = f" ({self.project_data})" if self.project_data else ""
        summary.update(f"c checks the project's data{data}. This file is not it: u makes it the data, "
                       "then c checks it." if not self.is_project_data(path) else
                       "Press c to check the project's data (the doctor runs in the background).")
        self.query_one("#problems-table", DataTable).clear(columns=True).display = False
        self.query_one("#doctor-histogram", Static).update("")

    def project_settings(self, data_path: str, shape: str, columns: dict[str, str]) -> None:
        """The project's saved data settings changed (saved from Settings, or u / a and Ctrl+S)."""
        path = Path(data_path).expanduser() if data_path else None
        if path != self.project_data:
            self.report = None  # a report of the old data
        self.project_data, self.project_mapping = path, (shape, dict(columns))

    def action_parent(self) -> None:
        tree = self.query_one(DataTree)
        parent = Path(tree.path).resolve().parent
        if parent != Path(tree.path).resolve():
            tree.path = parent

    def action_go_to(self) -> None:
        def check(text: str) -> str | None:
            return None if text and Path(text).expanduser().exists() else "no such folder or file"

        def go(text: str | None) -> None:
            if not text:
                return
            target = Path(text).expanduser().resolve()
            self.query_one(DataTree).path = target if target.is_dir() else target.parent
            if target.is_file():
                self.show(target)

        self.app.push_screen(TextInputDialog("Browse which folder (or file)?", str(self.query_one(DataTree).path),
                                             check, "Go"), go)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load(self, path: Path, highlight: str | None) -> None:
        try:
            result = preview(str(path), n=200, columns=self.columns)
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
        total = (f"{result.total_rows:,} rows" if result.total_rows is not None else
                 "rows counted by the check (c)" if result.format in ("csv", "tsv", "json") else
                 "row count unknown (large file)")
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
        self._show_mapping()

    # ------------------------------------------------------------------ the column mapping

    def _show_mapping(self) -> None:
        """A shape chooser and, for each role of the shape, the column that fills it."""
        result = self.last_preview
        shape = self.shape if self.shape != "auto" else result.shape if result else None
        built_for = (result and result.source, tuple(result.columns) if result else (), self.shape, shape)
        if built_for == self._mapping_for:
            return  # a column was chosen: keep the editors (and the focus) as they are
        self._mapping_for = built_for
        box = self.query_one("#mapping", Horizontal)
        refocus = self.app.focused is not None and self.app.focused.parent is box
        box.remove_children()
        if result is None or result.format == "text":
            return
        widgets: list[Widget] = [Label("shape"), Select([("auto", "auto"), *((s, s) for s in SHAPES)],
                                                        value=self.shape, allow_blank=False, compact=True,
                                                        name="shape", tooltip="What each row is")]
        resolved = resolve_columns(set(result.columns), self.columns)
        for role in ROLES.get(shape or "", ()):
            value = resolved.get(role)
            widgets += [Label(role + ("?" if role in OPTIONAL_ROLES else "")),
                        Select([(c, c) for c in result.columns], prompt="(none)", compact=True,
                               value=value if value in result.columns else Select.NULL,
                               name=role, tooltip=f"The column that holds the {role}")]
        box.mount_all(widgets)
        if refocus:
            widgets[1].focus()

    @on(Select.Changed, "#mapping Select")
    def _mapping_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.name == "shape":
            if event.value == self.shape:
                return
            self.shape = str(event.value)
            # auto detects from the column names; another shape keeps only the roles it reads
            keep = ROLES.get(self.shape, ())
            self.columns = {role: col for role, col in self.columns.items() if role in keep}
        else:
            role = event.select.name or ""
            resolved = resolve_columns(set(self.last_preview.columns if self.last_preview else ()), self.columns)
            if event.value is Select.NULL:
                self.columns.pop(role, None)
            elif resolved.get(role) == event.value:
                return  # the editor showing what it already has
            else:
                self.columns[role] = str(event.value)
        if self.selected is not None:
            self.show(self.selected)  # detect the shape again with the new mapping

    def action_apply_mapping(self) -> None:
        if self.last_preview is None:
            self.notify("select a data file first", severity="warning")
            return
        names = set(self.last_preview.columns)
        defaults = resolve_columns(names, {})
        # Only what differs from the names smolora finds by itself is written.
        columns = {role: col for role, col in self.columns.items() if defaults.get(role) != col}
        self.post_message(self.MappingChosen(self.shape, columns))

    # ------------------------------------------------------------------ one sample as the model sees it

    def action_sample(self) -> None:
        self.sample_index += 1
        self.query_one("#sample").add_class("-shown")
        self.query_one("#sample-text", Static).update(
            f"rendering sample {self.sample_index + 1} with the model's chat template … (saved settings)")
        self._sample(self.sample_index)

    @work(exclusive=True, group="sample", exit_on_error=False)
    async def _sample(self, index: int) -> None:
        result = await run_engine("data", "sample", "--project", self.project_name, "--index", str(index), "--json")
        out = self.query_one("#sample-text", Static)
        try:
            sample = json.loads(result.stdout)
        except json.JSONDecodeError:
            if result.returncode == NOT_RENDERED:  # this sample is a problem row: v goes on to the next
                out.update(Text.assemble((result.message, "red"), "\nv: the next sample"))
                return
            self.sample_index = -1  # past the last sample (or no data): v starts again
            out.update(Text(result.message, style="red"))
            return
        out.update(render_sample(sample, index))

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
        if report.get("error"):
            return
        longest = (report.get("tokens") or {}).get("max")
        self.post_message(self.Checked(longest if isinstance(longest, int) else None))

    def show_report(self, report: dict) -> None:
        """The doctor's report; when the data cannot be used at all, its error first, then every problem row."""
        self.report = report
        summary = self.query_one("#doctor-summary", Static)
        summary.set_class(bool(report.get("error")), "-error")
        self._show_summary()
        table = self.query_one("#problems-table", DataTable)
        table.clear(columns=True)
        table.add_columns("where", "kind", "problem")
        for index, problem in enumerate(report.get("problems", [])):
            table.add_row(problem_where(problem), problem.get("kind", ""), problem.get("reason", ""), key=str(index))
        table.display = table.row_count > 0  # no header of an empty table between the summary and the bars

    def _show_summary(self) -> None:
        self.query_one("#doctor-summary", Static).update(report_summary(self.report or {}))
        bars = self.query_one("#doctor-histogram", Static)
        bars.update(report_histogram(self.report or {}, bars.content_size.width or 80))

    def on_resize(self) -> None:
        if self.report is not None:  # the histogram's bars fit the new width
            self.call_after_refresh(self._show_summary)

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
