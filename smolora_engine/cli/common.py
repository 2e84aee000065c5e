"""What every command shares: the registry, JSON output, and a one-line failure."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

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
