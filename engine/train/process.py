"""A training run as a process: in the foreground, or detached into its own session so it
survives the terminal; cancel by SIGTERM; resume from the last checkpoint.

Resume continues the SAME run (same id and row, status back to `running`, new pid): metric
rows past the checkpoint are deleted and redone, so the curve stays one continuous line.
The detached worker is `python -m engine.train.process --db DB --run-id N [--resume]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine import runlog
from engine.paths import (
    REPO_ROOT,
    OutputsTaken,
    claim_run_dir,
    default_run_dir,
    owner_problem,
    run_identity,
)
from engine.train.config import ConfigError, TrainConfig, config_from_dict, save_config

OOM_HINT = (
    "CUDA ran out of memory. Lower batch_size (and raise grad_accum to keep the effective "
    "batch), lower max_seq_len, or set gradient_checkpointing: true; then resume or restart."
)


class RunError(Exception):
    """A run that cannot be started, resumed or cancelled as asked; the message says why."""


def default_out_dir(db_path: str | Path, run_id: int, started: float | None = None) -> Path:
    """Where a run's outputs go unless its config names a folder: beside its run log
    (`runs.db` -> `runs-outputs/run-N`), never a folder another run owns."""
    return default_run_dir(db_path, run_id, run_identity(db_path, run_id, started))


def _identity(db_path: str | Path, run: dict) -> dict:
    return run_identity(db_path, run["id"], run.get("started"))


def create_train_run(cfg: TrainConfig, db_path: str | Path) -> tuple[int, TrainConfig]:
    """A `running` run row holding the resolved config (with its out_dir filled in). An explicit
    out_dir must be new or empty: a folder holding another run's files is refused."""
    if cfg.out_dir:
        problem = owner_problem(Path(cfg.out_dir).resolve(), {})
        if problem:
            raise RunError(f"out_dir: {problem}; choose a new folder (or leave out_dir unset)")
    db = runlog.connect(db_path)
    run_id = runlog.create_run(
        db, "train", cfg.to_dict(), model=cfg.model, data_path=cfg.train_data, name=cfg.name
    )
    identity = _identity(db_path, runlog.get_run(db, run_id))
    out_dir = Path(cfg.out_dir).resolve() if cfg.out_dir else default_run_dir(
        db_path, run_id, identity
    )
    try:
        claim_run_dir(out_dir, identity)
    except OutputsTaken as exc:  # taken between the check and the claim
        runlog.finish_run(db, run_id, "failed", error=str(exc))
        raise RunError(str(exc)) from exc
    cfg = replace(cfg, out_dir=str(out_dir))
    save_config(cfg, out_dir / "config.yaml")
    runlog.update_run(db, run_id, config=cfg.to_dict(), out_dir=cfg.out_dir)
    return run_id, cfg


def run_out_dir(db_path: str | Path, run: dict) -> Path:
    """The output folder recorded for a run, claimed for it (a folder recorded before owner
    files existed is adopted); raises RunError when another run owns it."""
    identity = _identity(db_path, run)
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    folder = run.get("out_dir") or config.get("out_dir")
    folder = folder or default_run_dir(db_path, run["id"], identity)
    try:
        return claim_run_dir(folder, identity, adopt=True)
    except OutputsTaken as exc:
        raise RunError(f"run {run['id']}: {exc}") from exc


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return "CUDA out of memory" in str(exc)


class _Signals:
    """SIGTERM (and, in the foreground, a first Ctrl-C) ask the loop to checkpoint and stop."""

    def __init__(self, stop: threading.Event, log: Callable[[str], None], catch_int: bool):
        self.stop, self.log, self.catch_int, self.saved = stop, log, catch_int, {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        self.log(
            "stop requested: finishing this step and saving a checkpoint (Ctrl-C again aborts)"
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            sigs = [signal.SIGTERM] + ([signal.SIGINT] if self.catch_int else [])
            for sig in sigs:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def _resume_point(db, run_id: int) -> Path | None:
    """The last checkpoint of a run (None: start over), with later metric rows removed."""
    ckpts = [c for c in runlog.checkpoints(db, run_id) if Path(c["path"]).is_dir()]
    if not ckpts:
        runlog.delete_metrics_after(db, run_id, -1)
        return None
    last = ckpts[-1]
    runlog.delete_metrics_after(db, run_id, last["step"])
    return Path(last["path"])


def execute(
    db_path: str | Path,
    run_id: int,
    *,
    resume: bool = False,
    progress=None,
    log: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    catch_int: bool = False,
    device: str | None = None,
) -> str:
    """Run (or resume) training for an existing run row in this process; returns the end status."""
    from engine.train.loop import train

    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    runlog.update_run(
        db,
        run_id,
        status="running",
        pid=os.getpid(),
        host=socket.gethostname(),
        heartbeat=time.time(),
        ended=None,
        error=None,
    )
    stop = stop or threading.Event()
    try:
        out_dir = run_out_dir(db_path, run)
    except RunError as exc:
        runlog.finish_run(db, run_id, "failed", error=str(exc))
        log(str(exc))
        return "failed"
    try:
        cfg = config_from_dict(run["config"])
        resume_from = _resume_point(db, run_id) if resume else None
        with _Signals(stop, log, catch_int):
            summary = train(
                cfg,
                db,
                run_id,
                out_dir,
                resume_from=resume_from,
                stop=stop,
                progress=progress,
                log=log,
                device=device,
            )
    except ConfigError as exc:
        runlog.finish_run(db, run_id, "failed", error=f"stored config is not valid: {exc}")
        return "failed"
    except KeyboardInterrupt:
        runlog.finish_run(
            db, run_id, "interrupted", error="aborted by Ctrl-C; resume from the last checkpoint"
        )
        raise
    except BaseException as exc:
        message = OOM_HINT + "\n\n" if _is_oom(exc) else ""
        runlog.finish_run(db, run_id, "failed", error=message + traceback.format_exc())
        log(f"run {run_id} failed: {OOM_HINT if message else exc}")
        if not isinstance(exc, Exception):
            raise
        return "failed"
    status = summary.pop("status")
    runlog.finish_run(db, run_id, status, summary=summary)
    return status


def run_foreground(cfg: TrainConfig, db_path: str | Path, progress=None, log=print, **kw) -> int:
    """Create a run and train it in this process (Ctrl-C checkpoints and cancels)."""
    run_id, _ = create_train_run(cfg, db_path)
    execute(db_path, run_id, progress=progress, log=log, catch_int=True, **kw)
    return run_id


def resume_foreground(db_path: str | Path, run_id: int, progress=None, log=print, **kw) -> int:
    _check_resumable(db_path, run_id)
    execute(db_path, run_id, resume=True, progress=progress, log=log, catch_int=True, **kw)
    return run_id


def _spawn(db_path: str | Path, run_id: int, out_dir: Path, resume: bool) -> int:
    """Start the worker in a new session (immune to the terminal's hangup), output to train.log."""
    db_path = str(Path(db_path).resolve())
    cmd = [sys.executable, "-m", "engine.train.process", "--db", db_path, "--run-id", str(run_id)]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    runlog.update_run(runlog.connect(db_path), run_id, pid=proc.pid)
    return proc.pid


def launch_detached(cfg: TrainConfig, db_path: str | Path) -> int:
    """Create a run and start it as a detached process; returns the run id at once."""
    run_id, cfg = create_train_run(cfg, db_path)
    _spawn(db_path, run_id, Path(cfg.out_dir), resume=False)
    return run_id


def _check_resumable(db_path: str | Path, run_id: int) -> dict:
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)  # reaps dead runs first
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    if run["kind"] != "train":
        raise RunError(f"run {run_id} is a {run['kind']} run, not a training run")
    if run["status"] == "running":
        raise RunError(f"run {run_id} is still running (pid {run['pid']})")
    if run["status"] == "completed":
        raise RunError(f"run {run_id} already completed; its adapter is in {run['adapter']}")
    # Mark it running under this (live) process now, so no reader sees a stale pid meanwhile.
    runlog.update_run(db, run_id, status="running", pid=os.getpid(), ended=None, error=None)
    return run


def resume_detached(db_path: str | Path, run_id: int) -> int:
    """Continue a cancelled, failed or interrupted run from its last checkpoint, detached."""
    run = _check_resumable(db_path, run_id)
    try:
        out_dir = run_out_dir(db_path, run)
    except RunError as exc:
        runlog.finish_run(runlog.connect(db_path), run_id, run["status"], error=str(exc))
        raise
    _spawn(db_path, run_id, out_dir, resume=True)
    return run_id


def cancel_run(db_path: str | Path, run_id: int, wait: float = 0.0) -> str:
    """Ask a running training run to checkpoint and stop (SIGTERM); returns what happened."""
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    if run["kind"] != "train":
        raise RunError(f"run {run_id} is a {run['kind']} run; only training runs can be cancelled")
    if run["status"] != "running":
        raise RunError(f"run {run_id} is not running (status: {run['status']}); nothing to cancel")
    if run["host"] != socket.gethostname():
        raise RunError(f"run {run_id} runs on host {run['host']}; cancel it there")
    try:
        os.kill(run["pid"], signal.SIGTERM)
    except ProcessLookupError:
        runlog.reap_interrupted(db)
        raise RunError(f"run {run_id}: its process {run['pid']} is gone; it is now interrupted")
    message = f"sent SIGTERM to run {run_id} (pid {run['pid']}): it saves a checkpoint and stops"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = runlog.get_run(db, run_id)["status"]
        if status != "running":
            return f"run {run_id} stopped: {status}"
        time.sleep(0.2)
    return message


def main(argv: list[str] | None = None) -> int:
    """The detached worker: train an existing run row, logging plain lines to stdout."""
    parser = argparse.ArgumentParser(prog="python -m engine.train.process")
    parser.add_argument("--db", required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def progress(step: int, total: int, metrics: dict | None) -> None:
        if metrics:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if v is not None)
            log(f"step {step}/{total} {shown}")

    # A cancel can arrive while torch is still importing or the model loading (seconds): keep
    # it, so the run stops with a checkpoint at its first step instead of dying unrecorded.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    log(f"run {args.run_id}: pid {os.getpid()}, db {args.db}")
    status = execute(
        args.db, args.run_id, resume=args.resume, progress=progress, log=log, stop=stop
    )
    log(f"run {args.run_id} ended: {status}")
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
