"""Merge a run's adapter into a standard model folder, and export it as GGUF + an Ollama Modelfile.

Both run as `smolora merge|export --json` child processes whose progress events
drive the bar; their self-checks (logit difference, GGUF agreement) are shown
with the output paths, which `c` copies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, Label, ProgressBar, RichLog, Select, Static

from smolora_engine import events as ev
from smolora_engine.export import export_dir, read_export_report
from smolora_engine.export.quants import DESCRIPTIONS, QUANTS, llamacpp_available, needs_llamacpp
from smolora_engine.merge import merged_dir, read_merge_report
from smolora_engine.runs import checkpoints, list_runs, run_dir

from ..engine_cli import reap, spawn
from .rewrap_log import RewrapLog
from .run_text import short_id



def quant_options() -> list[tuple[str, str]]:
    """The GGUF types, k-quants marked when llama.cpp's quantizer is not installed."""
    usable = llamacpp_available()
    return [(f"{quant} ({DESCRIPTIONS[quant]}{'' if usable or not needs_llamacpp(quant) else '; needs llama.cpp'})",
             quant) for quant in QUANTS]
Source = tuple[str, int | None]  # (run id, checkpoint step or None for the final adapter)


def adapter_sources(project: str) -> list[tuple[str, Source]]:
    """Every adapter that can be merged: each run's final adapter and its complete checkpoints, newest first."""
    options: list[tuple[str, Source]] = []
    for info in reversed(list_runs(project)):
        if (info.folder / "adapter" / "adapter_config.json").is_file():
            options.append((f"{short_id(info.run_id)} final (step {info.step})", (info.run_id, None)))
        for step, path, complete in reversed(checkpoints(info.folder)):
            if complete and (path / "adapter_config.json").is_file():
                options.append((f"{short_id(info.run_id)} checkpoint {step}", (info.run_id, step)))
    return options


def describe_merge(report: dict | None) -> Text:
    if report is None:
        return Text("not merged yet: press m", style="dim")
    ok = report.get("ok")
    text = Text.assemble(("merged ", "bold"), ("✓ verified" if ok else "✗ check failed", "green" if ok else "bold red"))
    text.append(f"\n  largest logit difference vs base + adapter: {report.get('max_abs_logit_diff', 0):.2e}"
                f" ({report.get('dtype', '?')}, {report.get('prompts', '?')} prompts)")
    text.append(f"\n  folder: {report.get('path', '')}")
    return text


def describe_export(report: dict | None) -> Text:
    if report is None:
        return Text("not exported yet: press e", style="dim")
    ok = report.get("ok")
    checks = report.get("checks") or ({"transformers": report["check"]} if report.get("check") else {})
    verdict = (("✓ verified", "green") if ok else ("✗ check failed", "bold red") if ok is False
               else ("? not checked", "bold yellow"))
    text = Text.assemble(("GGUF ", "bold"), (report.get("quant", "?") + " "), verdict)
    for name, check in checks.items():
        text.append(f"\n  {name}: argmax agreement {check.get('agreement', 0):.1%}, largest log-prob difference "
                    f"{check.get('max_abs_logprob_diff', 0):.3f}, same tokenization: "
                    f"{'yes' if check.get('same_tokenization') else 'NO'}")
        if check.get("as_stored"):
            text.append(f"\n    rounded as stored: agreement {check['as_stored']['agreement']:.1%}")
        chat = check.get("chat")
        if chat:
            text.append(f"\n    chat turn: {'stops at the end of the turn' if chat['stopped_at_end_of_turn'] else 'did not stop'}"
                        f", {'same answer as the merged model' if chat['same_answer'] else 'answer differs'}")
    if report.get("error"):
        text.append(f"\n  {report['error']}", style="bold red")
    for reason in report.get("unchecked", []):
        text.append(f"\n  {reason}", style="dim")
    text.append(f"\n  file: {report.get('path', '')} ({report.get('bytes', 0) / 2**20:.0f} MB)")
    modelfile = report.get("modelfile", "")
    text.append(f"\n  Ollama: {modelfile}  (ollama create NAME -f {Path(modelfile).name or 'Modelfile'})")
    return text


class MergePane(Widget):
    DEFAULT_CSS = """
    MergePane { layout: horizontal; height: 1fr; }
    MergePane #merge-side { width: 38; padding: 0 1; border-right: solid $primary-background; }
    MergePane #merge-side Label { margin-top: 1; color: $text-muted; }
    MergePane #merge-side Select { width: 1fr; }
    MergePane #merge-buttons { height: auto; margin-top: 1; }
    MergePane #merge-buttons Button { width: 1fr; min-width: 8; }
    MergePane #merge-main { width: 1fr; padding: 0 1; }
    MergePane #merge-status { height: auto; }
    MergePane #merge-progress { height: 1; }
    MergePane #merge-progress Bar { width: 1fr; }
    MergePane .report { height: auto; margin-top: 1; }
    MergePane #merge-log { height: 1fr; margin-top: 1; border-top: solid $primary-background;
                           scrollbar-gutter: stable; }
    """
    BINDINGS = [
        Binding("m", "merge", "Merge", id="merge.merge", tooltip="Merge the adapter into a model folder"),
        Binding("e", "export", "Export GGUF", id="merge.export", tooltip="Export GGUF + Ollama Modelfile"),
        Binding("c", "copy", "Copy path", id="merge.copy", tooltip="Copy the newest output path"),
    ]

    def __init__(self, project_name: str, quant: str = "q8_0", **kwargs):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.quant = quant if quant in QUANTS else "q8_0"  # the project's output.export_quant
        self.busy = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="merge-side"):
            yield Label("Adapter: a run, or a checkpoint")
            yield Select([], prompt="no finished run yet", id="merge-source", compact=True)
            yield Label("GGUF type")
            yield Select(quant_options(), value=self.quant, allow_blank=False, id="quant", compact=True)
            with Horizontal(id="merge-buttons"):
                yield Button("Merge", id="merge", variant="primary", compact=True, tooltip="m")
                yield Button("Export", id="export", variant="success", compact=True, tooltip="e")
        with Vertical(id="merge-main"):
            yield Static("Pick an adapter, then merge (m) or export (e).", id="merge-status")
            yield ProgressBar(total=1, id="merge-progress", show_eta=False)
            yield Static(id="merge-result", classes="report")
            yield Static(id="export-result", classes="report")
            yield RewrapLog(id="merge-log", max_lines=300, wrap=True, min_width=20, markup=False)

    def on_mount(self) -> None:
        self.refresh_sources()

    @work(thread=True, exclusive=True, group="merge-sources")
    def refresh_sources(self) -> None:
        options = adapter_sources(self.project_name)
        self.app.call_from_thread(self._set_sources, options)

    def _set_sources(self, options: list[tuple[str, Source]]) -> None:
        select = self.query_one("#merge-source", Select)
        current = select.value
        select.prompt = "choose an adapter" if options else "no finished run yet"  # the blank option says what is true
        select.set_options(options)
        values = [value for _label, value in options]
        finals = [value for value in values if value[1] is None]  # the newest run's final adapter, if any
        if current in values:
            select.value = current
        elif values:
            select.value = finals[0] if finals else values[0]
        self._show_reports()

    @property
    def source(self) -> Source | None:
        value = self.query_one("#merge-source", Select).value
        return value if isinstance(value, tuple) else None

    def _folders(self) -> tuple[Path, Path] | None:
        if self.source is None:
            return None
        folder = run_dir(self.project_name, self.source[0])
        return merged_dir(folder, self.source[1]), export_dir(folder, self.source[1])

    @on(Select.Changed, "#merge-source")
    def _show_reports(self) -> None:
        folders = self._folders()
        merge_result = self.query_one("#merge-result", Static)
        export_result = self.query_one("#export-result", Static)
        if folders is None:
            merge_result.update(Text("No adapter yet: finish a training run (3 Train), or stop one with a "
                                     "checkpoint.", style="dim"))
            export_result.update("")
        else:
            merge_result.update(describe_merge(read_merge_report(folders[0])))
            export_result.update(describe_export(read_export_report(folders[1])))
        self._buttons()

    def _buttons(self) -> None:
        idle = not self.busy and self.source is not None
        self.query_one("#merge", Button).disabled = not idle
        self.query_one("#export", Button).disabled = not idle
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("merge", "export") and self.is_mounted:
            return None if self.query_one(f"#{action}", Button).disabled else True
        return True

    # ------------------------------------------------------------------ running

    @on(Button.Pressed, "#merge")
    def action_merge(self) -> None:
        if self.source is not None and not self.busy:
            self._run("merge")

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        if self.source is not None and not self.busy:
            self._run("export", "--quant", str(self.query_one("#quant", Select).value))

    def _args(self, command: str, *extra: str) -> list[str]:
        run_id, step = self.source
        args = [command, "--project", self.project_name, "--run", run_id, "--json", *extra]
        return args + (["--checkpoint", str(step)] if step is not None else [])

    @work(exclusive=True, group="merge-run")
    async def _run(self, command: str, *extra: str) -> None:
        status = self.query_one("#merge-status", Static)
        bar = self.query_one("#merge-progress", ProgressBar)
        log = self.query_one("#merge-log", RichLog)
        self.busy = command
        self._buttons()
        bar.update(total=1.0, progress=0)
        status.update(f"{command}: starting…")
        log.write(Text(f"$ smolora {' '.join(self._args(command, *extra))}", style="dim"))
        proc = await spawn(*self._args(command, *extra))
        stderr = asyncio.create_task(proc.stderr.read())
        final: ev.Event | None = None
        try:
            async for raw in proc.stdout:
                event = ev.parse_line(raw.decode(errors="replace"))
                if isinstance(event, ev.Progress):
                    self.show_progress(command, event)
                elif isinstance(event, (ev.Finished, ev.Error)):
                    final = event
            code = await proc.wait()
            err = (await stderr).decode(errors="replace")
        except asyncio.CancelledError:  # the screen or the app went away
            await reap(proc, stderr)
            raise
        finally:
            self.busy = ""
        if isinstance(final, ev.Finished):
            ok = final.details.get("ok", True)
            bar.update(progress=1.0)
            note, style = {True: ("", "green"), False: (" — but the check failed, see below", "bold red"),
                           None: (" — nothing here could check it, see below", "bold yellow")}[ok]
            status.update(Text(f"{command}: done{note}", style=style))
            self.notify(f"{command} finished: {final.path}", severity="information" if ok else "warning")
        else:
            message = final.message if isinstance(final, ev.Error) else \
                (err.strip().splitlines() or [f"exited with status {code}"])[-1]
            status.update(Text(f"{command} failed: {message}", style="bold red"))
            log.write(Text(err.strip()[-2000:], style="red"))
        self._show_reports()

    def show_progress(self, command: str, event: ev.Progress) -> None:
        self.query_one("#merge-status", Static).update(f"{command}: {event.message}")
        self.query_one("#merge-log", RichLog).write(event.message)
        if event.fraction is not None:
            self.query_one("#merge-progress", ProgressBar).update(progress=event.fraction)

    def output_path(self) -> str | None:
        """The newest output: the GGUF if exported, else the merged folder."""
        folders = self._folders()
        if folders is None:
            return None
        export = read_export_report(folders[1])
        if export:
            return export.get("path")
        merge = read_merge_report(folders[0])
        return merge.get("path") if merge else None

    def action_copy(self) -> None:
        path = self.output_path()
        if path is None:
            self.notify("nothing to copy yet: merge or export first", severity="warning")
            return
        self.app.copy_to_clipboard(path)
        self.notify(f"copied {path}")
