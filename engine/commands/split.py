"""`schemalab split`: a stratified train/test pair of one JSONL file, with no shared prompt."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "split",
        help="write a stratified train/test pair of a JSONL file",
        description="Split DATA into a train and a test file, stratified by schema, with no prompt "
        "on both sides, so a model can be measured on examples it never saw. Lines are copied "
        "unchanged; each output is shuffled with the seed.",
    )
    p.add_argument("data", metavar="DATA.jsonl")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of each schema's records on the test side (default 0.2)",
    )
    p.add_argument(
        "--by",
        choices=("schema", "none"),
        default="schema",
        help="stratify by schema (default) or not at all",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument(
        "--train-out", metavar="FILE", help="default: DATA.split-train.jsonl beside DATA"
    )
    p.add_argument("--test-out", metavar="FILE", help="default: DATA.split-test.jsonl beside DATA")
    p.add_argument("--force", action="store_true", help="replace output files that exist")
    p.add_argument("--format", choices=("table", "json"), default="table", dest="output_format")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.data.split import SplitError, split_file

    try:
        result = split_file(
            args.data,
            args.test_fraction,
            by=args.by,
            seed=args.seed,
            train_out=args.train_out,
            test_out=args.test_out,
            overwrite=args.force,
        )
    except SplitError as exc:
        print(f"schemalab: error: {exc}", file=sys.stderr)
        return 2
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    if args.output_format == "json":
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(
        f"wrote {result.train_path} ({result.n_train} records) and "
        f"{result.test_path} ({result.n_test} records), seed {args.seed}"
    )
    if args.by == "schema":
        groups = ", ".join(f"{k} {v['train']}/{v['test']}" for k, v in result.by_group.items())
        print(f"train/test by schema: {groups}")
    return 1 if result.skipped else 0
