"""Checks before launch that load no weights: which linear modules LoRA can target in a model
(from its config on the meta device, or Llama's names for Llama-like configs) and what would make
a training run with a model fail at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.models.load import (
    GGUF_ALIASES,
    TINY,
    ModelError,
    alias_gguf_path,
    gguf_cache_dir,
    hub_config_cached,
    is_random,
    random_config_path,
    resolve_model,
    resolve_spec_problem,
    tiny_model_dir,
)

_MODULES: dict[str, list[str]] = {}
# Architectures whose linear modules carry Llama's names (known without building the model).
LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "granite"}
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _config_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _config_source(spec: str) -> Path | None:
    """A folder holding the model's config.json, without building or converting anything
    (None when there is none yet: an unconverted GGUF, an uncached Hub id)."""
    if spec == TINY:
        folder = tiny_model_dir()
        return folder if (folder / "config.json").exists() else None
    if is_random(spec):
        try:
            return random_config_path(spec).parent
        except ModelError:
            return None
    if spec.lower() in GGUF_ALIASES or spec.endswith(".gguf"):
        try:
            gguf = alias_gguf_path(spec) if spec.lower() in GGUF_ALIASES else Path(spec)
            folder = gguf_cache_dir(gguf)
        except (ModelError, OSError):
            return None
        return folder if (folder / "config.json").exists() else None
    path = Path(spec).expanduser()
    if (path / "config.json").exists():
        return path
    cached = hub_config_cached(spec)
    return Path(cached).parent if cached else None


def module_names(spec: str) -> list[str]:
    """Names of the linear modules LoRA can target in `spec` (q_proj, ..., lm_head), from its
    config built on the meta device (no weights); cached per spec. Without a config on disk
    yet (an unconverted GGUF, an uncached Hub id) the Llama names of its known shape, else []
    (unknown until it loads). Raises ModelError when the config cannot be read."""
    if spec in _MODULES:
        return _MODULES[spec]
    folder = _config_source(spec)
    if folder is None and spec == TINY:
        folder = Path(resolve_model(spec))  # built once, locally
    if folder is None:
        from engine.models.memory import model_shape

        try:
            names = sorted(model_shape(spec).linear_shapes())
        except (ModelError, OSError, ValueError):
            return []  # not cached: an unknown Hub model, checked when it loads
    elif _config_type(folder) in LLAMA_LIKE:
        names = sorted([*LLAMA_MODULES, "lm_head"])  # read from config.json: no torch import
    else:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        try:
            config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{spec}: cannot read its model config: {exc}") from exc
        names = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear)
            }
        )
    _MODULES[spec] = names
    return names


def target_module_problem(spec: str, targets: Any) -> str | None:
    """Why LoRA cannot target `targets` in `spec` (names the model lacks), or None."""
    if targets == "all-linear" or not targets:
        return None
    names = module_names(spec)
    if not names:
        return None
    missing = [t for t in ([targets] if isinstance(targets, str) else targets) if t not in names]
    if not missing:
        return None
    return (
        f"target_modules: {', '.join(missing)} not in {spec} "
        f"(it has {', '.join(n for n in names if n != 'lm_head')})"
    )


def model_problems(spec: str, targets: Any = None, *, online: bool | None = None) -> list[str]:
    """What would make a training run with this model and these target modules fail at load:
    the spec does not resolve here, or a target module it lacks. No weights are loaded."""
    problem = resolve_spec_problem(spec, online=online)
    if problem:
        return [f"model: {problem}"]
    try:
        found = target_module_problem(spec, targets)
    except ModelError as exc:
        return [f"model: {exc}"]
    return [found] if found else []
