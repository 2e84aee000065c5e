"""`smolora`: the headless engine's command line. Everything the TUI does, this does too.

One module per group of commands (projects, training, artifacts, inference, data; the queue
lives in overnight/commands.py); this one builds the parser and dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import paths
from ..export.quants import QUANTS
from ..project import ProjectError
from . import artifacts, data, inference, projects, training  # noqa: F401  (they register their commands)
from .common import COMMANDS, fail


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
    p.add_argument("--remeasure", action="store_true", help="run the precision probe again")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("model", help="find a base model and prepare it (converts the embedded model once)")
    p.add_argument("spec", nargs="?", default="smollm2-135m-instruct")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("estimate", help="the memory a project's training needs (from the model's files, "
                                         "without loading it)")
    p.add_argument("name")
    p.add_argument("--data", action="store_true",
                   help="also for the project's data: read it (the data doctor) and estimate for its longest sample")
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
            p.add_argument("--quant", choices=QUANTS,
                           help="GGUF tensor type (default: the project's output.export_quant); q4_k_m, "
                                "q5_k_m and q6_k need llama.cpp's quantizer (pip install \"smolora-tui[llamacpp]\")")
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
    from ..overnight.commands import add_parsers, cmd_queue, cmd_sweep

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
    except BrokenPipeError:  # the reader went away (`smolora runs | head`): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's flush at exit does not fail again
        return 141
    except Exception as exc:  # a clear one-line message for known failures; the rest keep their traceback
        from ..models import ModelNotFound

        if isinstance(exc, (ModelNotFound, FileNotFoundError, RuntimeError)):
            return fail(str(exc))
        raise
