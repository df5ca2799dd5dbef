"""Data-parallel training against one process, same run: wall time and final loss.

Both runs train the same config for the same optimizer steps with the same effective batch:
one process with grad_accum x N, and N processes (torchrun; gloo on CPU, nccl on CUDA) with
grad_accum each. Each is a `schemalab train` command in its own run log, timed from the
command's start to its exit (process start, model loading and the final save included), and
its training time is the run's own `elapsed_s`. The ratio printed is one process / N processes
(above 1: the group is faster). The final train losses should agree to float rounding
(lora_dropout is 0 so that no random mask differs).

    OMP_NUM_THREADS=1 python benchmarks/train_ddp.py --model tiny --nproc 2 --steps 20

On CPU each process gets OMP_NUM_THREADS threads: give the group as many cores as it has
processes, or the comparison measures contention.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _run(db: Path, nproc: int, args, accum: int) -> dict:
    from engine import runlog

    cmd = [
        sys.executable,
        "-m",
        "engine",
        "train",
        "--db",
        str(db),
        "--set",
        f"model={args.model}",
        "--set",
        f"train_data={args.data}",
        "--set",
        f"batch_size={args.batch_size}",
        "--set",
        f"grad_accum={accum}",
        "--set",
        f"max_steps={args.steps}",
        "--set",
        "log_every=1",
        "--set",
        "lr=1e-2",
        "--set",
        "lora_dropout=0",
        "--set",
        "val_eval_limit=0",
        "--set",
        "eval_every=100000",
        "--set",
        "save_every=100000",
        "--set",
        f"nproc={nproc}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"nproc={nproc} failed:\n{done.stderr[-2000:]}")
    conn = runlog.connect(db)
    run = runlog.list_runs(conn)[-1]
    run = runlog.get_run(conn, run["id"])
    losses = [m["value"] for m in runlog.metrics(conn, run["id"], "train_loss")]
    return {"wall_s": wall, "train_s": run["summary"]["elapsed_s"], "loss": losses[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--data", default=str(REPO / "datasets" / "sample" / "train.jsonl"))
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1, help="per process")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = _run(Path(tmp) / "one.db", 1, args, args.grad_accum * args.nproc)
        group = _run(Path(tmp) / "group.db", args.nproc, args, args.grad_accum)
    effective = args.batch_size * args.grad_accum * args.nproc
    print(
        f"model {args.model}, {args.steps} steps, effective batch {effective}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}, {os.cpu_count()} cores"
    )
    for name, r in (("1 process", one), (f"{args.nproc} processes", group)):
        print(
            f"{name:>12}: wall {r['wall_s']:6.1f} s, training {r['train_s']:6.1f} s, "
            f"final loss {r['loss']:.6f}"
        )
    print(
        f"ratio 1 / {args.nproc} processes: wall {one['wall_s'] / group['wall_s']:.2f}x, "
        f"training {one['train_s'] / max(group['train_s'], 1e-9):.2f}x; "
        f"final loss difference {abs(one['loss'] - group['loss']) / one['loss']:.1e} (relative)"
    )


if __name__ == "__main__":
    main()
