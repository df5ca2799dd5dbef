"""Data-parallel training on CPU: real torchrun groups of 2 processes (gloo) on `tiny`, real
runs.db. One run, one metric series, the loss of one process with the same effective batch;
cancel, resume and kill reach every rank."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from engine import runlog
from engine.train.config import load_config
from engine.train.process import cancel_run, launch_detached, resume_detached, run_foreground


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """One thread per process (each rank inherits OMP_NUM_THREADS); the cores are shared."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(sample_dir, *more):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "lr=1e-2",
            "lora_dropout=0",  # the same masks whatever rank draws them
            "val_eval_limit=0",
            "eval_every=1000",
            "save_every=1000",
            *more,
        ],
    )


def _wait(predicate, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _rank_pids(run: dict) -> dict[int, int]:
    """rank -> pid, from the ranks' start lines in train.log."""
    log = Path(run["out_dir"]) / "train.log"
    text = log.read_text() if log.exists() else ""
    pids = {}
    for line in text.splitlines():
        if ": run " in line and ": pid " in line and "] rank " in line:
            rank = int(line.split("] rank ", 1)[1].split(":", 1)[0])
            pids[rank] = int(line.split(": pid ", 1)[1].split(",", 1)[0])
    return pids


def _losses(db_path, run_id):
    return [
        (m["step"], m["value"])
        for m in runlog.metrics(runlog.connect(db_path), run_id, "train_loss")
    ]


def test_n_targets_counts_what_collate_trains(sample_dir):
    from engine.models.load import load_tokenizer
    from engine.train.data import collate, n_targets, prepare_data

    cfg = _cfg(sample_dir)
    tok = load_tokenizer("tiny")
    data = prepare_data(cfg, tok)
    for start in range(0, 40, 7):
        items = data.train[start : start + 7]
        assert n_targets(items) == collate(items, tok.pad_token_id)["n_target"]


def test_two_processes_match_one_process_with_the_same_effective_batch(
    sample_dir, tmp_path, db_path, tiny_model_path
):
    # 285 training examples in batches of 10: 29 batches, 8 steps of 4 micro-batches, 2 per
    # rank (the first under no_sync); the last step has one, so rank 1 makes a zero-weight pass.
    common = ["batch_size=10", "epochs=1", "log_every=2"]
    one_db = tmp_path / "one.db"
    one = run_foreground(_cfg(sample_dir, *common, "grad_accum=4"), one_db, log=lambda m: None)
    seen = []
    two = run_foreground(
        _cfg(sample_dir, *common, "grad_accum=2", "nproc=2"),
        db_path,
        progress=lambda step, total, metrics: seen.append((step, total)),
        log=lambda m: None,
    )
    db = runlog.connect(db_path)
    runs = runlog.list_runs(db)
    assert [r["id"] for r in runs] == [two]  # one run in the run log, not one per rank
    run = runlog.get_run(db, two)
    assert run["status"] == "completed", run["error"]
    assert run["summary"]["effective_batch"] == 40 and run["summary"]["total_steps"] == 8
    assert not _alive(run["pid"]) and run["pid"] not in _rank_pids(run).values()
    assert set(_rank_pids(run)) == {0, 1}

    rows = runlog.metrics(db, two)
    keys = [(m["step"], m["name"]) for m in rows]
    assert len(keys) == len(set(keys))  # one series: no step written twice
    curve, reference = _losses(db_path, two), _losses(one_db, one)
    assert [s for s, _ in curve] == [s for s, _ in reference] == [2, 4, 6, 8]
    for (_, a), (_, b) in zip(curve, reference):
        assert a == pytest.approx(b, rel=1e-5)  # float rounding only
    assert curve[-1][1] < curve[0][1]
    tokens = {m["step"]: m["value"] for m in rows if m["name"] == "tokens_per_s_all"}
    assert set(tokens) == {2, 4, 6, 8}
    assert seen and seen[-1] == (8, 8)
    ckpts = runlog.checkpoints(db, two)
    assert [c["step"] for c in ckpts] == [8] and Path(run["adapter"]).is_dir()


def test_cancel_resume_and_kill_reach_every_rank(sample_dir, db_path, tiny_model_path):
    cfg = _cfg(sample_dir, "batch_size=4", "grad_accum=1", "epochs=200", "log_every=1", "nproc=2")
    run_id = launch_detached(cfg, db_path)
    db = runlog.connect(db_path)
    launcher = runlog.get_run(db, run_id)["pid"]
    _wait(lambda: len(_losses(db_path, run_id)) >= 2, what="steps of the 2-process run")
    run = runlog.get_run(db, run_id)
    assert run["status"] == "running" and run["pid"] == launcher  # the launcher, not a rank
    ranks = _rank_pids(run)
    assert set(ranks) == {0, 1} and launcher not in ranks.values()

    assert "SIGTERM" in cancel_run(db_path, run_id)
    _wait(lambda: runlog.get_run(db, run_id)["status"] != "running", what="the run to stop")
    assert runlog.get_run(db, run_id)["status"] == "cancelled"
    _wait(
        lambda: not any(_alive(p) for p in [launcher, *ranks.values()]),
        timeout=30,
        what="every rank and the launcher to exit",
    )
    stopped = runlog.checkpoints(db, run_id)[-1]["step"]
    assert _losses(db_path, run_id)[-1][0] == stopped

    resume_detached(db_path, run_id)
    _wait(lambda: _losses(db_path, run_id)[-1][0] >= stopped + 2, what="steps after resume")
    steps = [s for s, _ in _losses(db_path, run_id)]
    assert steps == list(range(1, steps[-1] + 1))  # continuous, no duplicates
    run = runlog.get_run(db, run_id)
    new_ranks = {r: p for r, p in _rank_pids(run).items() if p not in ranks.values()}
    assert set(new_ranks) == {0, 1}

    os.kill(run["pid"], signal.SIGKILL)  # the launcher, killed outright: the ranks die with it
    _wait(
        lambda: not any(_alive(p) for p in new_ranks.values()),
        timeout=20,
        what="the ranks to die with their launcher",
    )
    assert runlog.get_run(db, run_id)["status"] == "interrupted"


def test_the_memory_estimate_counts_processes_that_share_the_host(sample_dir, tiny_model_path):
    from engine.models.memory import DeviceMemory, estimate_memory

    one = estimate_memory("tiny", _cfg(sample_dir), device="cpu")
    room = DeviceMemory("cpu", 64.0, one.total_gb * 1.5)  # room for one process, not two
    assert estimate_memory("tiny", _cfg(sample_dir), memory=room).fits
    assert not estimate_memory("tiny", _cfg(sample_dir, "nproc=2"), memory=room).fits
    card = DeviceMemory("cuda", 16.0, one.total_gb * 1.5, planned=True)  # a GPU per process
    assert estimate_memory("tiny", _cfg(sample_dir, "nproc=2"), memory=card).fits


def test_cli_nproc_goes_into_the_config_and_resume_keeps_it(sample_dir, db_path, capsys):
    from engine.cli import main

    assert (
        main(
            [
                "train",
                "--set",
                "model=tiny",
                "--set",
                f"train_data={sample_dir / 'train.jsonl'}",
                "--nproc",
                "0",
                "--check",
                "--db",
                str(db_path),
            ]
        )
        == 2
    )
    assert "nproc must be >= 1" in capsys.readouterr().err
    assert main(["train", "--resume", "1", "--nproc", "2", "--db", str(db_path)]) == 2
    assert "drop --nproc" in capsys.readouterr().err
