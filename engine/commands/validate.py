"""`schemalab validate DATA.jsonl [...]`: check data sets and record the findings in the run log."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import add_db_argument

# How many findings the table view lists before saying how many more there are.
TABLE_LIMIT = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check data sets: schema, arithmetic, grounding, duplicates, leaks, lengths",
        description="Check JSONL data sets and record the findings as a `validate` run. "
        "Exit status: 0 no errors, 1 errors found, 2 input could not be read.",
    )
    p.add_argument("data", nargs="+", metavar="DATA.jsonl", help="data-set file(s)")
    p.add_argument(
        "--schemas",
        metavar="DIR",
        help="folder of JSON Schemas (default: a schemas/ folder beside the data)",
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        help="arithmetic rules YAML (default: DIR/rules.yaml, else the bundled library)",
    )
    p.add_argument(
        "--tokenizer",
        metavar="SPEC",
        help="tokenizer for the length check (e.g. tiny, or a model folder or id)",
    )
    p.add_argument(
        "--max-seq-len",
        type=int,
        metavar="N",
        help="flag examples longer than N tokens (template + output + EOS)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        metavar="N",
        help="flag examples whose output alone is longer than N tokens",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--no-record", action="store_true", help="do not write to the run log")
    add_db_argument(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.data.validate import validate_files
    from engine.models.load import ModelError

    missing = [d for d in args.data if not Path(d).is_file()]
    if missing:
        for d in missing:
            what = "is a folder; pass the .jsonl files in it" if Path(d).is_dir() else "not found"
            print(f"schemalab validate: {d}: {what}", file=sys.stderr)
        return 2
    if args.schemas and not Path(args.schemas).is_dir():
        print(f"schemalab validate: --schemas {args.schemas}: no such folder", file=sys.stderr)
        return 2
    try:
        report = validate_files(
            args.data,
            schemas_dir=args.schemas,
            rules_file=args.rules,
            tokenizer=args.tokenizer,
            max_seq_len=args.max_seq_len,
            max_new_tokens=args.max_new_tokens,
        )
    except ModelError as exc:
        print(f"schemalab validate: --tokenizer {args.tokenizer}: {exc}", file=sys.stderr)
        return 2
    run_id = None
    if not args.no_record:
        from engine import runlog
        from engine.data.validate import record_validation

        config = {
            k: getattr(args, k)
            for k in ("data", "schemas", "rules", "tokenizer", "max_seq_len", "max_new_tokens")
        }
        config["schemas_dir"], config["rules_sources"] = report.schemas_dir, report.rules_sources
        run_id = record_validation(runlog.connect(args.db), report, config)
    if args.format == "json":
        print(json.dumps({**report.to_json(), "run_id": run_id}, ensure_ascii=False, indent=1))
    else:
        print_table(report, run_id, args.db)
    if report.unreadable_files:
        return 2
    return 1 if report.n_errors else 0


def print_table(report, run_id, db_path) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine.data.load import shorten_middle

    console = Console()
    sev = report.by_severity
    console.print(
        f"[bold]{report.n_examples}[/] examples in {', '.join(report.files)}; "
        f"[red]{sev['error']} errors[/], [yellow]{sev['warning']} warnings[/], "
        f"{sev['info']} notes"
    )
    console.print(report.comparison_note(), markup=False, highlight=False, soft_wrap=True)
    counts = Table(title="Findings by kind")
    counts.add_column("kind")
    for s in ("error", "warning", "info"):
        counts.add_column(s, justify="right")
    per = {}
    for f in report.findings:
        per.setdefault(f.kind, {"error": 0, "warning": 0, "info": 0})[f.severity] += 1
    for kind, row in sorted(per.items()):
        counts.add_row(kind, *(str(row[s] or "") for s in ("error", "warning", "info")))
    schemas = Table(title="Findings by schema")
    schemas.add_column("schema")
    schemas.add_column("findings", justify="right")
    for schema_id, n in list(report.by_schema.items())[:15]:
        schemas.add_row(schema_id, str(n))
    console.print(counts)
    if report.findings:
        console.print(schemas)
    shown = [f for f in report.findings if f.severity != "info"][:TABLE_LIMIT]
    if shown:
        table = Table(title="First findings", show_lines=False)
        for col in ("line", "id", "kind", "path", "message"):
            table.add_column(col, overflow="fold")
        for f in shown:
            color = "red" if f.severity == "error" else "yellow"
            table.add_row(
                str(f.line or ""),
                escape(shorten_middle(f.example_id or "", 60)),
                f"[{color}]{f.kind}[/]",
                escape(shorten_middle(f.path or "", 80)),
                escape(shorten_middle(f.message, 600)),
            )
        console.print(table)
        rest = sum(f.severity != "info" for f in report.findings) - len(shown)
        if rest > 0:
            console.print(f"... and {rest} more (use --format json for all)")
    if run_id is not None:
        console.print(f"recorded as run {run_id} in {db_path}")
