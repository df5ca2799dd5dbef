"""The `schemalab` entry point: a sub-command goes to the engine's CLI; no command opens the
workbench. Textual is imported only when the workbench opens, so CLI commands start at once."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli import COMMANDS
    from engine.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in COMMANDS or a in ("-h", "--help", "--version") for a in argv):
        return cli_main(argv)
    parser = argparse.ArgumentParser(prog="schemalab", description="Open the workbench.")
    parser.add_argument("--db", default="runs.db", metavar="PATH", help="run log")
    parser.add_argument(
        "--datasets",
        action="append",
        default=None,
        metavar="DIR",
        help="folder or .jsonl file of data sets to show (repeatable; default: ./datasets)",
    )
    args = parser.parse_args(argv)
    from tui.app import run_app

    return run_app(db_path=args.db, dataset_paths=args.datasets or ["datasets"]) or 0


if __name__ == "__main__":
    sys.exit(main())
