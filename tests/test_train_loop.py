"""The training loop in-process with `tiny`: loss falls, cancel + resume reproduce the same
curve, the adapter is a PEFT adapter, and export writes an equivalent merged model."""

from __future__ import annotations

import threading

import pytest

from engine import runlog
from engine.train.config import load_config
from engine.train.process import resume_foreground, run_foreground


@pytest.fixture(autouse=True)
def _one_thread():
    """A 2-layer model trains faster on one thread than on cores shared with other tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(sample_dir, tmp_path, *more):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            f"out_dir={tmp_path / 'out'}",
            "lr=1e-2",
            "batch_size=8",
            "grad_accum=2",
            "warmup_ratio=0.1",
            "val_eval_limit=0",  # decoded validation metrics: see test_train_select_run.py
            *more,
        ],
    )


def _curve(db, run_id, name="train_loss"):
    return [(m["step"], m["value"]) for m in runlog.metrics(db, run_id, name)]


def test_loss_falls_and_every_metric_is_logged(sample_dir, tmp_path, db_path):
    cfg = _cfg(
        sample_dir, tmp_path, "max_steps=24", "log_every=4", "eval_every=12", "save_every=12"
    )
    run_id = run_foreground(cfg, db_path, log=lambda m: None)
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["status"] == "completed", run["error"]
    losses = [v for _, v in _curve(db, run_id)]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 0.3
    val = _curve(db, run_id, "val_loss")
    assert [s for s, _ in val] == [12, 24] and val[1][1] < val[0][1]
    names = {m["name"] for m in runlog.metrics(db, run_id)}
    assert {
        "train_loss",
        "val_loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "epoch",
        "elapsed_s",
        "eta_s",
    } <= names
    assert [(m["step"], m["value"]) for m in runlog.metrics(db, run_id, "total_steps")] == [
        (0, 24.0)
    ]
    ckpts = runlog.checkpoints(db, run_id)
    assert [c["step"] for c in ckpts] == [12, 24] and ckpts[-1]["is_final"] == 1
    assert run["summary"]["step"] == 24 and run["config"]["model"] == "tiny"


def test_cancel_then_resume_matches_an_uninterrupted_run(sample_dir, tmp_path, db_path):
    common = ["max_steps=10", "log_every=1", "eval_every=100", "save_every=100", "lora_dropout=0.1"]
    full_id = run_foreground(_cfg(sample_dir, tmp_path / "a", *common), db_path, log=lambda m: None)

    stop = threading.Event()

    def progress(step, total, metrics):
        if step == 4:
            stop.set()  # what SIGTERM / `schemalab cancel` does

    cfg = _cfg(sample_dir, tmp_path / "b", *common)
    run_id = run_foreground(cfg, db_path, progress=progress, stop=stop, log=lambda m: None)
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["status"] == "cancelled"
    assert [c["step"] for c in runlog.checkpoints(db, run_id)] == [4]
    assert [s for s, _ in _curve(db, run_id)] == [1, 2, 3, 4]

    assert resume_foreground(db_path, run_id, log=lambda m: None) == run_id
    run = runlog.get_run(db, run_id)
    assert run["status"] == "completed", run["error"]
    resumed, full = _curve(db, run_id), _curve(db, full_id)
    assert [s for s, _ in resumed] == list(range(1, 11))  # one continuous curve, no duplicates
    for (_, a), (_, b) in zip(resumed, full):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-4)


def test_adapter_loads_with_peft_and_export_merges(sample_dir, tmp_path, db_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.models.load import load_model
    from engine.train.export import export_merged

    cfg = _cfg(sample_dir, tmp_path, "max_steps=3", "log_every=1", "lr=5e-2")
    run_id = run_foreground(cfg, db_path, log=lambda m: None)
    run = runlog.get_run(runlog.connect(db_path), run_id)
    assert run["adapter"] == str(tmp_path / "out" / "adapter")

    base, tok = load_model("tiny", device="cpu")
    model = PeftModel.from_pretrained(base, run["adapter"]).eval()
    ids = tok('### Schema: contact_card\n### Text:\nAnn\n### JSON:\n{"name"', return_tensors="pt")[
        "input_ids"
    ]
    with torch.no_grad():
        adapted = model(ids).logits
        with model.disable_adapter():
            plain = model(ids).logits
    assert not torch.allclose(adapted, plain)  # the adapter changes the model

    out = export_merged(db_path, run_id, tmp_path / "merged")
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted, atol=1e-4)
