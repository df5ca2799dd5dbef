"""A training run as a process: in the foreground, or detached into its own session so it
survives the terminal; cancel by SIGTERM; resume from the last checkpoint.

Resume continues the SAME run (same id and row, status back to `running`, new pid): metric
rows past the checkpoint are deleted and redone, so the curve stays one continuous line.
The detached worker is `python -m engine.train.process --db DB --run-id N [--resume]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    "CUDA ran out of memory. Resume with a smaller batch (the effective batch is kept): "
    "`schemalab train --resume RUN_ID --set batch_size=N` (N dividing the run's batch size) "
    "and/or `--set gradient_checkpointing=true`; or start a new run with a lower max_seq_len."
)


DISK_FULL_HINT = (
    "The disk is full. Free some space (old runs' checkpoints, `schemalab runs` lists them), "
    "then resume; the last complete checkpoint is kept."
)


def _is_disk_full(exc: BaseException, folder: Path | None = None) -> bool:
    """Did `exc` (or an exception it came from) fail for want of disk space? Libraries that
    hide the OS error (torch's zip writer) are caught by the free space left under `folder`."""
    import errno

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen).lower()
        if "disk is full" in text or "no space left" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    if folder is not None and isinstance(exc, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def _finish(db, run_id: int, status: str, **fields) -> bool:
    """End a run; False when the run log cannot be written (a full disk): readers then see
    the run as interrupted once this process is gone."""
    try:
        runlog.finish_run(db, run_id, status, **fields)
    except Exception:  # noqa: BLE001 - the failure being recorded is the one to report
        return False
    return True


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
    out_dir = (
        Path(cfg.out_dir).resolve() if cfg.out_dir else default_run_dir(db_path, run_id, identity)
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


def _saved_checkpoints(db, run_id: int) -> list[dict]:
    """A run's recorded checkpoints whose folders are still on disk, in step order."""
    return [c for c in runlog.checkpoints(db, run_id) if Path(c["path"]).is_dir()]


def _resume_point(db, run_id: int, restart: bool = False) -> Path | None:
    """The last checkpoint of a run, with later metric rows removed; with `restart`, none (the
    run starts over from step 0: its metric and checkpoint rows are removed)."""
    if restart:
        runlog.delete_metrics_after(db, run_id, -1)
        for c in runlog.checkpoints(db, run_id):
            runlog.delete_checkpoint(db, run_id, c["step"])
        return None
    ckpts = _saved_checkpoints(db, run_id)
    if not ckpts:
        raise RunError(_no_checkpoint_message(run_id))
    last = ckpts[-1]
    runlog.delete_metrics_after(db, run_id, last["step"])
    return Path(last["path"])


def _no_checkpoint_message(run_id: int, out_dir: str | None = None) -> str:
    where = f" (output folder {out_dir})" if out_dir else ""
    return (
        f"run {run_id} has no checkpoint on disk to resume from{where}; start it again from "
        f"step 0 with `schemalab train --resume {run_id} --restart`"
    )


# Config keys `--resume` may change: they change memory use, not what is trained.
RESUME_OVERRIDES = ("batch_size", "gradient_checkpointing")
# Stored in a resumed run's config beside the TrainConfig keys: the micro-batch size its
# batches are split into (the data order and the effective batch stay the run's own).
MICRO_BATCH_KEY = "micro_batch_size"


def resume_overrides(run: dict, overrides: list[str]) -> tuple[dict, list[str]]:
    """The run's stored config with the safe `--set` overrides of a resume applied, and what
    they mean in words. `batch_size=N` keeps the run's data order and effective batch: each
    batch is split into micro-batches of N (N must divide the run's batch size), so the
    resumed run trains exactly the same examples per step. Raises RunError for anything else."""
    from engine.train.config import parse_override

    config = dict(run.get("config") or {})
    notes = []
    for item in overrides:
        try:
            key, value = parse_override(item)
        except ConfigError as exc:
            raise RunError(str(exc)) from exc
        if key not in RESUME_OVERRIDES:
            raise RunError(
                f"--resume keeps the run's config; only {', '.join(RESUME_OVERRIDES)} may be "
                f"changed with --set (got {key!r}); start a new run for other changes"
            )
        if key == "gradient_checkpointing":
            if not isinstance(value, bool):
                raise RunError(f"gradient_checkpointing: must be true or false, got {value!r}")
            config[key] = value
            notes.append(f"gradient checkpointing {'on' if value else 'off'}")
            continue
        batch = int(config.get("batch_size") or 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RunError(f"batch_size: must be an integer >= 1, got {value!r}")
        if batch % value:
            divisors = [d for d in range(1, batch + 1) if batch % d == 0]
            raise RunError(
                f"batch_size={value}: a resumed run keeps its batches of {batch} (its data order "
                f"and effective batch), split into micro-batches; choose one of "
                f"{', '.join(map(str, divisors))}"
            )
        config[MICRO_BATCH_KEY] = None if value == batch else value
        accum = int(config.get("grad_accum") or 1) * batch // value
        notes.append(
            f"micro-batches of {value} ({accum} per step), effective batch "
            f"{batch * int(config.get('grad_accum') or 1)} unchanged"
        )
    if config.get(MICRO_BATCH_KEY) is None:
        config.pop(MICRO_BATCH_KEY, None)
    return config, notes


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
    restart: bool = False,
    pid: int | None = None,
    group=None,
) -> str:
    """Run (or resume) training for an existing run row in this process; returns the end status.
    As rank 0 of a data-parallel run (`group`), `pid` is the launcher's: the run's process."""
    from engine.train.loop import train

    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    runlog.update_run(db, run_id, status="running", ended=None, error=None)
    runlog.set_run_process(db, run_id, pid or os.getpid())
    stop = stop or threading.Event()
    try:
        out_dir = run_out_dir(db_path, run)
        resume_from = _resume_point(db, run_id, restart) if resume else None
    except RunError as exc:
        runlog.finish_run(db, run_id, "failed", error=str(exc))
        log(str(exc))
        return "failed"
    try:
        stored = dict(run["config"] or {})
        micro_batch = stored.pop(MICRO_BATCH_KEY, None)
        cfg = config_from_dict(stored)
        if micro_batch:
            log(
                f"micro-batches of {micro_batch} (batches of {cfg.batch_size} split; the "
                f"effective batch {cfg.effective_batch} is unchanged)"
            )
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
                **({"micro_batch": micro_batch} if micro_batch else {}),
                **({"group": group} if group is not None else {}),
            )
    except ConfigError as exc:
        runlog.finish_run(db, run_id, "failed", error=f"stored config is not valid: {exc}")
        return "failed"
    except KeyboardInterrupt:
        _finish(
            db, run_id, "interrupted", error="aborted by Ctrl-C; resume from the last checkpoint"
        )
        raise
    except BaseException as exc:
        full = _is_disk_full(exc, out_dir)
        oom = OOM_HINT.replace("RUN_ID", str(run_id))
        hint = oom if _is_oom(exc) else DISK_FULL_HINT if full else ""
        message = hint + "\n\n" if hint else ""
        if not _finish(db, run_id, "failed", error=message + traceback.format_exc()):
            log(f"run {run_id}: the run log could not be written either")
        log(f"run {run_id} failed: {hint or exc}")
        if not isinstance(exc, Exception):
            raise
        return "failed"
    status = summary.pop("status")
    if not _finish(db, run_id, status, summary=summary):
        log(f"run {run_id} ended {status}, but the run log could not be written (disk full?)")
    return status


def run_foreground(cfg: TrainConfig, db_path: str | Path, progress=None, log=print, **kw) -> int:
    """Create a run and train it in this process (Ctrl-C checkpoints and cancels); with
    `nproc` > 1, in a torchrun group this process waits for (engine.train.distributed)."""
    run_id, cfg = create_train_run(cfg, db_path)
    if cfg.nproc > 1:
        return _run_group(db_path, run_id, Path(cfg.out_dir), cfg.nproc, progress, log)
    execute(db_path, run_id, progress=progress, log=log, catch_int=True, **kw)
    return run_id


def resume_foreground(
    db_path: str | Path,
    run_id: int,
    progress=None,
    log=print,
    *,
    restart: bool = False,
    overrides: list[str] | None = None,
    claimed: bool = False,
    **kw,
) -> int:
    """Continue a stopped run in this process (see `claim_for_resume`); `claimed`: the caller
    has claimed it already."""
    if claimed:
        run = runlog.get_run(runlog.connect(db_path), run_id)
    else:
        run = claim_for_resume(db_path, run_id, restart=restart, overrides=overrides, log=log)
    if _nproc(run) > 1:
        out_dir = run_out_dir(db_path, run)
        return _run_group(
            db_path, run_id, out_dir, _nproc(run), progress, log, resume=True, restart=restart
        )
    execute(
        db_path,
        run_id,
        resume=True,
        progress=progress,
        log=log,
        catch_int=True,
        restart=restart,
        **kw,
    )
    return run_id


def _spawn(
    db_path: str | Path,
    run_id: int,
    out_dir: Path,
    resume: bool,
    restart: bool = False,
    nproc: int = 1,
) -> int:
    """Start the worker in a new session (immune to the terminal's hangup), output to train.log."""
    if nproc > 1:  # a torchrun launcher: its pid is the run's
        from engine.train.launch import launch

        return launch(db_path, run_id, out_dir, nproc, resume=resume, restart=restart).pid
    db_path = str(Path(db_path).resolve())
    cmd = [sys.executable, "-m", "engine.train.process", "--db", db_path, "--run-id", str(run_id)]
    if resume:
        cmd.append("--resume")
    if restart:
        cmd.append("--restart")
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
    runlog.set_run_process(runlog.connect(db_path), run_id, proc.pid)
    return proc.pid


def launch_detached(cfg: TrainConfig, db_path: str | Path) -> int:
    """Create a run and start it as a detached process; returns the run id at once."""
    run_id, cfg = create_train_run(cfg, db_path)
    _spawn(db_path, run_id, Path(cfg.out_dir), resume=False, nproc=cfg.nproc)
    return run_id


def claim_for_resume(
    db_path: str | Path,
    run_id: int,
    *,
    restart: bool = False,
    overrides: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Check that a run can be resumed and claim it for this process, atomically: of several
    resumes of one run at once (CLI, workbench), one wins and the others get RunError. A run
    without a checkpoint on disk is refused unless `restart` (start again from step 0)."""
    db = runlog.connect(db_path)
    runlog.reap_interrupted(db)
    run = runlog.get_run(db, run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    if run["kind"] != "train":
        raise RunError(f"run {run_id} is a {run['kind']} run, not a training run")
    if run["status"] == "running":
        raise RunError(f"run {run_id} is still running (pid {run['pid']})")
    if run["status"] == "completed":
        raise RunError(f"run {run_id} already completed; its adapter is in {run['adapter']}")
    if not restart and not _saved_checkpoints(db, run_id):
        raise RunError(_no_checkpoint_message(run_id, run.get("out_dir")))
    config, notes = resume_overrides(run, overrides or [])
    if not runlog.claim_run(db, run_id):
        now = runlog.get_run(db, run_id) or {}
        raise RunError(
            f"run {run_id} was resumed by another process a moment ago (status "
            f"{now.get('status')}, pid {now.get('pid')}); not starting a second worker"
        )
    if overrides:
        runlog.update_run(db, run_id, config=config)
        run["config"] = config
    for note in notes:
        (log or (lambda m: None))(f"run {run_id}: {note}")
    return run


def resume_detached(
    db_path: str | Path,
    run_id: int,
    *,
    restart: bool = False,
    overrides: list[str] | None = None,
) -> int:
    """Continue a cancelled, failed or interrupted run from its last checkpoint, detached."""
    run = claim_for_resume(db_path, run_id, restart=restart, overrides=overrides)
    try:
        out_dir = run_out_dir(db_path, run)
    except RunError as exc:
        runlog.finish_run(runlog.connect(db_path), run_id, run["status"], error=str(exc))
        raise
    _spawn(db_path, run_id, out_dir, resume=True, restart=restart, nproc=_nproc(run))
    return run_id


def _nproc(run: dict) -> int:
    """The number of processes a stored run trains on."""
    return int((run.get("config") or {}).get("nproc") or 1)


def _run_group(db_path, run_id: int, out_dir: Path, nproc: int, progress, log, **kw) -> int:
    """Launch a run's torchrun group and wait for it, progress from the run log."""
    from engine.train.launch import follow, launch, launch_problem

    problem = launch_problem(nproc)
    if problem:
        runlog.finish_run(runlog.connect(db_path), run_id, "failed", error=problem)
        raise RunError(problem)
    log(f"run {run_id}: {nproc} processes (torchrun); their log: {out_dir / 'train.log'}")
    follow(launch(db_path, run_id, out_dir, nproc, **kw), db_path, run_id, progress, log)
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
        raise RunError(
            f"run {run_id}: its process {run['pid']} is gone; it is now interrupted"
        ) from None
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
    parser.add_argument("--restart", action="store_true")
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
        args.db,
        args.run_id,
        resume=args.resume,
        progress=progress,
        log=log,
        stop=stop,
        restart=args.restart,
    )
    log(f"run {args.run_id} ended: {status}")
    return 0 if status in ("completed", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
