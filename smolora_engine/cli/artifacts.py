"""`smolora merge, export`: the adapter merged into a Hugging Face folder, and GGUF for llama.cpp / Ollama."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .common import command, fail


def _event_printer(as_json: bool):
    """Progress of a merge/export: JSON events on stdout (for the TUI), or plain lines."""
    from .. import events as ev

    def emit(event: ev.Event) -> None:
        if as_json:
            print(event.to_json(), flush=True)
        elif isinstance(event, ev.Progress):
            print(f"[{event.fraction or 0:4.0%}] {event.message}", file=sys.stderr, flush=True)
    return emit


def _artifact_command(args: argparse.Namespace, work: Callable[[Callable], dict]) -> int:
    from .. import events as ev
    from ..export import ExportError
    from ..runs import NoAdapter

    emit = _event_printer(args.json)
    try:
        report = work(emit)
    except (NoAdapter, ExportError) as exc:
        if args.json:
            emit(ev.Error(message=str(exc), hint="see the message"))
        return fail(str(exc))
    if args.json:
        emit(ev.Finished(path=report["path"], details=report))
    return 1 if report.get("ok", True) is False else 0  # None: nothing could check it, and it says so


@command("merge")
def cmd_merge(args: argparse.Namespace) -> int:
    from ..merge import merge_run
    from ..projects import load_project

    load_project(args.project)

    def work(emit):
        report = merge_run(args.project, args.run, args.checkpoint, emit)
        if not args.json:
            verdict = "ok" if report["ok"] else "MISMATCH"
            print(f"merged run {report['run_id']} into {report['path']}")
            print(f"check: max |logit difference| vs base + adapter = {report['max_abs_logit_diff']:.2e} "
                  f"({report['dtype']}, {report['prompts']} prompts): {verdict}")
        return report
    return _artifact_command(args, work)


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_run
    from ..projects import load_project

    quant = args.quant or load_project(args.project).output.export_quant

    def work(emit):
        report = export_run(args.project, args.run, args.checkpoint, quant, emit)
        if not args.json:
            print(f"wrote {report['path']} ({report['bytes'] / 2**20:.0f} MiB, {report['quant']}, "
                  f"{report['family']})")
            print(f"wrote {report['modelfile']} ({report['ollama_template']})")
            for name, check in report["checks"].items():
                print(f"check ({name}): next-token agreement with the merged model {check['agreement']:.1%} of "
                      f"{check['positions']} positions, last token {check['next_token_agreement']}, largest "
                      f"log-prob difference {check['max_abs_logprob_diff']:.3f}, same tokenization: "
                      f"{'yes' if check['same_tokenization'] else 'NO'}")
                if "as_stored" in check:
                    stored = check["as_stored"]
                    print(f"  against the merged model rounded as the file stores it: {stored['agreement']:.1%}, "
                          f"largest log-prob difference {stored['max_abs_logprob_diff']:.3f}")
                if "chat" in check:
                    chat = check["chat"]
                    print(f"  one chat turn through the file's template: "
                          f"{'stopped at the end of the turn' if chat['stopped_at_end_of_turn'] else 'did NOT stop'}"
                          f", {'the merged model’s answer' if chat['same_answer'] else 'a different answer'}")
            if report.get("error"):
                print(report["error"])
            for reason in report["unchecked"]:
                print(f"not checked: {reason}")
            verdict = "ok" if report["ok"] else "FAILED" if report["ok"] is False else "NOT CHECKED"
            print(f"export check: {verdict}")
            print(f"use it: cd {Path(report['path']).parent} && ollama create {args.project} "
                  f"-f {Path(report['modelfile']).name}")
        return report
    return _artifact_command(args, work)
