"""`schemalab` command line: one sub-command per module under `engine.commands`.

Each command module defines `register(subparsers)` and `run(args) -> int`, and imports nothing
heavy at module level, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from engine import __version__

# Sub-command name -> module in engine.commands.
COMMANDS = {
    "validate": "validate",
    "runs": "runs",
    "train": "train",
    "cancel": "train",
    "export": "train",
    "eval": "evaluate",
    "score": "evaluate",
    "show": "evaluate",
    "compare": "evaluate",
    "split": "split",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schemalab",
        description="Fine-tune small language models to extract schema-valid JSON, and see why "
        "they fail. With no command, opens the workbench.",
    )
    parser.add_argument("--version", action="version", version=f"schemalab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen = set()
    for module_name in COMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        full = f"engine.commands.{module_name}"
        if importlib.util.find_spec(full) is None:
            continue
        importlib.import_module(full).register(sub)
    return parser


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """`--db PATH` on every command."""
    parser.add_argument(
        "--db", default="runs.db", metavar="PATH", help="run log (default: ./runs.db)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) closed early; silence the flush at exit as well.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
