"""Starting a data-parallel run: the torchrun command line of a run, its launch in a new session
(output to train.log, the launcher's pid recorded as the run's) and following it from the run
log in the foreground. The ranks themselves run engine.train.distributed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SHUTDOWN_S = 300


def launch_problem(nproc: int) -> str | None:
    """Why `nproc` processes cannot run here (None: they can)."""
    if nproc <= 1:
        return None
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() < nproc:
        return (
            f"nproc: {nproc} processes need {nproc} GPUs, {torch.cuda.device_count()} visible; "
            "lower nproc (or set CUDA_VISIBLE_DEVICES)"
        )
    return None


def command(db_path: str | Path, run_id: int, nproc: int, resume: bool, restart: bool = False):
    """The torchrun command line of a run."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--shutdown-timeout={SHUTDOWN_S}",
        "-m",
        "engine.train.distributed",
        "--db",
        str(Path(db_path).resolve()),
        "--run-id",
        str(run_id),
    ]
    return cmd + (["--resume"] if resume else []) + (["--restart"] if restart else [])


def launch(
    db_path: str | Path,
    run_id: int,
    out_dir: Path,
    nproc: int,
    *,
    resume: bool = False,
    restart: bool = False,
) -> subprocess.Popen:
    """Start torchrun for a run in a new session, all output to train.log; the launcher's pid
    becomes the run's pid."""
    from engine import runlog
    from engine.paths import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for several processes
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "ab") as logf:
        proc = subprocess.Popen(
            command(db_path, run_id, nproc, resume, restart),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    runlog.set_run_process(runlog.connect(db_path), run_id, proc.pid)
    return proc


def follow(
    proc: subprocess.Popen, db_path: str | Path, run_id: int, progress=None, log=print
) -> int:
    """Wait for a launched group, feeding `progress(step, total, metrics)` from the run log.
    Ctrl-C asks the group to checkpoint and stop (SIGTERM); a second Ctrl-C kills it."""
    from engine import runlog

    db = runlog.connect(db_path)
    after, total, interrupts = -1, 0, 0
    while True:
        try:
            done = proc.poll() is not None
            by_step: dict[int, dict] = {}
            for row in runlog.metrics(db, run_id, after_step=after):
                by_step.setdefault(row["step"], {})[row["name"]] = row["value"]
            for step, metrics in sorted(by_step.items()):
                if step == 0:
                    total = int(metrics.get("total_steps", total))
                elif progress:
                    progress(step, total, metrics)
                after = step
            if done:
                return proc.returncode
            time.sleep(0.5)
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                proc.send_signal(signal.SIGTERM)
                log(
                    "stop requested: the ranks finish this step and save a checkpoint "
                    "(Ctrl-C again kills them)"
                )
            else:
                proc.kill()
                proc.wait()
                return proc.returncode
