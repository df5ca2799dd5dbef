"""Model specs: what a name on the command line or in a config resolves to.

A spec is one of: `tiny` (a small random Llama with a real BPE tokenizer, built locally for tests
and demos), a local folder in Hugging Face format, or a Hub id (from the local cache).
torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.paths import SAMPLE_DIR, cache_dir

TINY = "tiny"
TINY_EOS = "<|endoftext|>"
TINY_PAD = "<|pad|>"


class ModelError(Exception):
    """A model spec that cannot be resolved; the message says what to do."""


def _tiny_corpus() -> list[str]:
    """Text the tiny tokenizer learns from: the bundled sample plus the prompt template."""
    from engine.prompt import render_prompt, render_target

    texts = [render_prompt("text", "schema"), '{"key": "value", "n": 1.5, "ok": true}']
    for path in sorted(SAMPLE_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                texts.append(str(record.get("prompt", "")))
                texts.append(render_target(record.get("expected_output")))
    return texts


def tiny_model_dir() -> Path:
    """Folder of the tiny model; its name carries a hash of the corpus so it rebuilds on change."""
    digest = hashlib.sha256("\n".join(_tiny_corpus()).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"tiny-{digest}"


def build_tiny(dest: Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Train a byte-level BPE tokenizer and initialise a 2-layer Llama; save both to `dest`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[TINY_EOS, TINY_PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=TINY_EOS, pad_token=TINY_PAD)

    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Build in a temporary folder and rename, so concurrent builders never see half a model.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=dest.parent))
    fast.save_pretrained(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        os.rename(tmp, dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model(spec: str) -> Path | str:
    """A local folder for `spec` (building or converting it if needed), or a Hub id as given."""
    if spec == TINY:
        path = tiny_model_dir()
        if not (path / "config.json").exists():
            build_tiny(path)
        return path
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a model folder (no config.json).")
        return path
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        if not path.exists():
            raise ModelError(f"{spec}: no such file or folder.")
    return spec


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    source = resolve_model(spec)
    try:
        tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
    except OSError as exc:
        raise ModelError(_hub_help(spec, exc)) from exc
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        # Pad must differ from EOS so masking pads never masks the trained EOS.
        tok.add_special_tokens({"pad_token": TINY_PAD})
    return tok


def load_model(spec: str, *, device: str | None = None, dtype: Any = None):
    """(model, tokenizer) for `spec`, on `device` (default: best available) in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(spec)
    source = resolve_model(spec)
    device = device or default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=dtype, trust_remote_code=False, use_safetensors=True
        )
    except OSError as exc:
        raise ModelError(_hub_help(spec, exc)) from exc
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    return model.to(device), tok


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _hub_help(spec: str, exc: Exception) -> str:
    return (
        f"could not load model {spec!r}: {exc}. If it is a Hugging Face Hub id, download it "
        f"once while online (`huggingface-cli download {spec}`) so it is in the local cache; "
        f"offline, use `tiny`, `smollm2-135m-instruct`, a local folder or a .gguf file."
    )
