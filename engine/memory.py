"""Peak GPU memory of a LoRA training config, estimated from the model's shape alone.

No weights are loaded: the shape comes from the model folder's config.json (`tiny`, local
folders, converted GGUF files), a GGUF file's metadata, or a table of the SmolLM2 family.

The formula (bytes; b = bytes per element of the compute dtype: 2 for bf16, 4 for fp32):

  weights      = P * b_w                  P = all parameters, b_w = 2 on bf16, 4 on fp32
  lora         = L * 16                   L = LoRA parameters, kept in fp32: weight 4 +
                                          gradient 4 + AdamW's two moments 8
  activations  = B * T * n_layers * a * b a per token per layer = 16h + 4i elements
                                          (norm inputs, q/k/v/o inputs and outputs, LoRA
                                          dropout copies, the MLP's gate/up/act/product),
                                          attention itself by SDPA (no T x T matrix kept)
       with gradient checkpointing: B * T * (n_layers * h + a) * b (layer inputs plus the
                                          one layer being recomputed)
  logits       = B * T * f * V * 12       logits in fp32 (4), their gradient (4) and the
                                          softmax copy (4), for target tokens only: f = 0.5,
                                          the share of target tokens assumed
  margin       = 0.5 GB (CUDA context, kernels) + 10% of the above (allocator slack)

B is the micro-batch, T the longest example kept (max_seq_len when the data is not known):
length-grouped batches put the longest examples together, so that batch is the peak. The estimate is meant to be conservative by tens of percent,
good enough to decide whether a config fits a card before launching it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GB = 1024**3
TARGET_SHARE = 0.5
MARGIN_GB = 0.5


@dataclass(frozen=True)
class ModelShape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def n_params(self) -> int:
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # attention, MLP, two norms
        embed = self.vocab * h * (1 if self.tied else 2)
        return embed + self.layers * per_layer + h

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear module of one layer, by its Llama name."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return {
            "q_proj": (h, h),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (h, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


# The SmolLM2 family (from each model's published config.json).
_SMOLLM2 = {
    "135m": ModelShape(49152, 576, 1536, 30, 9, 3),
    "360m": ModelShape(49152, 960, 2560, 32, 15, 5),
    "1.7b": ModelShape(49152, 2048, 8192, 24, 32, 32),
}


@dataclass(frozen=True)
class MemoryEstimate:
    total_gb: float
    fits: bool
    card_gb: float
    breakdown: dict[str, float] = field(default_factory=dict)  # GB per term
    params: int = 0
    lora_params: int = 0

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.breakdown.items())
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"estimated peak GPU memory {self.total_gb:.2f} GB ({parts}); "
            f"{verdict} a {self.card_gb:g} GB card"
        )


def _shape_from_config(config: dict) -> ModelShape:
    heads = config["num_attention_heads"]
    return ModelShape(
        vocab=config["vocab_size"],
        hidden=config["hidden_size"],
        intermediate=config["intermediate_size"],
        layers=config["num_hidden_layers"],
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        tied=bool(config.get("tie_word_embeddings", False)),
    )


def _shape_from_gguf(path: Path) -> ModelShape:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str):
        f = reader.fields[key]
        return f.parts[f.data[0]].tolist()[0]

    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    heads = value(f"{arch}.attention.head_count")
    tokens = reader.fields["tokenizer.ggml.tokens"]
    return ModelShape(
        vocab=len(tokens.data),
        hidden=value(f"{arch}.embedding_length"),
        intermediate=value(f"{arch}.feed_forward_length"),
        layers=value(f"{arch}.block_count"),
        heads=heads,
        kv_heads=value(f"{arch}.attention.head_count_kv")
        if f"{arch}.attention.head_count_kv" in reader.fields
        else heads,
        tied="output.weight" not in {t.name for t in reader.tensors},
    )


def model_shape(spec: str) -> ModelShape:
    """The shape of a model spec without loading its weights."""
    from engine.models import GGUF_ALIASES, TINY, ModelError, gguf_cache_dir, resolve_model

    lowered = spec.lower()
    for size, shape in _SMOLLM2.items():
        if f"smollm2-{size}" in lowered:
            return shape
    path = Path(spec).expanduser()
    if spec == TINY or path.is_dir():
        folder = Path(resolve_model(spec))
        return _shape_from_config(json.loads((folder / "config.json").read_text()))
    if lowered in GGUF_ALIASES or path.suffix == ".gguf":
        if not path.exists() and lowered not in GGUF_ALIASES:
            raise ModelError(f"{spec}: no such file.")
        from engine.models import alias_gguf_path

        gguf = alias_gguf_path(spec) if lowered in GGUF_ALIASES else path
        converted = gguf_cache_dir(gguf) / "config.json"
        if converted.exists():
            return _shape_from_config(json.loads(converted.read_text()))
        return _shape_from_gguf(gguf)
    raise ModelError(
        f"no size known for model {spec!r}: use a local folder, a .gguf file, or a SmolLM2 id"
    )


def _cfg_value(cfg: Any, key: str):
    return cfg[key] if isinstance(cfg, dict) else getattr(cfg, key)


def lora_params(shape: ModelShape, r: int, targets) -> int:
    linear = shape.linear_shapes()
    names = list(linear) if targets == "all-linear" else [t for t in targets if t in linear]
    return shape.layers * sum(r * (linear[n][0] + linear[n][1]) for n in names)


def estimate_memory(
    model_spec: str, cfg: Any, card_gb: float = 16.0, *, longest: int | None = None
) -> MemoryEstimate:
    """Expected peak GPU memory (GB) of training `cfg` on `model_spec`, and whether it fits.

    `longest`: the longest example kept (in tokens) when the data is known; else max_seq_len.
    """
    shape = model_shape(model_spec)
    precision = _cfg_value(cfg, "precision")
    b = 4 if precision == "fp32" else 2  # auto means bf16 on a CUDA card
    batch, seq = _cfg_value(cfg, "batch_size"), _cfg_value(cfg, "max_seq_len")
    if longest:
        seq = min(seq, longest)
    tokens = batch * seq
    n_params = shape.n_params()
    n_lora = lora_params(shape, _cfg_value(cfg, "lora_r"), _cfg_value(cfg, "target_modules"))
    per_layer = 16 * shape.hidden + 4 * shape.intermediate
    if _cfg_value(cfg, "gradient_checkpointing"):
        act = tokens * (shape.layers * shape.hidden + per_layer) * b
    else:
        act = tokens * shape.layers * per_layer * b
    parts = {
        "weights": n_params * b / GB,
        "lora+adam": n_lora * 16 / GB,
        "activations": act / GB,
        "logits": tokens * TARGET_SHARE * shape.vocab * 12 / GB,
    }
    parts["margin"] = MARGIN_GB + 0.1 * sum(parts.values())
    total = sum(parts.values())
    return MemoryEstimate(
        total_gb=round(total, 3),
        fits=total <= card_gb,
        card_gb=card_gb,
        breakdown={k: round(v, 3) for k, v in parts.items()},
        params=n_params,
        lora_params=n_lora,
    )
