"""`smolora train, stop, runs, eval, demo`: training runs, following and comparing them, scoring them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from .common import command, fail, print_json


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from ..runs import AlreadyRunning
    from ..training import TrainingRefused, run_training, start_detached

    try:
        if args.detach:
            run_id = start_detached(args.project, args.resume, args.max_steps)
            print(run_id)
            print(f"training in the background; follow it with `smolora runs --project {args.project} --follow` "
                  f"or `smolora-tui --project {args.project}`", file=sys.stderr)
            return 0
        if "RANK" not in os.environ:  # not yet under a launcher: wrap in the project's one, if any
            from ..projects import load_project
            from ..training.launch import launcher_command, worker_command

            project = load_project(args.project)
            if project.training.launcher != "none" and project.training.num_processes > 1:
                from ..training import prepare_run

                run_id, _ = prepare_run(args.project, args.run_id, args.resume, args.max_steps)
                cmd = launcher_command(project, worker_command(args.project, run_id, args.resume, args.max_steps))
                return subprocess.call(cmd)
        return run_training(args.project, args.run_id, args.resume, args.max_steps)
    except (TrainingRefused, AlreadyRunning) as exc:
        return fail(str(exc))


@command("stop")
def cmd_stop(args: argparse.Namespace) -> int:
    from ..training import TrainingRefused, stop_run

    try:
        print(stop_run(args.project, args.timeout, args.kill, say=lambda line: print(line, flush=True)))
    except TrainingRefused as exc:
        return fail(str(exc))
    return 0


@command("runs")
def cmd_runs(args: argparse.Namespace) -> int:
    from ..projects import load_project
    from ..runs import list_runs

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
    from ..compare import CompareError, compare_runs, comparison_table, format_table

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
    from ..run_text import console_text
    from ..runs import follow_run

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
    from ..evaluation.prompts import PromptsError
    from ..evaluation.score import evaluate, print_report
    from ..runs import NoAdapter

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
    from ..demo import setup_demo

    project = setup_demo()
    if args.setup:
        print(f"demo project {project.name!r} is ready (data: {project.data.path})")
        return 0
    from ..demo_walk import walk

    return walk(project, args.max_steps, args.prompts)
