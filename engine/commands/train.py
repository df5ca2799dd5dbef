"""`schemalab train`, `schemalab cancel` and `schemalab export`: LoRA training runs.

Exit status: 0 completed (or started, with --detach), 1 failed or cancelled, 2 bad config or
arguments.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli import add_db_argument


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="fine-tune a LoRA adapter (foreground, --detach, or --resume RUN_ID)",
        description="Train a LoRA adapter from a YAML config. Metrics stream to the run log; "
        "Ctrl-C (or `schemalab cancel`) saves a checkpoint and stops; --resume continues a "
        "cancelled, failed or interrupted run from its last checkpoint, as the same run.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML training config (see configs/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (value read as YAML: lr=1e-4, max_steps=null); repeatable",
    )
    p.add_argument("--detach", action="store_true", help="run in the background; print the run id")
    p.add_argument("--resume", type=int, metavar="RUN_ID", help="continue a stopped run")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config, report too-long examples and the memory estimate; do not train",
    )
    p.add_argument(
        "--card-gb",
        type=float,
        default=16.0,
        metavar="GB",
        help="GPU memory to check the estimate against (default 16)",
    )
    add_db_argument(p)
    p.set_defaults(handler=run_train)

    c = subparsers.add_parser(
        "cancel",
        help="stop a training run (it saves a checkpoint first)",
        description="Send SIGTERM to a running training run: it finishes its step, saves a "
        "checkpoint and ends `cancelled`. Resume it later with `schemalab train --resume`.",
    )
    c.add_argument("run_id", type=int, metavar="RUN_ID")
    c.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for the run to stop",
    )
    add_db_argument(c)
    c.set_defaults(handler=run_cancel)

    e = subparsers.add_parser(
        "export",
        help="write a training run's adapter merged into its base model",
        description="Merge a run's LoRA adapter into its base model and save the full model "
        "(safetensors + tokenizer) to OUT_DIR. RUN_ID is the run's best checkpoint when one is "
        "marked (else its final adapter); RUN_ID:final the final adapter; RUN_ID:step-N the "
        "checkpoint of step N.",
    )
    e.add_argument("run_id", metavar="RUN_ID[:final|:step-N]")
    e.add_argument("--merged", required=True, metavar="OUT_DIR", help="folder to write")
    add_db_argument(e)
    e.set_defaults(handler=run_export)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _preflight(cfg, card_gb: float) -> bool:
    """Print the too-long report and the memory estimate; False when training cannot start."""
    from engine.memory import estimate_memory
    from engine.models import ModelError, load_tokenizer, model_problems
    from engine.train.data import DataError, length_report

    # The model resolves here and has the target modules: checked before anything loads.
    problems = model_problems(cfg.model, cfg.target_modules)
    for problem in problems:
        _err(problem)
    if problems:
        return False
    try:
        report = length_report(cfg, load_tokenizer(cfg.model))
    except (ModelError, DataError) as exc:
        _err(str(exc))
        return False
    print(report.message(), file=sys.stderr)
    if report.n_too_long:
        what = "dropped" if cfg.too_long == "drop" else "rejected: training will not start"
        print(f"  they will be {what} (too_long: {cfg.too_long}), never truncated", file=sys.stderr)
    try:
        est = estimate_memory(cfg.model, cfg, card_gb, longest=report.longest_kept or None)
        print(est.summary(), file=sys.stderr)
    except ModelError as exc:
        print(f"no memory estimate: {exc}", file=sys.stderr)
    return not (report.n_too_long and cfg.too_long == "error")


def run_train(args: argparse.Namespace) -> int:
    from engine import runlog
    from engine.train import process
    from engine.train.config import ConfigError, load_config

    if args.resume is not None:
        if args.config or args.overrides:
            _err("--resume uses the run's stored config; drop --config/--set")
            return 2
        try:
            if args.detach:
                process.resume_detached(args.db, args.resume)
                print(args.resume)
                return 0
            return _foreground(
                args,
                lambda prog, log: process.resume_foreground(
                    args.db, args.resume, progress=prog, log=log
                ),
            )
        except process.RunError as exc:
            _err(str(exc))
            return 2
    if not args.config and not args.overrides:
        _err("give --config FILE (e.g. configs/sample-tiny.yaml) and/or --set key=value")
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    if not _preflight(cfg, args.card_gb):
        return 2
    if args.check:
        return 0
    try:
        if args.detach:
            run_id = process.launch_detached(cfg, args.db)
            out = runlog.get_run(runlog.connect(args.db), run_id)["out_dir"]
            print(f"started run {run_id} in the background; log: {out}/train.log",
                  file=sys.stderr)
            print(run_id)
            return 0
        return _foreground(
            args, lambda prog, log: process.run_foreground(cfg, args.db, progress=prog, log=log)
        )
    except process.RunError as exc:  # e.g. an out_dir that another run owns
        _err(str(exc))
        return 2


def _foreground(args, start) -> int:
    from engine import runlog
    from engine.train.progress import RichProgress

    with RichProgress() as prog:
        run_id = start(prog, prog.log)
    run = runlog.get_run(runlog.connect(args.db), run_id)
    summary = run.get("summary") or {}
    if run["status"] == "completed":
        early = f" (stopped early: {summary['stop_reason']})" if summary.get("stopped_early") else ""
        print(
            f"run {run_id} completed{early}: train loss {_num(summary.get('train_loss'))}, "
            f"val loss {_num(summary.get('val_loss'))}; final adapter in {run['adapter']}",
            file=sys.stderr,
        )
        print(best_line(run_id, summary), file=sys.stderr)
        return 0
    if run["status"] == "cancelled":
        print(
            f"run {run_id} cancelled at step {summary.get('step')}; "
            f"continue with `schemalab train --resume {run_id}`",
            file=sys.stderr,
        )
        return 1
    error = (run.get("error") or "").strip()
    hint, _, trace = error.partition("Traceback")
    last = trace.strip().splitlines()[-1] if trace.strip() else ""
    _err(f"run {run_id} {run['status']}: {(hint.strip() + ' ' + last).strip()}")
    if trace:
        print(f"(the full traceback is stored with run {run_id} in {args.db})", file=sys.stderr)
    return 1


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def best_line(run_id: int, summary: dict) -> str:
    """Which checkpoint `RUN_ID` means from now on, and how to pick another."""
    best = summary.get("best_metric") or {}
    if summary.get("best_step") is None:
        return (f"no best checkpoint (no validation metrics): `--adapter {run_id}` is the final "
                "adapter")
    share = summary.get("val_eval_share")
    spent = f"; evaluation took {share:.0%} of the run" if isinstance(share, (int, float)) else ""
    return (
        f"best checkpoint: step {summary['best_step']} ({best.get('name')} "
        f"{_num(best.get('value'))}): `--adapter {run_id}` uses it, `{run_id}:final` the final "
        f"adapter, `{run_id}:step-N` another checkpoint{spent}"
    )


def run_cancel(args: argparse.Namespace) -> int:
    from engine.train.process import RunError, cancel_run

    try:
        print(cancel_run(args.db, args.run_id, wait=args.wait), file=sys.stderr)
    except RunError as exc:
        _err(str(exc))
        return 1
    return 0


def run_export(args: argparse.Namespace) -> int:
    from engine.models import ModelError
    from engine.train.export import export_merged
    from engine.train.process import RunError

    try:
        out = export_merged(
            args.db, args.run_id, args.merged, log=lambda m: print(m, file=sys.stderr)
        )
    except (RunError, ModelError) as exc:
        _err(str(exc))
        return 1
    print(f"merged model written to {out}", file=sys.stderr)
    return 0
