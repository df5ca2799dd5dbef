"""Training as a detached process: metrics stream to runs.db while it runs, SIGTERM cancels
with a checkpoint, resume continues the same run, kill -9 shows as `interrupted`; the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from engine import runlog
from engine.cli import main
from engine.train.config import load_config
from engine.train.process import RunError, cancel_run, launch_detached, resume_detached


def _wait(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _steps(db_path, run_id):
    """Train-loss steps read through a plain sqlite3 connection of our own (another reader)."""
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT step FROM metrics WHERE run_id = ? AND name = 'train_loss' ORDER BY step",
            [run_id],
        ).fetchall()
    return [r[0] for r in rows]


def _status(db_path, run_id):
    return runlog.get_run(runlog.connect(db_path), run_id)["status"]


def test_detached_run_streams_cancels_resumes_and_is_interrupted_by_kill(
    sample_dir, tmp_path, db_path, monkeypatch, tiny_model_path
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child inherits it; cores are shared
    cfg = load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "epochs=500",
            "log_every=1",
            "eval_every=1000",
            "save_every=1000",
            "grad_accum=1",
        ],
    )
    run_id = launch_detached(cfg, db_path)
    run = runlog.get_run(runlog.connect(db_path), run_id)
    assert run["out_dir"] == str(tmp_path / "runs-outputs" / f"run-{run_id}")
    assert run["pid"] != os.getpid()

    # Rows appear while the run is still in progress, seen from another connection.
    _wait(lambda: len(_steps(db_path, run_id)) >= 3, what="metrics of the running run")
    assert _status(db_path, run_id) == "running"
    assert runlog.get_run(runlog.connect(db_path), run_id)["pid"] == run["pid"]

    assert "SIGTERM" in cancel_run(db_path, run_id)
    _wait(lambda: _status(db_path, run_id) == "cancelled", what="cancelled")
    ckpt = runlog.checkpoints(runlog.connect(db_path), run_id)[-1]
    assert _steps(db_path, run_id)[-1] == ckpt["step"]
    with pytest.raises(RunError, match="not running"):
        cancel_run(db_path, run_id)

    resume_detached(db_path, run_id)
    assert _status(db_path, run_id) == "running"
    _wait(lambda: _steps(db_path, run_id)[-1] >= ckpt["step"] + 2, what="steps after resume")
    steps = _steps(db_path, run_id)
    assert steps == list(range(1, steps[-1] + 1))  # continuous, no duplicate steps
    pid = runlog.get_run(runlog.connect(db_path), run_id)["pid"]
    assert pid != run["pid"]

    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _status(db_path, run_id) == "interrupted", timeout=20, what="interrupted")
    assert "train.log" in os.listdir(tmp_path / "runs-outputs" / f"run-{run_id}")


def test_cli_reports_config_problems_and_bad_requests(tmp_path, db_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\ntrain_data: nowhere.jsonl\nlora_r: 0\n")
    assert main(["train", "--config", str(bad), "--db", str(db_path)]) == 2
    err = capsys.readouterr().err
    assert "lora_r must be > 0" in err and "nowhere.jsonl" in err and "Traceback" not in err
    assert main(["train", "--config", str(bad), "--set", "lora_rr=3", "--db", str(db_path)]) == 2
    assert "did you mean 'lora_r'" in capsys.readouterr().err
    assert main(["cancel", "99", "--db", str(db_path)]) == 1
    assert "no run 99" in capsys.readouterr().err
    assert main(["train", "--resume", "99", "--db", str(db_path)]) == 2


def test_cli_check_prints_lengths_and_memory(sample_dir, db_path, capsys, tiny_model_path):
    code = main(
        [
            "train",
            "--check",
            "--set",
            "model=tiny",
            "--set",
            f"train_data={sample_dir / 'train.jsonl'}",
            "--set",
            "max_seq_len=64",
            "--db",
            str(db_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "longer than max_seq_len=64" in err and "dropped" in err
    assert "estimated peak host memory" in err or "estimated peak GPU memory" in err


def test_cli_check_refuses_a_model_that_does_not_resolve_or_lacks_a_module(
    sample_dir, db_path, capsys, tiny_model_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = [
        "train",
        "--check",
        "--set",
        f"train_data={sample_dir / 'train.jsonl'}",
        "--db",
        str(db_path),
    ]
    assert main([*base, "--set", "model=tiny1"]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err
    assert main([*base, "--set", "model=tiny", "--set", "target_modules=[q_proj, abc]"]) == 2
    err = capsys.readouterr().err
    assert "target_modules: abc not in tiny" in err and "v_proj" in err
    assert main([*base, "--set", "model=nobody-here/no-such-model-xyz"]) == 2
    assert "not in the local Hugging Face cache" in capsys.readouterr().err
    assert not db_path.exists() or runlog.list_runs(runlog.connect(db_path)) == []


def test_cancel_while_the_worker_is_still_loading_ends_cancelled(
    sample_dir, db_path, monkeypatch, tiny_model_path
):
    """SIGTERM during the worker's start (torch importing, the model loading) is kept: the run
    stops at its first step with a checkpoint, `cancelled`, not killed and `interrupted`."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "epochs=50",
            "log_every=1",
            "eval_every=1000",
            "save_every=1000",
            "val_eval_limit=0",
        ],
    )
    run_id = launch_detached(cfg, db_path)
    run = runlog.get_run(runlog.connect(db_path), run_id)
    log = Path(run["out_dir"]) / "train.log"
    _wait(lambda: log.exists() and "pid" in log.read_text(), what="the worker's start")
    assert not _steps(db_path, run_id)  # still loading
    assert "SIGTERM" in cancel_run(db_path, run_id)
    _wait(lambda: _status(db_path, run_id) != "running", what="the run to stop")
    assert _status(db_path, run_id) == "cancelled"
    assert runlog.checkpoints(runlog.connect(db_path), run_id)
