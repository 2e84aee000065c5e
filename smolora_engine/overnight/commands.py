"""`smolora queue ...` and `smolora sweep`: the command line of the queue."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..project_fields import parse_assignment
from .queue_file import Entry, QueueError, editing, entry_status, move_entry, read_queue, remove_entry, \
    retry_entry, runner_log_file
from .runner import Runner, RunnerBusy, runner_holder, start_runner_detached, stop_runner
from .sweep import SweepError, Variation, check_variation, expand


def add_parsers(sub) -> None:
    p = sub.add_parser("queue", help="queue runs to train one after another (overnight, over SSH)",
                       description="Without an action: list the queue. Entries train in order with `smolora "
                                   "queue run`; each is a normal run of its project.")
    p.add_argument("--json", action="store_true", help="print JSON")
    actions = p.add_subparsers(dest="queue_action", metavar="ACTION")
    a = actions.add_parser("add", help="queue the project's settings, with key=value changes")
    a.add_argument("--project", required=True, metavar="NAME")
    a.add_argument("assignments", nargs="*", metavar="key=value")
    a = actions.add_parser("list", help="list the entries (the default)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a = actions.add_parser("remove", help="take an entry off the queue (not a running one)")
    a.add_argument("id", type=int)
    a = actions.add_parser("move", help="move a pending entry to another place among the pending ones")
    a.add_argument("id", type=int)
    a.add_argument("--to", type=int, required=True, metavar="N", help="1 = the next to train")
    a = actions.add_parser("retry", help="queue a failed, crashed or stopped entry again (resumed when it can be)")
    a.add_argument("id", type=int)
    a = actions.add_parser("run", help="train the pending entries one after another")
    a.add_argument("--detach", action="store_true", help="run in the background (survives the terminal and SSH)")
    a.add_argument("--log", help=argparse.SUPPRESS)
    actions.add_parser("stop", help="stop the runner: its run saves a checkpoint, its entry can be retried")

    p = sub.add_parser("sweep", help="queue every combination: smolora sweep --project NAME lora.r=8,16 "
                                     "training.learning_rate=1e-4,5e-4")
    p.add_argument("--project", required=True, metavar="NAME")
    p.add_argument("assignments", nargs="+", metavar="key=v1,v2")
    p.add_argument("--dry-run", action="store_true", help="print the grid, queue nothing")
    p.add_argument("--json", action="store_true", help="print JSON")


def entry_row(entry: Entry, runner_alive: bool) -> dict[str, Any]:
    # The run folder is read once, and only for entries whose state it can change or tell more of.
    info = entry.run_info() if entry.status in ("running", "crashed", "stopped", "failed") else None
    status, note = entry_status(entry, runner_alive, info)
    resumable = info.resumable_step if info is not None and info.resumable else None
    return {"id": entry.id, "project": entry.project, "status": status, "run_id": entry.run_id,
            "overrides": entry.overrides, "note": note,
            "resumable_step": resumable if status in ("crashed", "stopped", "failed") else None,
            "added": entry.added, "started": entry.started, "ended": entry.ended, "sweep": entry.sweep}


def queue_rows() -> tuple[list[dict[str, Any]], str | None]:
    holder = runner_holder()
    return [entry_row(e, holder is not None) for e in read_queue().entries], holder


def describe_row(row: dict[str, Any]) -> str:
    changes = Entry(row["id"], row["project"], row["overrides"]).describe_overrides()
    text = f"{row['id']:>3}  {row['status']:<8} {row['project']:<16} {changes}"
    if row["run_id"]:
        text += f"  run {row['run_id']}"
    if row["resumable_step"] is not None:
        text += f"  resumable at step {row['resumable_step']} (smolora queue retry {row['id']})"
    if row["note"]:
        text += f"  ({row['note']})"
    return text


def cmd_queue(args: argparse.Namespace) -> int:
    action = args.queue_action or "list"
    try:
        return ACTIONS[action](args)
    except (QueueError, SweepError) as exc:
        print(f"smolora: {exc}", file=sys.stderr)
        return 2


def _list(args: argparse.Namespace) -> int:
    rows, holder = queue_rows()
    if getattr(args, "json", False):
        print(json.dumps({"runner": holder, "entries": rows}, indent=2, default=str))
        return 0
    print(f"runner: {holder}" if holder else "runner: none (start one with `smolora queue run --detach`)")
    if not rows:
        print("the queue is empty; add to it with `smolora queue add --project NAME [key=value ...]` "
              "or `smolora sweep`")
    for row in rows:
        print(describe_row(row))
    return 0


def _checked(project_name: str, assignments: list[str]) -> Variation:
    from ..projects import load_project

    overrides: dict[str, Any] = {}
    for text in assignments:
        try:
            key, value = parse_assignment(text)
        except ValueError as exc:
            raise SweepError(str(exc)) from None
        overrides[key] = value
    return check_variation(load_project(project_name), overrides)


def say_warnings(variation: Variation) -> None:
    for problem in variation.warnings:
        print(f"smolora: warning: {problem.message}", file=sys.stderr)


def _add(args: argparse.Namespace) -> int:
    variation = _checked(args.project, args.assignments)
    say_warnings(variation)
    with editing() as queue:
        entry = queue.add(args.project, variation.overrides, variation.project.to_dict())
    print(entry.id)
    print(f"queued entry {entry.id}: {args.project} {entry.describe_overrides()}; "
          + ("a runner is running the queue" if runner_holder() else "start training with `smolora queue run --detach`"),
          file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    entry = remove_entry(args.id)
    print(f"removed entry {entry.id} ({entry.project} {entry.describe_overrides()})")
    return 0


def _move(args: argparse.Namespace) -> int:
    order = move_entry(args.id, args.to)
    print("pending, in order: " + ", ".join(str(e.id) for e in order))
    return 0


def _retry(args: argparse.Namespace) -> int:
    entry = retry_entry(args.id)
    how = f"resumes run {entry.run_id} from its newest checkpoint" if entry.resume else "starts a new run"
    print(f"entry {entry.id} is pending again: it {how}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.detach:
        pid = start_runner_detached()
        print(f"queue runner started (pid {pid}); it logs to {runner_log_file()}. `smolora queue` shows the "
              "entries; `smolora queue stop` stops it")
        return 0

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)

    try:
        return Runner(say).run(args.log or "")
    except RunnerBusy as exc:
        print(f"smolora: {exc}", file=sys.stderr)
        return 2


def _stop(args: argparse.Namespace) -> int:
    print(stop_runner())
    return 0


ACTIONS = {"list": _list, "add": _add, "remove": _remove, "move": _move, "retry": _retry, "run": _run,
           "stop": _stop}


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..projects import load_project

    try:
        variations = expand(load_project(args.project), args.assignments)
    except SweepError as exc:
        print(f"smolora: {exc}", file=sys.stderr)
        print("nothing was queued", file=sys.stderr)
        return 2
    label = " ".join(args.assignments)
    if args.dry_run:
        if args.json:
            print(json.dumps([v.overrides for v in variations], indent=2))
        else:
            print(f"{len(variations)} run(s) would be queued for {args.project}:")
            for v in variations:
                print("  " + Entry(0, args.project, v.overrides).describe_overrides())
        return 0
    for v in variations:
        say_warnings(v)
    with editing() as queue:
        entries = [queue.add(args.project, v.overrides, v.project.to_dict(), sweep=label) for v in variations]
    if args.json:
        print(json.dumps([e.id for e in entries]))
    else:
        print(f"queued {len(entries)} run(s) for {args.project}:")
        for e in entries:
            print(f"  {e.id:>3}  {e.describe_overrides()}")
        if not runner_holder():
            print("start training with `smolora queue run --detach`")
    return 0
