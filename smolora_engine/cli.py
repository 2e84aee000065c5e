"""`smolora`: the headless engine's command line. Everything the TUI does, this does too."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from . import paths
from .estimate import FactsError, estimate_for, read_facts
from .project import ProjectError, blocking, field_doc, field_docs, parse_assignment, set_value, warnings_of

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        COMMANDS[name] = func
        return func
    return register


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 2) -> int:
    print(f"smolora: {message}", file=sys.stderr)
    return code


@command("init")
def cmd_init(args: argparse.Namespace) -> int:
    from .projects import create_project

    project = create_project(args.name, model=args.model, data=args.data, description=args.description or "")
    print(f"created project {project.name!r} in {paths.project_file(project.name)}")
    if not project.data.path:
        print(f"next: smolora config {project.name} data.path=/path/to/your/data")
    return 0


@command("projects")
def cmd_projects(args: argparse.Namespace) -> int:
    from .projects import list_projects

    entries = list_projects()
    if args.json:
        print_json([
            {"name": e.name, "path": str(e.path), "usable": e.usable,
             "model": e.project.model.base if e.project else None,
             "data": e.project.data.path if e.project else None,
             "error": e.error, "problems": [p.message for p in e.problems]}
            for e in entries
        ])
        return 0
    if not entries:
        print(f"no projects yet in {paths.projects_dir()}; create one with `smolora init NAME`")
        return 0
    for e in entries:
        if e.error:
            print(f"{e.name:<24} UNREADABLE  {e.error}")
        else:
            assert e.project is not None
            flag = "" if e.usable else "  (has problems: smolora show " + e.name + ")"
            print(f"{e.name:<24} {e.project.model.base:<28} {e.project.data.path or '(no data yet)'}{flag}")
    return 0


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    from .projects import read_project

    entry = read_project(args.name)
    if entry.error:
        return fail(entry.error)
    assert entry.project is not None
    if args.json:
        print_json({"path": str(entry.path), "project": entry.project.to_dict(),
                    "problems": [{"field": p.field, "message": p.message} for p in entry.problems]})
        return 0
    print(f"# {entry.path}")
    print(entry.project.to_toml(), end="")
    for p in entry.problems:
        print(f"problem: {p.message}", file=sys.stderr)
    return 2 if blocking(entry.problems) else 0


@command("config")
def cmd_config(args: argparse.Namespace) -> int:
    from .projects import load_project, save_project

    project = load_project(args.name)
    problems = []
    for assignment in args.assignments:
        try:
            key, value = parse_assignment(assignment)
        except ValueError as exc:
            return fail(str(exc))
        project, problems = set_value(project, key, value)
        if bad := [p for p in problems if (p.field == key or p.field.startswith(key + ".")) and not p.warning]:
            for p in bad:
                print(f"smolora: {f'unknown key {p.field}' if p.unknown_key else p.message}", file=sys.stderr)
            if doc := field_doc(key):
                print(f"  {key}: {doc}", file=sys.stderr)
            elif any(p.unknown_key for p in bad):
                section = key.split(".")[0]
                known = [k for k, *_ in field_docs() if k.startswith(section + ".")]
                print("  known keys: " + ", ".join(known or [k for k, *_ in field_docs()]), file=sys.stderr)
            print("nothing was saved", file=sys.stderr)
            return 2
    if bad := blocking(problems):
        for p in bad:
            print(f"smolora: {p.message}", file=sys.stderr)
        print("nothing was saved", file=sys.stderr)
        return 2
    path = save_project(project)
    print(f"saved {path}")
    for p in warnings_of(problems):
        print(f"smolora: warning: {p.message}", file=sys.stderr)
    return 0


@command("device")
def cmd_device(args: argparse.Namespace) -> int:
    from .device import choose_device, device_memory

    choice = choose_device(args.device, args.dtype)
    if args.json:
        print_json({"device": choice.device, "dtype": choice.dtype, "reason": choice.reason,
                    "memory_total": device_memory(choice.device)})
    else:
        print(choice.describe())
    return 0


@command("model")
def cmd_model(args: argparse.Namespace) -> int:
    """Resolve a model and prepare it (convert the embedded GGUF once)."""
    import time

    from .models import ensure_model, resolve_model

    source = resolve_model(args.spec)
    started = time.monotonic()
    folder = ensure_model(args.spec, progress=lambda msg: print(msg, file=sys.stderr))
    info = {"spec": args.spec, "kind": source.kind, "path": str(folder),
            "prepared_s": round(time.monotonic() - started, 2)}
    try:
        facts = read_facts(folder)
    except FactsError as exc:
        facts, info["facts_error"] = None, str(exc)
    info["facts"] = facts.to_dict() if facts else None
    if args.json:
        print_json(info)
        return 0
    print(f"{args.spec}: {source.kind} model at {folder}")
    if facts:
        print(f"{facts.architecture}: {facts.params:,} parameters, {facts.layers} layers, hidden {facts.hidden}, "
              f"vocabulary {facts.vocab:,}")
        print("linear layers (lora.target_modules): "
              + ", ".join(facts.describe_layer(name) for name in facts.linear))
    return 0


@command("estimate")
def cmd_estimate(args: argparse.Namespace) -> int:
    """The memory a project's training needs, from its model's config and safetensors headers."""
    from .device import choose_device
    from .models import ensure_model
    from .projects import load_project

    project = load_project(args.name)
    facts = read_facts(ensure_model(project.model.base, progress=lambda msg: print(msg, file=sys.stderr)))
    device = choose_device(project.model.device, project.model.dtype).device
    result = estimate_for(facts, project, device)
    if args.json:
        print_json({"total": result.total, "parts": dict(result.parts()), "device": result.device,
                    "dtype": result.dtype, "adapter_params": result.adapter_params})
    else:
        print(result.describe())
    return 0


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from .runs import AlreadyRunning
    from .training import TrainingRefused, run_training, start_detached

    try:
        if args.detach:
            run_id = start_detached(args.project, args.resume, args.max_steps)
            print(run_id)
            print(f"training in the background; follow it with `smolora runs --project {args.project} --follow` "
                  f"or `smolora-tui --project {args.project}`", file=sys.stderr)
            return 0
        if "RANK" not in os.environ:  # not yet under a launcher: wrap in the project's one, if any
            from .projects import load_project
            from .training.launch import launcher_command, worker_command

            project = load_project(args.project)
            if project.training.launcher != "none" and project.training.num_processes > 1:
                from .training import prepare_run

                run_id, _ = prepare_run(args.project, args.run_id, args.resume, args.max_steps)
                cmd = launcher_command(project, worker_command(args.project, run_id, args.resume, args.max_steps))
                return subprocess.call(cmd)
        return run_training(args.project, args.run_id, args.resume, args.max_steps)
    except (TrainingRefused, AlreadyRunning) as exc:
        return fail(str(exc))


@command("stop")
def cmd_stop(args: argparse.Namespace) -> int:
    from .training import TrainingRefused, stop_run

    try:
        print(stop_run(args.project, args.timeout, args.kill, say=lambda line: print(line, flush=True)))
    except TrainingRefused as exc:
        return fail(str(exc))
    return 0


@command("runs")
def cmd_runs(args: argparse.Namespace) -> int:
    from .projects import load_project
    from .runs import list_runs

    load_project(args.project)
    if args.compare is not None:
        return compare(args.project, args.compare, args.json)
    runs = list_runs(args.project)
    if args.follow:
        return follow(args.project, args.run, runs)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs yet; start one with `smolora train --project {args.project}`")
    for run in runs:
        print(f"{run.run_id}  {run.describe()}" + (f"  ({run.error})" if run.error else ""))
    return 0


def compare(project: str, run_ids: list[str], as_json: bool) -> int:
    from .compare import CompareError, compare_runs, comparison_table, format_table

    try:
        comparison = compare_runs(project, run_ids)
    except CompareError as exc:
        return fail(str(exc))
    if as_json:
        print_json(comparison.to_dict())
        return 0
    if not comparison.differing and len(comparison.runs) > 1:
        print("the runs trained with the same settings", file=sys.stderr)
    print(format_table(comparison_table(comparison)))
    return 0


def follow(project: str, run_id: str | None, runs) -> int:
    """`smolora runs --follow`: a run's log as it grows; exit 0 when it finished or was stopped, 1 otherwise."""
    from .runs import console_text, follow_run

    if run_id is None:
        if not runs:
            return fail(f"project {project!r} has no runs to follow; start one with "
                        f"`smolora train --project {project} --detach`")
        run_id = runs[-1].run_id
    elif run_id not in {r.run_id for r in runs}:
        return fail(f"project {project!r} has no run {run_id!r}; `smolora runs --project {project}` lists them")

    def say(level: str, text: str) -> None:
        print(console_text(level, text), flush=True)

    print(f"run {run_id} (Ctrl+C stops following, not the run)", file=sys.stderr)
    try:
        info = follow_run(project, run_id, say)
    except KeyboardInterrupt:
        return 130
    print(f"run {run_id}: {info.describe()}")
    return 0 if info.status in ("finished", "stopped") else 1


@command("eval")
def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.prompts import PromptsError
    from .evaluation.score import evaluate, print_report
    from .runs import NoAdapter

    try:
        result = evaluate(args.project, args.run, args.checkpoint, args.merged, args.limit,
                          progress=lambda message: print(message, file=sys.stderr, flush=True))
    except (NoAdapter, PromptsError, ValueError) as exc:
        for problem in getattr(exc, "problems", [])[:20]:
            print(f"  {problem}", file=sys.stderr)
        return fail(str(exc))
    if args.json:
        print_json(result)
    else:
        print_report(result)
    return 0


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import setup_demo

    project = setup_demo()
    if args.setup:
        print(f"demo project {project.name!r} is ready (data: {project.data.path})")
        return 0
    from .demo_walk import walk

    return walk(project, args.max_steps, args.prompts)


def _event_printer(as_json: bool):
    """Progress of a merge/export: JSON events on stdout (for the TUI), or plain lines."""
    from . import events as ev

    def emit(event: ev.Event) -> None:
        if as_json:
            print(event.to_json(), flush=True)
        elif isinstance(event, ev.Progress):
            print(f"[{event.fraction or 0:4.0%}] {event.message}", file=sys.stderr, flush=True)
    return emit


def _artifact_command(args: argparse.Namespace, work: Callable[[Callable], dict]) -> int:
    from . import events as ev
    from .export import ExportError
    from .runs import NoAdapter

    emit = _event_printer(args.json)
    try:
        report = work(emit)
    except (NoAdapter, ExportError) as exc:
        if args.json:
            emit(ev.Error(message=str(exc), hint="see the message"))
        return fail(str(exc))
    if args.json:
        emit(ev.Finished(path=report["path"], details=report))
    return 0 if report.get("ok", True) else 1


@command("merge")
def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import merge_run
    from .projects import load_project

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
    from .export import export_run
    from .projects import load_project

    load_project(args.project)

    def work(emit):
        report = export_run(args.project, args.run, args.checkpoint, args.quant, emit)
        if not args.json:
            check = report["check"]
            print(f"wrote {report['path']} ({report['bytes'] / 2**20:.0f} MiB, {report['quant']})")
            print(f"wrote {report['modelfile']} ({report['ollama_template']})")
            print(f"check: reloaded with transformers, next-token agreement with the merged model "
                  f"{check['agreement']:.1%} of {check['positions']} positions, last token {check['next_token_agreement']}, "
                  f"same tokenization: {'yes' if check['same_tokenization'] else 'NO'}")
            print(f"use it: cd {Path(report['path']).parent} && ollama create {args.project} -f Modelfile")
        return report
    return _artifact_command(args, work)


@command("serve")
def cmd_serve(args: argparse.Namespace) -> int:
    from .runs import NoAdapter
    from .serve import serve_stdio

    try:
        return serve_stdio(args.project, args.run, args.checkpoint)
    except NoAdapter as exc:
        return fail(str(exc))


def _engine(args: argparse.Namespace):
    from .serve import Engine

    return Engine(args.project, args.run, args.checkpoint,
                  progress=lambda m: print(m, file=sys.stderr, flush=True))


def _request(args: argparse.Namespace, engine, **fields) -> "object":
    from .serve import parse_request

    data = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "max_new_tokens": args.max_new_tokens, "repetition_penalty": args.repetition_penalty,
            "seed": args.seed, **fields}
    if args.model:
        data["model"] = args.model
    return parse_request(data, engine.default_model)


def _print_tokens(event) -> None:
    from . import events as ev

    if isinstance(event, ev.Token):
        print(event.text, end="", flush=True)


@command("generate")
def cmd_generate(args: argparse.Namespace) -> int:
    from .runs import NoAdapter
    from .serve import BadRequest

    try:
        engine = _engine(args)
        fields = {"prompt": args.prompt} if args.raw else {"messages": [{"role": "user", "content": args.prompt}]}
        done = engine.generate(_request(args, engine, id="1", **fields), _print_tokens)
    except (NoAdapter, BadRequest) as exc:
        return fail(str(exc))
    print()
    print(f"[{done.tokens} tokens, {done.tokens_per_s or 0:.1f} tokens/s, first token after {done.ttft_s:.2f} s]",
          file=sys.stderr)
    return 0


@command("chat")
def cmd_chat(args: argparse.Namespace) -> int:
    from .runs import NoAdapter
    from .serve import BadRequest

    try:
        engine = _engine(args)
    except NoAdapter as exc:
        return fail(str(exc))
    model = args.model or engine.default_model
    print(f"chatting with {model} ({', '.join(engine.models)} available). /reset clears the history, "
          "/quit or Ctrl+D leaves.", file=sys.stderr)
    history: list[dict] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            return 0
        if line.strip() in ("/quit", "/exit"):
            return 0
        if line.strip() == "/reset":
            history = history[:1] if args.system else []
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        print(f"{model}> ", end="", flush=True)
        try:
            done = engine.generate(_request(args, engine, id=str(len(history)), messages=history), _print_tokens)
        except BadRequest as exc:
            history.pop()
            print(f"smolora: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print(" [stopped]")
            history.pop()
            continue
        print()
        history.append({"role": "assistant", "content": done.text})


def _data_settings(args: argparse.Namespace):
    """The project's data settings, or defaults pointed at PATH."""
    from .project import DataSettings, ModelSettings, TrainingSettings
    from .projects import load_project

    if args.project:
        project = load_project(args.project)
        if args.path:
            project.data.path = args.path
        return project.data, project.training, project.model
    if not args.path:
        raise ProjectError("give a PATH or --project NAME")
    return DataSettings(path=args.path, format=args.format), TrainingSettings(), ModelSettings()


@command("data")
def cmd_data(args: argparse.Namespace) -> int:
    from .data.doctor import DataError, check_data
    from .data.preview import preview

    settings, training, model = _data_settings(args)
    try:
        if args.action == "preview":
            result = preview(settings.path, args.rows, settings.format, settings.text_split, settings.columns)
            if args.json:
                print_json({"source": result.source, "format": result.format, "shape": result.shape,
                            "columns": result.columns, "total_rows": result.total_rows, "rows": result.rows,
                            "where": result.where, "problems": [p.to_dict() for p in result.problems]})
                return 0
            total = "unknown" if result.total_rows is None else result.total_rows
            print(f"{result.source}: {result.format}, shape {result.shape or 'unknown'}, rows {total}")
            for where, row in zip(result.where, result.rows):
                print(f"{where}: {json.dumps(row, ensure_ascii=False)[:200]}")
            for problem in result.problems:
                print(f"problem: {problem}")
            return 0
        if args.action == "sample":
            return _show_sample(settings, model, training, args)
        tokenizer = None
        if not args.no_tokens:
            from .models import load_tokenizer

            tokenizer = load_tokenizer(model.base, model.trust_remote_code)
        report = check_data(settings, tokenizer, training.max_length)
    except DataError as exc:
        if args.json:  # the report so far too: the app lists the rows that made the data unusable
            print_json({"error": str(exc), **(exc.report.to_dict() if exc.report else {})})
        return fail(str(exc))
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.summary())
    for problem in report.problems[: args.max_problems]:
        print(f"  {problem}")
    if len(report.problems) > args.max_problems:
        print(f"  ... {len(report.problems) - args.max_problems} more (--json lists them all)")
    return 0


def _show_sample(settings, model, training, args: argparse.Namespace) -> int:
    """One sample rendered with the chat template: trained spans marked, masked spans plain."""
    from .data.chat_format import ChatFormat
    from .data.doctor import samples_for_display
    from .data.render import render_sample
    from .models import load_tokenizer

    samples = samples_for_display(settings, args.index + 1)
    if len(samples) <= args.index:
        return fail(f"the data has only {len(samples)} usable sample(s)")
    sample = samples[args.index]
    rendered = render_sample(sample, load_tokenizer(model.base, model.trust_remote_code), training.max_length,
                             ChatFormat.of(settings))
    if args.json:
        print_json({"where": sample.where, "segments": [{"text": t, "trained": tr} for t, tr in rendered.segments],
                    "tokens": len(rendered.input_ids), "trained_tokens": rendered.trained_tokens})
        return 0
    color = sys.stdout.isatty()
    print(f"# {sample.where}: {len(rendered.input_ids)} tokens, {rendered.trained_tokens} trained "
          + ("(trained text in green)" if color else "(trained text between <<< and >>>)"))
    for text, trained in rendered.segments:
        if trained:
            print(f"\x1b[32m{text}\x1b[0m" if color else f"<<<{text}>>>", end="")
        else:
            print(f"\x1b[2m{text}\x1b[0m" if color else text, end="")
    print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smolora",
        description="Fine-tune small language models with LoRA (the headless engine of smolora-tui).",
        epilog=f"Files live under {paths.config_dir()} and {paths.data_dir()}; set {paths.HOME_ENV} "
               "to move them all under one folder.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a project")
    p.add_argument("name")
    p.add_argument("--model", help="base model (default: the embedded smollm2-135m-instruct)")
    p.add_argument("--data", help="training data file or folder")
    p.add_argument("--description")

    p = sub.add_parser("projects", help="list projects")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("show", help="print a project's settings and problems")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("config", help="change settings: smolora config NAME lora.r=32 training.learning_rate=1e-4",
                       description="Set one or more settings, checked before anything is saved. Values are "
                                   "TOML (numbers, true/false, [\"lists\"]) or plain strings.")
    p.add_argument("name")
    p.add_argument("assignments", nargs="+", metavar="key=value")

    p = sub.add_parser("device", help="show the device and dtype that would be used")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("model", help="find a base model and prepare it (converts the embedded model once)")
    p.add_argument("spec", nargs="?", default="smollm2-135m-instruct")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("estimate", help="the memory a project's training needs (from the model's files, "
                                         "without loading it)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("data", help="check or preview training data",
                       description="check: the data doctor (every bad row with file and line, token "
                                   "statistics); preview: the first rows of a file, fast on huge files.")
    p.add_argument("action", choices=("check", "preview", "sample"),
                   help="check: the doctor; preview: first rows; sample: one sample rendered, trained spans marked")
    p.add_argument("path", nargs="?", help="a data file or folder (default: the project's data.path)")
    p.add_argument("--project", metavar="NAME", help="use this project's data settings and tokenizer")
    p.add_argument("--format", default="auto", help="file format when PATH has no telling extension")
    p.add_argument("--rows", type=int, default=10, help="rows to preview")
    p.add_argument("--index", type=int, default=0, help="which sample to render (sample)")
    p.add_argument("--no-tokens", action="store_true", help="skip token statistics (no tokenizer is loaded)")
    p.add_argument("--max-problems", type=int, default=30, help="problems to print (all with --json)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("train", help="fine-tune the project's model with LoRA",
                       description="Runs in the foreground, or with --detach in its own session (it survives "
                                   "closing the terminal). Ctrl+C or `smolora stop` saves a checkpoint first.")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("--resume", metavar="latest|RUN_ID", help="continue a run from its newest complete checkpoint")
    p.add_argument("--max-steps", type=int, help="train for this many optimizer steps in all")
    p.add_argument("--detach", action="store_true", help="start in the background and print the run id")
    p.add_argument("--run-id", help=argparse.SUPPRESS)

    p = sub.add_parser("stop", help="stop a training run after a checkpoint")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before the worker is killed (default: from the run's measured step and "
                        "checkpoint times, at least 60)")
    p.add_argument("--kill", action="store_true",
                   help="kill the worker now, without waiting for a checkpoint (the step in progress is lost)")

    p = sub.add_parser("runs", help="list a project's training runs and their status, or follow one")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print a run's log as it grows, until it ends (the newest run unless --run names one)")
    p.add_argument("--run", metavar="RUN_ID", help="the run to follow")
    p.add_argument("--compare", nargs="*", metavar="RUN_ID",
                   help="one table of the named runs (default: all): the settings that differ, and each "
                        "run's final loss, best eval loss, pass rate, tokens/s, wall time and status")
    p.add_argument("--json", action="store_true", help="print JSON")

    for name, text in (("merge", "merge a run's adapter into a standard Hugging Face model folder (checked)"),
                       ("export", "export the merged model as GGUF with an Ollama Modelfile (checked)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--project", required=True, metavar="NAME")
        p.add_argument("--run", metavar="RUN_ID", help="which run (default: the newest finished one)")
        p.add_argument("--checkpoint", type=int, metavar="STEP", help="a checkpoint instead of the final adapter")
        if name == "export":
            p.add_argument("--format", default="gguf", choices=("gguf",))
            p.add_argument("--quant", default="q8_0", choices=("f16", "q8_0"))
        p.add_argument("--json", action="store_true", help="print progress and the result as JSON events")

    p = sub.add_parser("serve", help="answer JSON requests on stdin with streamed token events on stdout",
                       description="One JSON request per line: {\"id\", \"messages\" or \"prompt\", \"model\": "
                                   "base|adapter|merged, \"max_new_tokens\", \"temperature\", \"top_p\", \"top_k\", "
                                   "\"repetition_penalty\", \"seed\"}; {\"cancel\": ID} stops one.")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("--run", metavar="RUN_ID")
    p.add_argument("--checkpoint", type=int, metavar="STEP")

    for name, text in (("generate", "generate one answer and print it as it streams"),
                       ("chat", "a plain terminal chat with the tuned model")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--project", required=True, metavar="NAME")
        if name == "generate":
            p.add_argument("--prompt", required=True)
            p.add_argument("--raw", action="store_true", help="send the prompt as plain text, without the chat template")
        else:
            p.add_argument("--system", help="a system message")
        p.add_argument("--model", choices=("base", "adapter", "merged"),
                       help="default: the adapter when there is a finished run, else the base model")
        p.add_argument("--run", metavar="RUN_ID")
        p.add_argument("--checkpoint", type=int, metavar="STEP")
        p.add_argument("--max-new-tokens", type=int, default=256)
        p.add_argument("--temperature", type=float, default=0.7, help="0 for greedy decoding")
        p.add_argument("--top-p", type=float, default=0.9)
        p.add_argument("--top-k", type=int, default=50)
        p.add_argument("--repetition-penalty", type=float, default=1.0)
        p.add_argument("--seed", type=int)

    p = sub.add_parser("eval", help="score the base and the tuned model on the eval prompts and checks",
                       description="Answers every prompt of eval.prompts (or the eval split's first eval.samples "
                                   "rows) with the base model and the run's adapter, applies eval.checks and each "
                                   "prompt's own checks, and prints both answers and both pass rates.")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("--run", metavar="RUN_ID", help="which run (default: the newest finished one)")
    p.add_argument("--checkpoint", type=int, metavar="STEP", help="a checkpoint instead of the final adapter")
    p.add_argument("--merged", action="store_true", help="score the merged model (`smolora merge`) as the tuned side")
    p.add_argument("--limit", type=int, metavar="N", help="answer only the first N prompts")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: base and adapter, each with pass_rate and answers")

    p = sub.add_parser("demo", help="the demo, headless: check the data, train, merge, and score base vs tuned",
                       description="Creates the demo project (chat data that teaches the embedded model to sign "
                                   "every answer) unless it exists, then walks it through every step.")
    p.add_argument("--setup", action="store_true", help="only create the demo project")
    p.add_argument("--max-steps", type=int, help="train for this many steps (default: the project's settings)")
    p.add_argument("--prompts", type=int, help="score only the first N held-out prompts (default: all)")
    _overnight(sub)
    return parser


def _overnight(sub) -> None:
    from .overnight.commands import add_parsers, cmd_queue, cmd_sweep

    add_parsers(sub)
    COMMANDS.update(queue=cmd_queue, sweep=cmd_sweep)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ProjectError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line message for known failures; the rest keep their traceback
        from .models import ModelNotFound

        if isinstance(exc, (ModelNotFound, FileNotFoundError, RuntimeError)):
            return fail(str(exc))
        raise


if __name__ == "__main__":
    sys.exit(main())
