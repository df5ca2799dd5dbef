"""The best checkpoint, early stopping and retention as pure functions; the new config keys;
which adapter `RUN_ID`, `RUN_ID:final` and `RUN_ID:step-N` name (no training here)."""

from __future__ import annotations

import pytest

from engine import runlog
from engine.train.config import DEFAULTS, ConfigError, TrainConfig, config_from_dict
from engine.train.select import (
    BestTracker,
    best_step,
    evaluations,
    is_better,
    replay,
    selection_metric,
    to_delete,
)


def test_better_means_higher_exact_and_lower_loss_and_ties_keep_the_earlier():
    assert is_better(0.5, 0.4, "val_json_exact") and not is_better(0.4, 0.5, "val_json_exact")
    assert is_better(1.0, 2.0, "val_loss") and not is_better(2.0, 1.0, "val_loss")
    assert is_better(0.0, None, "val_field_f1")  # the first value is the best so far
    assert not is_better(None, 0.1, "val_json_exact")  # an evaluation that did not run
    assert not is_better(0.5, 0.5, "val_json_exact")  # a full tie keeps the earlier one
    assert not is_better(1.0, 1.0, "val_loss", 0.5, 2.0)
    # An equal JSONExact with a lower val_loss improves; a higher one does not.
    assert is_better(0.5, 0.5, "val_json_exact", loss=1.0, best_loss=2.0)
    assert not is_better(0.5, 0.5, "val_json_exact", loss=3.0, best_loss=2.0)


def test_tracker_picks_the_best_and_counts_patience():
    tracker = BestTracker("val_json_exact")
    seq = [(2, 0.2), (4, 0.6), (6, 0.4), (8, None), (10, 0.6), (12, 0.5)]
    improved = [tracker.update(step, value) for step, value in seq]
    assert improved == [True, True, False, False, False, False]
    assert (tracker.best_step, tracker.best_value) == (4, 0.6)
    assert tracker.since_best == 3  # the skipped evaluation at step 8 does not count
    assert tracker.should_stop(3) and not tracker.should_stop(4) and not tracker.should_stop(None)
    assert "did not improve for 3" in tracker.stop_reason(3) and "step 4" in tracker.stop_reason(3)

    loss = BestTracker("val_loss")
    for step, value in [(1, 3.0), (2, 2.0), (3, 2.5)]:
        loss.update(step, value)
    assert loss.best_step == 2 and loss.since_best == 1


def test_replay_and_best_step_agree_with_the_tracker():
    rows = [
        {"step": 3, "name": "val_json_exact", "value": 0.25},
        {"step": 3, "name": "val_loss", "value": 2.0},
        {"step": 3, "name": "train_loss", "value": 9.0},
        {"step": 6, "name": "val_json_exact", "value": 0.25},
        {"step": 6, "name": "val_loss", "value": 1.5},
        {"step": 9, "name": "val_loss", "value": 1.0},  # its decoding was cancelled
    ]
    evals = evaluations(rows)
    assert [e["step"] for e in evals] == [3, 6, 9]
    tracker = replay("val_json_exact", evals)
    assert (tracker.best_step, tracker.since_best) == (6, 0)  # the tie broken by val_loss
    assert best_step(evals, "val_loss") == 9
    assert best_step([], "val_json_exact") is None


def test_retention_keeps_the_last_and_never_the_best():
    assert to_delete([10, 20, 30, 40, 50], best=None, keep_last=3) == [10, 20]
    assert to_delete([10, 20, 30, 40, 50], best=10, keep_last=1) == [20, 30, 40]
    assert to_delete([10, 20, 30], best=30, keep_last=1) == [10, 20]
    assert to_delete([10], best=10, keep_last=1) == []
    for keep in (1, 2, 5):
        for best in (10, 20, 30, 40):
            assert best not in to_delete([10, 20, 30, 40], best, keep)


def test_selection_metric_without_decoding_is_val_loss():
    assert selection_metric("json_exact") == "val_json_exact"
    assert selection_metric("field_f1") == "val_field_f1"
    assert selection_metric("json_exact", decoding_on=False) == "val_loss"
    assert selection_metric("val_loss", decoding_on=False) == "val_loss"


def test_new_config_keys_defaults_checks_and_old_configs(sample_dir):
    cfg = TrainConfig()
    assert (cfg.prompt_template, cfg.val_eval_limit, cfg.val_constrained) == ("schemalab", 32, True)
    assert (cfg.val_max_new_tokens, cfg.val_eval_batch, cfg.select_by) == (1024, 8, "json_exact")
    assert (cfg.patience, cfg.keep_last) == (None, 3)
    # A config stored before these keys existed still loads, with the defaults.
    old = {
        k: v
        for k, v in DEFAULTS.items()
        if k
        not in (
            "prompt_template",
            "val_eval_limit",
            "val_constrained",
            "val_max_new_tokens",
            "val_eval_batch",
            "select_by",
            "patience",
            "keep_last",
        )
    }
    old["train_data"] = str(sample_dir / "train.jsonl")
    assert config_from_dict(old).select_by == "json_exact"
    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {
                **old,
                "prompt_template": "alpaca",
                "val_eval_limit": -1,
                "val_constrained": "yes",
                "select_by": "bleu",
                "patience": 0,
                "keep_last": 0,
                "val_eval_batch": 0,
                "val_max_new_tokens": 1.5,
            }
        )
    text = str(info.value)
    for key in (
        "prompt_template",
        "val_eval_limit",
        "val_constrained",
        "select_by",
        "patience",
        "keep_last",
        "val_eval_batch",
        "val_max_new_tokens",
    ):
        assert key in text, key
    assert config_from_dict({**old, "patience": 2, "val_eval_limit": 0}).patience == 2


def _adapter(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    return folder


def test_run_id_means_the_best_checkpoint_and_specs_name_the_others(tmp_path, db_path):
    from engine.decode.generate import DecodingError, resolve_adapter
    from engine.train.export import run_adapter

    db = runlog.connect(db_path)
    out = tmp_path / "run"
    run_id = runlog.create_run(db, "train", {"model": "tiny"}, out_dir=str(out), status="cancelled")
    for step in (4, 8):
        _adapter(out / "checkpoints" / f"step-{step:06d}" / "adapter")
        runlog.add_checkpoint(
            db,
            run_id,
            step,
            str(out / "checkpoints" / f"step-{step:06d}"),
            metrics={"val_json_exact": step / 10},
        )
    ck = out / "checkpoints"
    # No best marked, no final adapter: the last checkpoint, as before.
    assert resolve_adapter(str(run_id), db) == (ck / "step-000008" / "adapter", run_id)
    with pytest.raises(DecodingError, match=rf"no final adapter.*{run_id}:step-4, {run_id}:step-8"):
        resolve_adapter(f"{run_id}:final", db)
    with pytest.raises(DecodingError, match=rf"no best checkpoint.*{run_id}:step-4"):
        resolve_adapter(f"{run_id}:best", db)

    _adapter(out / "adapter")  # training completed
    assert resolve_adapter(str(run_id), db) == (out / "adapter", run_id)
    runlog.set_best_checkpoint(db, run_id, 4)
    assert resolve_adapter(str(run_id), db) == (ck / "step-000004" / "adapter", run_id)
    assert resolve_adapter(f"{run_id}:best", db)[0] == ck / "step-000004" / "adapter"
    assert resolve_adapter(f"{run_id}:final", db) == (out / "adapter", run_id)
    assert resolve_adapter(f"{run_id}:step-8", db) == (ck / "step-000008" / "adapter", run_id)
    with pytest.raises(
        DecodingError, match=rf"no checkpoint at step 5; use one of: {run_id}:step-4"
    ):
        resolve_adapter(f"{run_id}:step-5", db)
    with pytest.raises(DecodingError, match="RUN_ID:final or RUN_ID:step-N"):
        resolve_adapter(f"{run_id}:last", db)
    evaluation = runlog.create_run(db, "eval", {})
    with pytest.raises(DecodingError, match="not a training run"):
        resolve_adapter(str(evaluation), db)

    # Export resolves the same way and says which adapter it took.
    run, adapter, what = run_adapter(db_path, run_id)
    assert run["id"] == run_id
    assert adapter == ck / "step-000004" / "adapter" and what == "the best checkpoint at step 4"
    assert run_adapter(db_path, f"{run_id}:final")[2] == "the final adapter"
    assert run_adapter(db_path, f"{run_id}:step-8")[2] == "the checkpoint at step 8"
