"""`schemalab train`, `schemalab cancel` and `schemalab export`: LoRA training runs.

Exit status: 0 completed (or started, with --detach), 1 failed or cancelled, 2 bad config or
arguments, or a run the memory estimate says this machine cannot hold (refused unless --force).
`--check`: 0 the config is good and fits, 1 it does not fit, 2 bad config.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import add_db_argument, run_id_arg


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
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="data-parallel processes started with torchrun (one GPU each; gloo on CPU); "
        "each step takes batch_size x grad_accum x N examples (same as --set nproc=N)",
    )
    p.add_argument(
        "--resume",
        type=run_id_arg,
        metavar="RUN_ID",
        help="continue a stopped run (--set may change only batch_size, kept "
        "effective, and gradient_checkpointing)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="with --resume: start the run again from step 0 (when it has no "
        "checkpoint left to resume from)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config, report too-long examples and the memory estimate; do not train",
    )
    p.add_argument(
        "--card-gb",
        type=float,
        default=None,
        metavar="GB",
        help="with --check: plan for a CUDA card of GB instead of this machine's device",
    )
    p.add_argument(
        "--format",
        dest="output_format",
        choices=("text", "json"),
        default="text",
        help="with --check: json prints {device, estimate_gb, available_gb, fits, parts, "
        "too_long, ...} on stdout",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="launch even when the memory estimate says the run does not fit this machine",
    )
    add_db_argument(p)
    p.set_defaults(handler=run_train)

    c = subparsers.add_parser(
        "cancel",
        help="stop a training run (it saves a checkpoint first)",
        description="Send SIGTERM to a running training run: it finishes its step, saves a "
        "checkpoint and ends `cancelled`. Resume it later with `schemalab train --resume`.",
    )
    c.add_argument("run_id", type=run_id_arg, metavar="RUN_ID")
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


def _preflight(
    cfg,
    card_gb: float | None = None,
    *,
    check: bool = False,
    as_json: bool = False,
    force: bool = False,
) -> int | None:
    """The too-long report and the memory estimate for the device the run will use (with
    `card_gb`, a CUDA card of that size). None: training may start; else the exit status: 2 a
    config that cannot train or a launch that does not fit (refused unless `force`), 1 a check
    that does not fit, 0 a check that fits."""
    from engine.models.checks import model_problems
    from engine.models.load import ModelError, load_tokenizer
    from engine.models.memory import describe_change, estimate_memory, suggestions
    from engine.train.data import DataError, length_report

    # The model resolves here and has the target modules: checked before anything loads.
    problems = model_problems(cfg.model, cfg.target_modules)
    for problem in problems:
        _err(problem)
    if problems:
        return 2
    try:
        report = length_report(cfg, load_tokenizer(cfg.model))
    except (ModelError, DataError) as exc:
        _err(str(exc))
        return 2
    print(report.message(), file=sys.stderr)
    if report.n_too_long:
        what = "dropped" if cfg.too_long == "drop" else "rejected: training will not start"
        print(f"  they will be {what} (too_long: {cfg.too_long}), never truncated", file=sys.stderr)
    longest = report.longest_kept or None
    est, fixes, doc = (
        None,
        [],
        {"device": None, "estimate_gb": None, "available_gb": None, "fits": None, "parts": {}},
    )
    try:
        est = estimate_memory(cfg.model, cfg, card_gb if check else None, longest=longest)
        fixes = suggestions(cfg.model, cfg, est, longest=longest)
        doc = {**est.to_dict(), "suggestions": fixes}
        print(est.summary(), file=sys.stderr)
    except ModelError as exc:
        print(f"no memory estimate: {exc}", file=sys.stderr)
        doc["error"] = str(exc)
    if est is not None and not est.fits:
        if fixes:
            print(
                "  these fit: "
                + "; ".join(
                    f"{describe_change(f['change'])} (~{f['estimate_gb']:.1f} GB)" for f in fixes
                ),
                file=sys.stderr,
            )
        else:
            print(
                "  nothing tried fits (gradient checkpointing, batch_size 1, max_seq_len 128): "
                "use a smaller model or a machine with more memory",
                file=sys.stderr,
            )
    bad_lengths = bool(report.n_too_long and cfg.too_long == "error")
    if as_json:
        doc.update(
            model=cfg.model,
            too_long=list(report.too_long_ids),
            n_too_long=report.n_too_long,
            longest_kept=report.longest_kept,
            max_seq_len=cfg.max_seq_len,
            ok=not bad_lengths,
            skipped_lines=report.skipped,
        )
        print(json.dumps(doc, indent=1))
    if bad_lengths:
        return 2
    if est is not None and not est.fits:
        if check:
            return 1
        if not force:
            _err(
                f"this run needs about {est.total_gb:.1f} GB and {est.where()} cannot hold it: "
                "apply a change above, or add --force to launch anyway"
            )
            return 2
        print(
            "warning: launching anyway (--force); the run may be killed for lack of memory",
            file=sys.stderr,
        )
    return 0 if check else None


def run_train(args: argparse.Namespace) -> int:
    from engine import runlog
    from engine.train import process
    from engine.train.config import ConfigError, load_config

    if args.resume is not None:
        if args.config:
            _err("--resume uses the run's stored config; drop --config")
            return 2
        if args.nproc is not None:
            _err("--resume trains on the run's own number of processes; drop --nproc")
            return 2
        try:
            if args.detach:
                process.resume_detached(
                    args.db, args.resume, restart=args.restart, overrides=args.overrides
                )
                print(args.resume)
                return 0
            # Claimed before the progress display starts, so a refusal is one plain line.
            process.claim_for_resume(
                args.db,
                args.resume,
                restart=args.restart,
                overrides=args.overrides,
                log=lambda m: print(m, file=sys.stderr),
            )
            return _foreground(
                args,
                lambda prog, log: process.resume_foreground(
                    args.db,
                    args.resume,
                    progress=prog,
                    log=log,
                    restart=args.restart,
                    claimed=True,
                ),
            )
        except process.RunError as exc:
            _err(str(exc))
            return 2
    if args.restart:
        _err("--restart goes with --resume RUN_ID")
        return 2
    if args.nproc is not None:
        args.overrides = [*args.overrides, f"nproc={args.nproc}"]
    if not args.config and not args.overrides:
        _err("give --config FILE (e.g. configs/sample-tiny.yaml) and/or --set key=value")
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    if cfg.nproc > 1 and not args.check:
        from engine.train.launch import launch_problem

        if problem := launch_problem(cfg.nproc):
            _err(problem)
            return 2
    status = _preflight(
        cfg, args.card_gb, check=args.check, as_json=args.output_format == "json", force=args.force
    )
    if status is not None:
        return status
    try:
        if args.detach:
            run_id = process.launch_detached(cfg, args.db)
            out = runlog.get_run(runlog.connect(args.db), run_id)["out_dir"]
            print(f"started run {run_id} in the background; log: {out}/train.log", file=sys.stderr)
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
        early = (
            f" (stopped early: {summary['stop_reason']})" if summary.get("stopped_early") else ""
        )
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
        return (
            f"no best checkpoint (no validation metrics): `--adapter {run_id}` is the final adapter"
        )
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
    from engine.models.load import ModelError
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
