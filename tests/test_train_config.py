"""Training config: YAML + overrides, every problem reported at once, before anything loads."""

from __future__ import annotations

import sys

import pytest

from engine.train.config import (
    ConfigError,
    TrainConfig,
    config_problems,
    load_config,
    parse_override,
    to_yaml,
)


def test_defaults_follow_the_published_recipe():
    cfg = TrainConfig()
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lr, cfg.epochs) == (
        16,
        32,
        0.05,
        2e-4,
        3,
    )
    assert cfg.effective_batch == 32
    assert set(cfg.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_every_problem_is_listed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: tiny\ntrain_data: missing.jsonl\nlearning_rate: 1e-4\nlora_r: 0\nlr: -1\n"
        "batch_size: 0\ntoo_long: truncate\nepochs: three\nwarmup_ratoi: 0.1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    problems = info.value.problems
    assert str(path) in text
    assert any("learning_rate" in p and "did you mean 'lr'" in p for p in problems)
    assert any("warmup_ratoi" in p and "did you mean 'warmup_ratio'" in p for p in problems)
    assert any(p.startswith("lora_r must be > 0") for p in problems)
    assert any(p.startswith("lr must be > 0") for p in problems)
    assert any(p.startswith("batch_size must be >= 1") for p in problems)
    assert any("too_long" in p and "truncate" in p for p in problems)
    assert any(p.startswith("epochs: must be an integer") for p in problems)
    assert any("missing.jsonl" in p and "no such file" in p for p in problems)
    assert len(problems) == 8


def test_config_is_checked_before_heavy_imports(tmp_path):
    import subprocess

    code = (
        "import sys\nfrom engine.train.config import load_config, ConfigError\n"
        "try:\n    load_config(None, ['lora_r=-1'])\nexcept ConfigError as e:\n    print(e)\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "lora_r must be > 0" in out.stdout and "train_data: required" in out.stdout


def test_overrides_parse_yaml_scalars(sample_dir):
    assert parse_override("lr=1e-4") == ("lr", 1e-4)
    assert parse_override("max_steps=null") == ("max_steps", None)
    assert parse_override("gradient_checkpointing=true") == ("gradient_checkpointing", True)
    assert parse_override("target_modules=[q_proj, v_proj]") == (
        "target_modules",
        ["q_proj", "v_proj"],
    )
    cfg = load_config(None, [f"train_data={sample_dir / 'train.jsonl'}", "lr=3e-4", "batch_size=4"])
    assert cfg.lr == 3e-4 and cfg.batch_size == 4
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(None, ["lr"])


def test_relative_paths_resolve_against_the_config_folder(tmp_path, sample_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(sample_dir.parent.parent / "configs" / "sample-tiny.yaml")
    assert cfg.train_data == str((sample_dir / "train.jsonl").resolve())
    again = load_config(
        None,
        [f"{k}={v}" for k, v in cfg.to_dict().items() if v is not None and k != "target_modules"],
    )
    assert again.train_data == cfg.train_data
    assert "model: tiny" in to_yaml(cfg)


def test_config_problems_on_a_mapping(sample_dir):
    assert config_problems({"train_data": str(sample_dir / "train.jsonl")}) == []
    assert config_problems({"train_data": str(sample_dir), "grad_accum": 0}) == [
        "grad_accum must be >= 1, got 0",
        f"train_data: {sample_dir}: is a folder, not a JSONL file",
    ]
