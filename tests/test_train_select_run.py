"""Schema metrics during training with `tiny`: decoded validation metrics at every evaluation and
save, the best checkpoint marked and chosen by `RUN_ID`, early stopping, retention, and
`schemalab show RUN_ID --format json` for a training run."""

from __future__ import annotations

import json

import pytest

from engine import runlog
from engine.cli import main
from engine.decode.generate import DecodingError, resolve_adapter
from engine.train.config import load_config
from engine.train.loop import remove_stale_tmp
from engine.train.process import run_foreground
from engine.train.val_eval import VAL_METRICS


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(sample_dir, out, *more):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            f"out_dir={out}",
            "lr=1e-2",
            "batch_size=8",
            "grad_accum=1",
            "log_every=1",
            "val_eval_limit=3",
            "val_max_new_tokens=16",
            "val_eval_batch=2",
            *more,
        ],
    )


def _steps(db, run_id, name):
    return [m["step"] for m in runlog.metrics(db, run_id, name)]


def test_validation_metrics_best_checkpoint_and_show(sample_dir, tmp_path, db_path, capsys):
    cfg = _cfg(
        sample_dir, tmp_path / "out", "max_steps=8", "eval_every=3", "save_every=4", "keep_last=5"
    )
    run_id = run_foreground(cfg, db_path, log=lambda m: None)
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["status"] == "completed", run["error"]
    # Every eval_every steps, at every periodic save and at the last step.
    for name in (*VAL_METRICS, "val_loss", "val_eval_s", "val_eval_share"):
        assert _steps(db, run_id, name) == [3, 4, 6, 8], name
    for m in runlog.metrics(db, run_id):
        if m["name"] in VAL_METRICS:
            assert 0.0 <= m["value"] <= 1.0, m
    assert all(m["value"] > 0 for m in runlog.metrics(db, run_id, "val_eval_s"))

    ckpts = runlog.checkpoints(db, run_id)
    assert all("val_json_exact" in c["metrics"] and "val_loss" in c["metrics"] for c in ckpts)
    assert [c["step"] for c in ckpts if c["is_final"]] == [8]
    (best,) = [c for c in ckpts if c["is_best"]]
    summary = run["summary"]
    assert summary["best_step"] == best["step"]
    assert summary["best_metric"] == {
        "name": "val_json_exact",
        "value": best["metrics"]["val_json_exact"],
    }
    assert summary["best_metrics"] == best["metrics"]
    assert 0 < summary["val_eval_share"] < 1 and summary["stopped_early"] is False
    # `RUN_ID` is the best checkpoint; `:final` the adapter written at the end.
    assert resolve_adapter(str(run_id), db) == (
        tmp_path / "out" / "checkpoints" / f"step-{best['step']:06d}" / "adapter",
        run_id,
    )
    assert resolve_adapter(f"{run_id}:final", db)[0] == tmp_path / "out" / "adapter"
    with pytest.raises(DecodingError, match=f"{run_id}:step-8"):
        resolve_adapter(f"{run_id}:step-7", db)

    assert main(["show", str(run_id), "--format", "json", "--db", str(db_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["config"]["val_eval_limit"] == 3 and shown["run"]["status"] == "completed"
    assert shown["run"]["summary"]["best_step"] == best["step"]
    assert [c["step"] for c in shown["checkpoints"]] == [c["step"] for c in ckpts]
    assert [c["is_best"] for c in shown["checkpoints"]] == [bool(c["is_best"]) for c in ckpts]
    assert shown["checkpoints"][-1]["is_final"] is True
    assert shown["best"]["step"] == best["step"] and shown["best"]["metrics"] == best["metrics"]
    assert [s for s, _ in shown["metrics"]["val_json_exact"]] == [3, 4, 6, 8]
    assert [s for s, _ in shown["metrics"]["train_loss"]] == list(range(1, 9))
    assert main(["show", str(run_id), "--db", str(db_path)]) == 0
    table = capsys.readouterr().out
    assert "Checkpoints" in table and "best" in table and f"--adapter {run_id}" in table


def test_early_stopping_and_retention_keep_the_best(sample_dir, tmp_path, db_path, monkeypatch):
    exact = iter([0.2, 0.6, 0.4, 0.5, 0.3, 0.9, 0.9, 0.9])

    def fake_score(examples, generations, registry, formats):
        assert len(examples) == len(generations) == 3  # the decoded answers are really there
        return dict.fromkeys(VAL_METRICS, 0.5) | {"val_json_exact": next(exact)}

    monkeypatch.setattr("engine.train.val_eval.score_generations", fake_score)
    out = tmp_path / "out"
    cfg = _cfg(
        sample_dir, out, "max_steps=20", "eval_every=2", "save_every=4", "patience=3", "keep_last=1"
    )
    run_id = run_foreground(cfg, db_path, log=lambda m: None)
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["status"] == "completed", run["error"]
    s = run["summary"]
    # Evaluations at 2, 4 (best, 0.6), 6, 8, 10: three without improvement, so it stops at 10.
    assert s["stopped_early"] is True and s["step"] == 10 and s["total_steps"] == 20
    assert "3 evaluation" in s["stop_reason"] and "step 4" in s["stop_reason"]
    assert _steps(db, run_id, "val_json_exact") == [2, 4, 6, 8, 10]
    assert (s["best_step"], s["best_metric"]["value"]) == (4, 0.6)
    # Saved at 2 and 4 (new bests), 8 (periodic), 10 (final); keep_last=1 keeps 10 and the best.
    ckpts = runlog.checkpoints(db, run_id)
    assert [(c["step"], c["is_best"], c["is_final"]) for c in ckpts] == [(4, 1, 0), (10, 0, 1)]
    on_disk = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert on_disk == ["step-000004", "step-000010"]
    assert (out / "adapter" / "adapter_config.json").exists()  # the final adapter stays
    assert resolve_adapter(str(run_id), db)[0] == out / "checkpoints" / "step-000004" / "adapter"
    assert main(["runs", "--db", str(db_path), "--format", "json"]) == 0
    # A half-written checkpoint left by a crash in the run's own folder is cleared.
    stale = out / "checkpoints" / ".tmp-step-000002-99999"
    stale.mkdir()
    remove_stale_tmp(out)
    assert not stale.exists() and (out / "checkpoints" / "step-000004").exists()


def test_cancel_during_the_evaluation_saves_and_ends_cancelled(
    sample_dir, tmp_path, db_path, monkeypatch
):
    import threading

    from engine.decode.generate import Generator

    stop = threading.Event()
    original = Generator.generate
    seen = []

    def generate(self, items, *args, **kwargs):
        seen.append(kwargs["cancel"])
        stop.set()  # what SIGTERM does while the answers are being decoded
        return original(self, items, *args, **kwargs)

    monkeypatch.setattr(Generator, "generate", generate)
    cfg = _cfg(sample_dir, tmp_path / "out", "max_steps=6", "eval_every=2", "save_every=100")
    run_id = run_foreground(cfg, db_path, stop=stop, log=lambda m: None)
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["status"] == "cancelled" and run["summary"]["step"] == 2
    assert len(seen) == 1 and callable(seen[0])
    assert _steps(db, run_id, "val_loss") == [2] and _steps(db, run_id, "val_json_exact") == []
    assert [c["step"] for c in runlog.checkpoints(db, run_id)] == [2]
