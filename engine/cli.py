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


# SQLite integers are signed 64-bit: a larger run id is no run at all.
MAX_RUN_ID = 2**63 - 1


def run_id_arg(text: str) -> int:
    """argparse type of a RUN_ID: a positive integer SQLite can hold."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id (a number)") from None
    if not 1 <= value <= MAX_RUN_ID:
        raise argparse.ArgumentTypeError(f"{text}: no such run id (`schemalab runs` lists them)")
    return value


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
    except Exception as exc:  # one line, never a traceback, for known causes
        line = _known_problem(args, exc)
        if line is None:
            raise
        print(f"schemalab: error: {line}", file=sys.stderr)
        return 1


def _known_problem(args: argparse.Namespace, exc: BaseException) -> str | None:
    """One line for a failure users can fix (the run log, a full disk, memory), else None."""
    import errno
    import sqlite3

    if isinstance(exc, (sqlite3.Error, RuntimeError, OSError)):
        from engine import runlog

        db = getattr(args, "db", None) or runlog.DEFAULT_DB
        where = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
        if isinstance(exc, OSError) and where and exc.errno != errno.ENOSPC:
            return f"{where}: {exc.strerror or exc}"
        line = runlog.describe_error(where or db, exc)
        if line is not None:
            return line
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --batch-size or --limit, or close other programs"
    return None


if __name__ == "__main__":
    sys.exit(main())
