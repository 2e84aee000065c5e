"""`smolora serve, generate, chat`: the tuned model answering."""

from __future__ import annotations

import argparse
import sys

from .common import command, fail


@command("serve")
def cmd_serve(args: argparse.Namespace) -> int:
    from ..runs import NoAdapter
    from ..serve import serve_stdio

    try:
        return serve_stdio(args.project, args.run, args.checkpoint)
    except NoAdapter as exc:
        return fail(str(exc))


def _engine(args: argparse.Namespace):
    from ..serve import Engine

    return Engine(args.project, args.run, args.checkpoint,
                  progress=lambda m: print(m, file=sys.stderr, flush=True))


def _request(args: argparse.Namespace, engine, **fields) -> "object":
    from ..serve import parse_request

    data = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "max_new_tokens": args.max_new_tokens, "repetition_penalty": args.repetition_penalty,
            "seed": args.seed, **fields}
    if args.model:
        data["model"] = args.model
    return parse_request(data, engine.default_model)


def _print_tokens(event) -> None:
    from .. import events as ev

    if isinstance(event, ev.Token):
        print(event.text, end="", flush=True)


@command("generate")
def cmd_generate(args: argparse.Namespace) -> int:
    from ..runs import NoAdapter
    from ..serve import BadRequest

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
    from ..runs import NoAdapter
    from ..serve import BadRequest

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
