"""`schemalab show RUN_ID` for a training run: its config, summary, checkpoints with their
validation metrics (which is best, which is final) and every metric series."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from engine import runlog

RUN_FIELDS = (
    "id",
    "kind",
    "name",
    "status",
    "model",
    "data_path",
    "out_dir",
    "adapter",
    "started",
    "ended",
    "error",
    "config",
    "summary",
)
# Checkpoint table columns: (metric, header, format).
CKPT_COLUMNS = (
    ("val_loss", "val loss", "{:.3f}"),
    ("val_json_exact", "exact", "{:.1%}"),
    ("val_field_f1", "F1", "{:.3f}"),
    ("val_schema_valid", "valid", "{:.0%}"),
    ("val_parse_rate", "parsed", "{:.0%}"),
    ("val_truncated", "trunc", "{:.0%}"),
)
# Series in the table view (`--format json` has every one).
KEY_SERIES = (
    "train_loss",
    "val_loss",
    "val_json_exact",
    "val_field_f1",
    "val_leaf_f1",
    "val_schema_valid",
    "val_parse_rate",
    "val_truncated",
    "val_eval_s",
)


def train_report(db, run: dict) -> dict:
    """Everything `show --format json` prints for a training run, as plain data."""
    from pathlib import Path

    from engine.decode.generate import DecodingError, resolve_adapter

    run_id = run["id"]
    ckpts = [
        {
            "step": c["step"],
            "epoch": c["epoch"],
            "path": c["path"],
            "metrics": c["metrics"],
            "is_best": bool(c["is_best"]),
            "is_final": bool(c["is_final"]),
            "on_disk": Path(c["path"]).is_dir(),
        }
        for c in runlog.checkpoints(db, run_id)
    ]
    series: dict[str, list[list[float]]] = defaultdict(list)
    for m in runlog.metrics(db, run_id):
        series[m["name"]].append([m["step"], m["value"]])
    try:
        default_adapter = str(resolve_adapter(str(run_id), db)[0])
    except DecodingError:
        default_adapter = None
    return {
        "run": {k: run.get(k) for k in RUN_FIELDS},
        "checkpoints": ckpts,
        "best": next((c for c in ckpts if c["is_best"]), None),
        "adapter_for_run_id": default_adapter,  # what `--adapter RUN_ID` loads
        "metrics": dict(series),
    }


def show_train(args: argparse.Namespace, db, run: dict) -> int:
    report = train_report(db, run)
    if getattr(args, "output_format", "table") == "json":
        print(json.dumps(report, indent=1, ensure_ascii=False, default=str))
        return 0
    print_train(report)
    return 0


def _fmt(value, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "-"


def print_train(report: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    run, s = report["run"], report["run"].get("summary") or {}
    cfg = run.get("config") or {}
    started = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(run["started"]))
        if run.get("started")
        else "?"
    )
    console.print(
        f"[bold]Training run {run['id']}[/] ({run['status']}): {escape(str(run.get('model')))} on "
        f"{escape(str(run.get('data_path')))}, started {started}"
    )
    console.print(
        f"step {s.get('step', '?')} of {s.get('total_steps', '?')}, {_fmt(s.get('elapsed_s'), '{:.0f}')} s; "
        f"train loss {_fmt(s.get('train_loss'), '{:.4f}')}, val loss {_fmt(s.get('val_loss'), '{:.4f}')}; "
        f"prompt template {cfg.get('prompt_template', 'schemalab')}, select by "
        f"{cfg.get('select_by', 'json_exact')}"
    )
    if s.get("val_eval_s_total") is not None:
        console.print(
            f"in-training evaluation: {s.get('val_eval_examples', 0)} examples per evaluation, "
            f"{_fmt(s.get('val_eval_s_total'), '{:.1f}')} s in all "
            f"({_fmt(s.get('val_eval_share'), '{:.0%}')} of the run)"
        )
    if s.get("peak_memory_gb") is not None or s.get("memory_estimate_gb") is not None:
        kind = {"rss": "peak resident set", "cuda_reserved": "GPU reserved"}.get(
            s.get("peak_memory_kind"), s.get("peak_memory_kind") or "-"
        )
        console.print(
            f"peak memory {_fmt(s.get('peak_memory_gb'), '{:.2f}')} GB ({kind}), estimated "
            f"{_fmt(s.get('memory_estimate_gb'), '{:.2f}')} GB on {s.get('memory_device', '?')}"
            f" (measured / estimated {_fmt(s.get('memory_ratio'), '{:.2f}')})"
        )
    if s.get("stopped_early"):
        console.print(f"[yellow]stopped early[/]: {escape(str(s.get('stop_reason')))}")
    if run.get("error"):
        console.print(f"[red]error[/]: {escape(run['error'].strip().splitlines()[-1])}")
    table = Table("step", *(h for _, h, _ in CKPT_COLUMNS), "", title="Checkpoints")
    for c in report["checkpoints"]:
        flags = " ".join(
            f
            for f, on in (
                ("best", c["is_best"]),
                ("final", c["is_final"]),
                ("missing", not c["on_disk"]),
            )
            if on
        )
        table.add_row(
            str(c["step"]),
            *(_fmt(c["metrics"].get(k), f) for k, _, f in CKPT_COLUMNS),
            f"[green]{flags}[/]" if "best" in flags else flags,
        )
    console.print(table if report["checkpoints"] else "no checkpoints")
    series = [(n, report["metrics"][n]) for n in KEY_SERIES if report["metrics"].get(n)]
    if series:
        t = Table(
            "metric",
            "points",
            "first",
            "best",
            "last",
            "at step",
            title="Metric series (--format json: all)",
        )
        for name, points in series:
            values = [v for _, v in points]
            best = (
                min(values)
                if name in ("train_loss", "val_loss", "val_truncated", "val_eval_s")
                else max(values)
            )
            t.add_row(
                name,
                str(len(points)),
                f"{values[0]:.4g}",
                f"{best:.4g}",
                f"{values[-1]:.4g}",
                str(points[-1][0]),
            )
        console.print(t)
    best = report["best"]
    rid = run["id"]
    if best:
        console.print(
            f"`--adapter {rid}` loads the best checkpoint (step {best['step']}); "
            f"`{rid}:final` the final adapter, `{rid}:step-N` another checkpoint"
        )
    elif report["adapter_for_run_id"]:
        console.print(f"`--adapter {rid}` loads {report['adapter_for_run_id']}")
