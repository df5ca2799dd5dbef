"""Throughput of the in-training evaluation, measured in one invocation: the same short training
run twice on the bundled sample, once with decoded validation metrics (val_eval_limit > 0) and
once without (val_eval_limit=0), so the evaluation's examples/s, its share of the run and the
wall-clock it adds are side by side.

    .venv/bin/python benchmarks/val_eval_throughput.py                       # tiny, CPU
    .venv/bin/python benchmarks/val_eval_throughput.py --model smollm2-135m-instruct --steps 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
REPO = Path(__file__).resolve().parent.parent


def one_run(args, workdir: Path, limit: int) -> dict:
    from engine import runlog
    from engine.train.config import load_config
    from engine.train.process import run_foreground

    cfg = load_config(
        None,
        [
            f"model={args.model}",
            f"train_data={args.data}",
            f"out_dir={workdir / f'out-{limit}'}",
            f"max_steps={args.steps}",
            f"eval_every={args.eval_every}",
            f"save_every={args.steps}",
            f"log_every={args.eval_every}",
            f"batch_size={args.batch_size}",
            "grad_accum=1",
            "lr=1e-3",
            f"val_eval_limit={limit}",
            f"val_max_new_tokens={args.max_new_tokens}",
            f"val_eval_batch={args.eval_batch}",
            f"val_constrained={str(args.constrained).lower()}",
            "keep_last=1",
        ],
    )
    db_path = workdir / "runs.db"
    t0 = time.perf_counter()
    run_id = run_foreground(cfg, db_path, log=lambda m: None, device=args.device)
    wall = time.perf_counter() - t0
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    if run["status"] != "completed":
        raise SystemExit(f"run {run_id} {run['status']}: {run.get('error')}")
    evals = runlog.metrics(db, run_id, "val_eval_s")
    return {"wall": wall, "summary": run["summary"], "evals": [m["value"] for m in evals]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", default=str(REPO / "datasets" / "sample" / "train.jsonl"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument(
        "--limit", type=int, default=8, help="val_eval_limit of the run with evaluation"
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--eval-batch", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--unconstrained", dest="constrained", action="store_false")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        one_run(
            argparse.Namespace(**{**vars(args), "steps": 2, "eval_every": 2}), workdir, 1
        )  # warm-up
        on = one_run(args, workdir, args.limit)
        off = one_run(args, workdir, 0)

    s = on["summary"]
    n_evals = len(on["evals"])
    eval_s = sum(on["evals"])
    examples = s["val_eval_examples"] * n_evals
    print(
        f"{args.model}, {args.steps} steps, evaluation every {args.eval_every} steps "
        f"({n_evals} evaluations of {s['val_eval_examples']} examples, "
        f"{'constrained' if args.constrained else 'unconstrained'}, "
        f"max_new_tokens {args.max_new_tokens}, batch {args.eval_batch})"
    )
    # "loop s" is the training loop alone (the summary's elapsed_s); "wall s" adds model loading.
    on_loop, off_loop = s["elapsed_s"], off["summary"]["elapsed_s"]
    print(f"{'':34} {'wall s':>7} {'loop s':>7} {'eval s':>7} {'eval ex/s':>10} {'share':>7}")
    print(
        f"{'with decoded val metrics':34} {on['wall']:7.1f} {on_loop:7.1f} {eval_s:7.1f} "
        f"{examples / eval_s if eval_s else 0:10.2f} {s['val_eval_share']:7.1%}"
    )
    print(
        f"{'val_eval_limit=0 (val_loss only)':34} {off['wall']:7.1f} {off_loop:7.1f} {0.0:7.1f} "
        f"{'-':>10} {'-':>7}"
    )
    print(
        f"evaluation adds {on_loop - off_loop:+.1f} s to the loop "
        f"({(on_loop - off_loop) / off_loop:+.0%} of the loop without it); "
        f"val JSONExact {s.get('val_json_exact', 0):.1%}, truncated {s.get('val_truncated', 0):.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
