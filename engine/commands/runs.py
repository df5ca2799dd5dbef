"""`schemalab runs`: list the run log, newest first."""

from __future__ import annotations

import argparse
import json
import time

from engine.cli import add_db_argument


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "runs",
        help="list the run log",
        description="List runs (validate, train, eval), newest first.",
    )
    p.add_argument("--kind", choices=("validate", "train", "eval"), help="only runs of this kind")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_db_argument(p)
    p.set_defaults(handler=run)


def key_figure(run: dict) -> str:
    """The one number that says how a run went, from its summary."""
    s = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    if run["kind"] == "validate" and "examples" in s:
        return f"{s['examples']} examples, {s.get('errors', 0)} errors, {s.get('warnings', 0)} warnings"
    best = s.get("best_metric")
    if (
        run["kind"] == "train"
        and isinstance(best, dict)
        and isinstance(best.get("value"), (int, float))
    ):
        name = {"val_json_exact": "JSONExact", "val_field_f1": "field F1"}.get(
            best["name"], best["name"]
        )
        return f"best {name} {best['value']:.4g} @ step {s.get('best_step')}"
    for key, label in (
        ("json_exact", "JSONExact"),
        ("val_loss", "val loss"),
        ("train_loss", "train loss"),
        ("final_loss", "loss"),
    ):
        value = s.get(key)
        if isinstance(value, (int, float)):
            return f"{label} {value:.4g}"
    return ""


def duration(run: dict) -> float | None:
    if not run.get("started"):
        return None
    end = run.get("ended") or (time.time() if run.get("status") == "running" else None)
    return None if end is None else max(0.0, end - run["started"])


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine import runlog

    if not Path(args.db).exists():
        runs = []
    else:
        runs = runlog.list_runs(runlog.connect_readonly(args.db), kind=args.kind)
    if args.format == "json":
        rows = [
            {
                "id": r["id"],
                "kind": r["kind"],
                "name": r.get("name"),
                "status": r["status"],
                "started": r.get("started"),
                "ended": r.get("ended"),
                "duration_s": duration(r),
                "key_figure": key_figure(r),
                "summary": r.get("summary"),
                "error": r.get("error"),
            }
            for r in runs
        ]
        print(json.dumps({"db": str(args.db), "runs": rows}, indent=1, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    if not runs:
        Console().print(f"no runs in {args.db}" + (f" of kind {args.kind}" if args.kind else ""))
        return 0
    table = Table(title=f"Runs in {args.db}")
    for col in ("id", "kind", "status", "started", "duration", "result", "name"):
        table.add_column(col, overflow="fold")
    colors = {"completed": "green", "failed": "red", "running": "cyan", "interrupted": "yellow"}
    for r in runs:
        started = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"]))
            if r.get("started")
            else ""
        )
        status = f"[{colors.get(r['status'], 'white')}]{r['status']}[/]"
        table.add_row(
            str(r["id"]),
            r["kind"],
            status,
            started,
            _fmt_duration(duration(r)),
            key_figure(r),
            r.get("name") or "",
        )
    Console().print(table)
    return 0
