"""Data-parallel training: one run over several processes (torch DDP); each rank runs this
module (engine.train.launch starts them through torchrun).

`schemalab train --nproc N` (config key `nproc`) starts

    python -m torch.distributed.run --standalone --nproc-per-node N \\
        -m engine.train.distributed --db DB --run-id ID [--resume]

with nccl on CUDA (one GPU per process) and gloo on CPU. The launcher's pid is the run's pid:
`schemalab cancel` sends it SIGTERM, it passes the signal on to every rank, and the ranks agree
to stop after the same step (rank 0 saves the checkpoint, the run ends `cancelled`). Killed
outright, its ranks die with it (Linux: PR_SET_PDEATHSIG) and the run reads `interrupted`.
`--resume` continues the run on the same number of processes (its stored `nproc`).

The batches: every optimizer step takes `batch_size x grad_accum x nproc` examples, the same
length-grouped batches in the same order as one process with `grad_accum x nproc` would take;
rank r takes micro-batches r, r+N, r+2N, ... of the step. Each rank divides its summed loss by
the target-token count of the whole step (computed locally from the example lengths), so the
averaged gradient is the one-process gradient up to float rounding. Non-final micro-steps run
under `no_sync()`: one gradient all-reduce per optimizer step.

Only rank 0 touches the run log, checkpoints, the adapter and the evaluations (validation loss
and decoded metrics, on its own copy of the model); the logged train loss and token counts are
summed over the ranks. LoRA dropout draws from the same seed on every rank, so a resumed run
with dropout continues like the original statistically, not bit for bit.
"""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

# Seconds the launcher waits for ranks to checkpoint after SIGTERM before it kills them.
# How long a rank waits in a collective (e.g. while rank 0 decodes validation answers).
COLLECTIVE_TIMEOUT_S = 4 * 3600


@dataclass
class Group:
    """This process's place in the group, and the collectives the training loop needs."""

    rank: int
    world: int
    local_rank: int
    device: str
    control: Any = None  # a gloo group for CPU-side flags (None: the default group, gloo)
    started: bool = field(default=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, payload: Any = None) -> Any:
        """Rank 0's `payload`, on every rank (a picklable object)."""
        import torch.distributed as dist

        box = [payload if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.control)
        self.started = True
        return box[0]

    def wrap(self, module):
        """`module` under DistributedDataParallel (its buffers are constant: not broadcast)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        params = inspect.signature(DistributedDataParallel).parameters
        quiet = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        return DistributedDataParallel(module, device_ids=ids, **{quiet: False})

    def sum(self, values: list) -> list[float]:
        """Element-wise sums over the ranks of numbers or 0-d tensors (on this rank's device)."""
        import torch
        import torch.distributed as dist

        t = torch.stack(
            [
                (
                    v.detach().double().reshape(())
                    if torch.is_tensor(v)
                    else torch.tensor(float(v), dtype=torch.float64)
                ).to(self.device)
                for v in values
            ]
        )
        dist.all_reduce(t)
        return t.tolist()

    def any(self, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the ranks (CPU only: no device sync)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return [bool(v) for v in t.tolist()]


def init_group() -> Group:
    """Join the group torchrun set up (RANK, WORLD_SIZE, LOCAL_RANK in the environment)."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    control = dist.new_group(backend="gloo") if backend != "gloo" else None
    return Group(rank, world, local, device, control)


def _die_with_launcher() -> None:
    """Linux: this rank is killed when its launcher dies, even by SIGKILL."""
    parent = os.getppid()
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before the request took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """One rank: rank 0 runs the run (run log, checkpoints, evaluations), the others train."""
    parser = argparse.ArgumentParser(prog="python -m engine.train.distributed")
    parser.add_argument("--db", required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--restart", action="store_true")
    args = parser.parse_args(argv)
    _die_with_launcher()
    launcher = os.getppid()
    rank = int(os.environ.get("RANK", "0"))
    # A stop (SIGTERM from the launcher, or SIGINT) can come while torch loads: keep it.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    def log(message: str) -> None:
        # One write per line: the ranks share train.log, and print's separate write of the
        # newline lets another rank's line land in the middle of this one.
        sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] rank {rank}: {message}\n")
        sys.stdout.flush()

    def progress(step: int, total: int, metrics: dict | None) -> None:
        if metrics:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if v is not None)
            log(f"step {step}/{total} {shown}")

    group = init_group()
    log(f"run {args.run_id}: pid {os.getpid()}, {group.world} processes on {group.device}")
    try:
        if group.is_main:
            from engine.train.process import execute

            status = execute(
                args.db,
                args.run_id,
                resume=args.resume,
                progress=progress,
                log=log,
                stop=stop,
                restart=args.restart,
                pid=launcher,
                group=group,
            )
            if not group.started:  # training never began: release the other ranks
                group.share(None)
        else:
            status = _follow_rank(group, args.run_id, stop, log)
        log(f"run {args.run_id} ended: {status}")
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 0 if status in ("completed", "cancelled") else 1


def _follow_rank(group: Group, run_id: int, stop: threading.Event, log) -> str:
    """A rank other than 0: train with rank 0's config, output folder and resume point."""
    from engine.train.config import config_from_dict
    from engine.train.loop import train

    payload = group.share()
    if payload is None:
        return "not started (see rank 0)"
    config, out_dir, resume_from, micro_batch = payload
    summary = train(
        config_from_dict(config),
        None,
        run_id,
        Path(out_dir),
        resume_from=Path(resume_from) if resume_from else None,
        stop=stop,
        log=log,
        group=group,
        **({"micro_batch": micro_batch} if micro_batch else {}),
    )
    return summary["status"]


if __name__ == "__main__":
    sys.exit(main())
