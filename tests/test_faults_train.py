"""Training and evaluation under faults, with real processes on the `tiny` model: several resumes
of one run at once, a resume with no checkpoint left, a resume that lowers the batch size, a
full disk under the outputs, and evaluations stopped by SIGTERM or killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import runlog
from engine.train import process
from engine.train.config import load_config

REPO = Path(__file__).resolve().parent.parent


def _wait(predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _steps(db_path, run_id):
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT step FROM metrics WHERE run_id = ? AND name = 'train_loss' ORDER BY step",
            [run_id],
        ).fetchall()
    return [r[0] for r in rows]


def _status(db_path, run_id):
    return runlog.get_run(runlog.connect_readonly(db_path), run_id)["status"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the command the terminal's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _cli(*args, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=cwd,
        preexec_fn=_default_sigint,
    )


def _tiny(sample_dir, *extra):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "val_eval_limit=0",
            "grad_accum=1",
            *extra,
        ],
    )


def _cancelled_run(db_path, sample_dir):
    cfg = _tiny(sample_dir, "epochs=500", "log_every=1", "eval_every=1000", "save_every=1000")
    run_id = process.launch_detached(cfg, db_path)
    _wait(lambda: len(_steps(db_path, run_id)) >= 2, what="steps")
    process.cancel_run(db_path, run_id)
    _wait(lambda: _status(db_path, run_id) == "cancelled", what="cancelled")
    return run_id


def test_several_resumes_at_once_start_one_worker(
    sample_dir, db_path, monkeypatch, tiny_model_path
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_id = _cancelled_run(db_path, sample_dir)
    ckpt = runlog.checkpoints(runlog.connect(db_path), run_id)[-1]["step"]
    procs = [_cli("train", "--resume", run_id, "--detach", "--db", db_path) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2, 2], outs
    refusals = [err for p, (_, err) in zip(procs, outs) if p.returncode == 2]
    for err in refusals:
        lines = err.strip().splitlines()
        # Refused at the claim, or (a moment later) on seeing the winner running.
        assert len(lines) == 1, err
        assert "another process" in lines[0] or "still running" in lines[0], err
    _wait(lambda: len(_steps(db_path, run_id)) >= ckpt + 4, what="steps after resume")
    process.cancel_run(db_path, run_id)
    _wait(lambda: _status(db_path, run_id) == "cancelled", what="cancelled again")
    steps = _steps(db_path, run_id)
    assert steps == list(range(1, steps[-1] + 1))  # one worker: no step twice
    log = Path(runlog.get_run(runlog.connect(db_path), run_id)["out_dir"]) / "train.log"
    assert log.read_text().count(f"run {run_id}: pid") == 2  # the first worker and one resume


def test_resume_without_a_checkpoint_refuses_and_restart_starts_over(
    sample_dir, db_path, monkeypatch, tiny_model_path, capsys
):
    from engine.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_id = _cancelled_run(db_path, sample_dir)
    out_dir = Path(runlog.get_run(runlog.connect(db_path), run_id)["out_dir"])
    shutil.rmtree(out_dir)  # checkpoints and output folder gone
    assert main(["train", "--resume", str(run_id), "--db", str(db_path)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and f"--resume {run_id} --restart" in err
    assert _status(db_path, run_id) == "cancelled"  # not claimed, nothing changed
    assert _steps(db_path, run_id)  # its metrics are still there

    assert (
        main(["train", "--resume", str(run_id), "--restart", "--detach", "--db", str(db_path)]) == 0
    )
    log = out_dir / "train.log"
    _wait(lambda: log.exists() and "step 3/" in log.read_text(), what="restarted steps")
    process.cancel_run(db_path, run_id)
    _wait(lambda: _status(db_path, run_id) == "cancelled", what="cancelled")
    steps = _steps(db_path, run_id)
    assert steps == list(range(1, steps[-1] + 1))
    assert "resumed from" not in log.read_text()


def _stop_at(step_to_stop: int):
    stop = threading.Event()

    def progress(step, total, metrics):
        if step >= step_to_stop:
            stop.set()

    return stop, progress


def test_resume_with_a_smaller_batch_trains_the_same_examples(
    sample_dir, tmp_path, tiny_model_path
):
    args = [
        "max_steps=4",
        "log_every=1",
        "eval_every=1000",
        "save_every=1000",
        "batch_size=4",
        "lr=1e-3",
    ]
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    run_a, _ = process.create_train_run(_tiny(sample_dir, *args), db_a)
    assert process.execute(db_a, run_a, log=lambda m: None) == "completed"

    run_b, _ = process.create_train_run(_tiny(sample_dir, *args), db_b)
    stop, progress = _stop_at(2)
    assert (
        process.execute(db_b, run_b, stop=stop, progress=progress, log=lambda m: None)
        == "cancelled"
    )
    with pytest.raises(process.RunError, match="only batch_size, gradient_checkpointing"):
        process.claim_for_resume(db_b, run_b, overrides=["lr=1"])
    with pytest.raises(process.RunError, match="choose one of 1, 2, 4"):
        process.claim_for_resume(db_b, run_b, overrides=["batch_size=3"])
    notes = []
    process.claim_for_resume(db_b, run_b, overrides=["batch_size=2"], log=notes.append)
    assert "effective batch 4 unchanged" in notes[0]
    assert process.execute(db_b, run_b, resume=True, log=lambda m: None) == "completed"
    stored = runlog.get_run(runlog.connect(db_b), run_b)["config"]
    assert stored["batch_size"] == 4 and stored[process.MICRO_BATCH_KEY] == 2

    def losses(db, run_id):
        return [m["value"] for m in runlog.metrics(runlog.connect(db), run_id, "train_loss")]

    a, b = losses(db_a, run_a), losses(db_b, run_b)
    assert len(a) == len(b) == 4
    assert b == pytest.approx(a, rel=1e-4)  # the same examples per step, in micro-batches


def test_a_full_disk_under_the_outputs_ends_the_run_failed_with_the_cause(
    sample_dir, small_fs, db_path, tiny_model_path
):
    small = small_fs("600k")
    cfg = _tiny(
        sample_dir,
        "max_steps=6",
        "log_every=1",
        "eval_every=1000",
        "save_every=2",
        f"out_dir={small / 'run'}",
    )
    run_id, _ = process.create_train_run(cfg, db_path)
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.train.process",
            "--db",
            str(db_path),
            "--run-id",
            str(run_id),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert worker.returncode == 1, worker.stdout + worker.stderr
    run = runlog.get_run(runlog.connect(db_path), run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith(process.DISK_FULL_HINT)
    assert "Traceback" in run["error"]  # the cause, in full
    assert not list((small / "run" / "checkpoints").glob(".tmp-*"))  # no half folder left
    from engine.cli import main

    assert main(["runs", "--db", str(db_path)]) == 0


def _eval_cmd(db_path, sample_dir):
    return [
        "eval",
        "--model",
        "tiny",
        "--data",
        sample_dir / "test.jsonl",
        "--batch-size",
        "1",
        # Answers run to their cap (no stop at the object's close), so 60 of them take long
        # enough that the signal always lands while the evaluation is still decoding.
        "--set",
        "max_new_tokens=200",
        "--set",
        "stop=eos",
        "--db",
        db_path,
    ]


def _n_predictions(db_path):
    if not Path(db_path).exists():
        return 0
    try:
        with sqlite3.connect(db_path) as conn:
            return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize(
    "sig, status",
    [(signal.SIGTERM, "cancelled"), (signal.SIGINT, "cancelled"), (signal.SIGKILL, "interrupted")],
)
def test_an_evaluation_stopped_part_way_is_recorded_with_its_figures(
    sample_dir, db_path, tiny_model_path, sig, status
):
    proc = _cli(*_eval_cmd(db_path, sample_dir))
    _wait(lambda: _n_predictions(db_path) >= 3 or proc.poll() is not None, what="predictions")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    db = runlog.connect_readonly(db_path)
    run = runlog.list_runs(db, kind="eval")[0]
    assert run["status"] == status
    done = _n_predictions(db_path)
    assert 3 <= done < 60
    show = _cli("show", run["id"], "--format", "json", "--db", db_path)
    out, err = show.communicate(timeout=60)
    assert show.returncode == 0, err
    report = json.loads(out)["run"]
    assert report["status"] == status
    assert report["overall"]["n"] == done  # the figures cover exactly what was predicted
    assert f"after {done} of 60 examples" in report["partial"]
