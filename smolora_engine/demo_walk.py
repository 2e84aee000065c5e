"""`smolora demo`: the whole workflow on the demo project, printed step by step (for a GPU box or a script)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from . import events as ev
from . import paths
from .project import Project
from .run_text import duration
from .runs import list_run_ids, run_dir

STEPS = 5


def say(n: int, text: str) -> None:
    print(f"[{n}/{STEPS}] {text}", flush=True)


def train_with_progress(project: str, max_steps: int | None) -> tuple[int, str | None, float]:
    """Run `smolora train` as a child, printing its progress from the run's events; (exit code, run id, seconds)."""
    before = set(list_run_ids(project))
    cmd = [sys.executable, "-m", "smolora_engine.cli", "train", "--project", project]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        run_id, tail, last_print = None, None, 0.0
        try:
            while True:
                done = proc.poll() is not None
                if run_id is None:
                    new = sorted(set(list_run_ids(project)) - before)
                    if new:
                        run_id = new[-1]
                        tail = ev.EventTail(run_dir(project, run_id) / "events.jsonl")
                for event in tail.read_new() if tail else []:
                    last_print = _print_event(event, last_print)
                if done:
                    break
                time.sleep(0.2)
        except KeyboardInterrupt:
            proc.terminate()  # the worker saves a checkpoint and stops
            proc.wait()
            raise
        if proc.returncode:
            log.seek(0)
            lines = [line for line in log.read().splitlines() if line.strip()]
            print("\n".join("    " + line for line in lines[-8:]), file=sys.stderr)
    return proc.returncode, run_id, time.monotonic() - started


def _print_event(event: ev.Event, last_print: float) -> float:
    now = time.monotonic()
    if isinstance(event, ev.Loading):
        print(f"    {event.message}", flush=True)
    elif isinstance(event, ev.Step) and (now - last_print >= 5 or event.step == event.max_steps):
        eta = f", ETA {duration(event.eta_s)}" if event.eta_s else ""
        speed = f", {event.tokens_per_s:.0f} tokens/s" if event.tokens_per_s else ""
        loss = f", loss {event.loss:.4f}" if event.loss is not None else ""
        print(f"    step {event.step}/{event.max_steps}{loss}{speed}{eta}", flush=True)
        return now
    elif isinstance(event, ev.Eval) and event.eval_loss is not None:
        print(f"    eval loss {event.eval_loss:.4f} at step {event.step}" + (" (best)" if event.best else ""),
              flush=True)
    elif isinstance(event, (ev.Warning, ev.Error)):
        print(f"    {event.kind}: {event.message}" + (f"\n    what to do: {event.hint}" if getattr(event, "hint", "")
                                                       else ""), file=sys.stderr, flush=True)
    return last_print


def quiet_walk() -> None:
    """The walk prints its own progress: no library progress bars or deprecation chatter in between."""
    import warnings

    from transformers.utils import logging as hf_logging

    from .quiet import quiet_libraries

    quiet_libraries()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


def walk(project: Project, max_steps: int | None = None, prompts: int | None = None) -> int:
    from .data.doctor import DataError, check_data
    from .demo import SIGNATURE, score
    from .merge import merge_run
    from .models import load_tokenizer

    quiet_walk()
    name = project.name
    say(1, f"project {name!r}: model {project.model.base}, data {project.data.path}")
    print(f"    its files: {paths.project_file(name)} and {paths.project_data_dir(name)}")
    say(2, "checking the data")
    try:
        report = check_data(project.data, load_tokenizer(project.model.base), project.training.max_length)
    except DataError as exc:
        print(f"smolora: {exc}", file=sys.stderr)
        return 2
    print("    " + report.summary().replace("\n", "\n    "))
    say(3, "training (a background worker; Ctrl+C stops it with a checkpoint)")
    code, run_id, seconds = train_with_progress(name, max_steps)
    if code:
        print(f"smolora: training failed (exit {code}); `smolora runs --project {name}` shows the run",
              file=sys.stderr)
        return 1
    print(f"    trained in {duration(seconds)} (run {run_id})")
    say(4, "merging the adapter into a standard model folder")
    merged = merge_run(name, run_id)
    print(f"    {merged['path']} (max |logit difference| {merged['max_abs_logit_diff']:.2e}: "
          f"{'ok' if merged['ok'] else 'CHECK FAILED'})")
    say(5, f"asking base and tuned the held-out prompts (`smolora eval`); the behaviour: answers end with "
           f"{SIGNATURE!r}")
    result = score(name, prompts)
    for row, base, tuned in list(zip(result["prompts"], result["base"]["answers"], result["adapter"]["answers"]))[:3]:
        print(f"    > {row['prompt']}\n      base:  {_one_line(base['answer'])}\n      tuned: {_one_line(tuned['answer'])}")
    print(f"    base model:  {result['base_rate']:.0%} of answers show it ({len(result['prompts'])} prompts)")
    print(f"    tuned model: {result['tuned_rate']:.0%} of answers show it ({len(result['prompts'])} prompts)")
    print(f"next: `smolora chat --project {name}`, `smolora export --project {name}`, or "
          f"`smolora-tui --project {name}`")
    return 0


def _one_line(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

