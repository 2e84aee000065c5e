"""`smolora-tui [--project NAME]`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smolora-tui", description="Fine-tune small language models with LoRA.")
    parser.add_argument("--project", metavar="NAME", help="open this project directly")
    args = parser.parse_args(argv)

    from .app import SmoloraApp

    SmoloraApp(project=args.project).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
