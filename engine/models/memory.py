"""Peak memory of a LoRA training config on the device the run will use, estimated from the
model's shape alone, and the memory that device has.

No weights are loaded: the shape comes from the model folder's config.json (`tiny`, local
folders, converted GGUF files, `NAME:random`), a GGUF file's metadata, or a table of the SmolLM2
family. On CUDA the estimate is of GPU memory; on CPU and MPS of the training process's host
memory (resident set), where activations are fp32 unless bf16 is asked for.

The formula (bytes; b = bytes per element of the activations: 2 under bf16 autocast, else 4):

  weights      = P * b_w                  P = all parameters, b_w = 2 on bf16 (CUDA), else 4;
                                          on CPU with bf16 autocast 4 + 2 (a bf16 copy is cached)
  lora         = L * 16                   L = LoRA parameters, kept in fp32: weight 4 +
                                          gradient 4 + AdamW's two moments 8
  activations  = B * T * n_layers * a * b a per token per layer = 20h + 5i elements (norm
                                          inputs, q/k/v/o inputs and outputs, rotary copies,
                                          LoRA dropout copies, the MLP's gate/up/act/product;
                                          16h + 4i counted by hand, 1.26x that measured on CPU)
       with gradient checkpointing: B * T * (n_layers * h + a) * b (layer inputs plus the
                                          one layer being recomputed)
  attn mask    = B * T^2 * b per layer    SDPA converts the padding mask into a new float
                                          tensor in every layer and keeps it for the backward
                                          (one layer with gradient checkpointing)
  logits       = B * T * f * V * c        the LM head runs on target tokens only (f = 0.5, the
                                          share assumed); c = 40 bytes per target and vocabulary
                                          entry on CPU (measured: the fp32 logits, log-softmax
                                          and their gradients are 16; the rest is what the
                                          allocator keeps), 20 on CUDA (bf16 logits, fp32 copy,
                                          log-softmax, gradients)
  runtime      = 0.5 GB on CUDA (context, kernels), 0.6 GB on CPU/MPS (the interpreter with
                                          torch, transformers and peft loaded)
  slack        = 5% of weights..logits (allocator caching and fragmentation)

B is the micro-batch, T the longest example kept (max_seq_len when the data is not known):
length-grouped batches put the longest examples together, so that batch is the peak.
engine/train/loop.py records the measured peak beside this estimate in every run's summary
(CUDA: torch.cuda.max_memory_reserved; CPU/MPS: the process's peak resident set), so every run
checks it; README.md has the table of estimate against measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GB = 1024**3
TARGET_SHARE = 0.5
RUNTIME_GB = {"cuda": 0.5, "cpu": 0.6, "mps": 0.6}
SLACK = 0.05
LOGIT_BYTES = {"cuda": 20, "cpu": 40, "mps": 40}  # per target token and vocabulary entry


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
class DeviceMemory:
    """What the device a run will use has: GPU memory on CUDA, host memory on CPU and MPS."""

    device: str  # cuda, cpu or mps
    total_gb: float | None
    available_gb: float | None
    planned: bool = False  # a card size given by the user, not this machine

    @property
    def what(self) -> str:
        return "GPU memory" if self.device == "cuda" else "host memory"


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (empty off Linux)."""
    out: dict[str, int] = {}
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return out


def _cgroup_limit() -> tuple[int, int] | None:
    """(limit, in use) in bytes of this process's cgroup v2 memory limit, if it has one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return (int(limit), used) if limit.isdigit() else None


def host_memory() -> tuple[float | None, float | None]:
    """(total, available) host memory in GB: /proc/meminfo (and a cgroup limit below it), else
    psutil; (None, None) when neither can be read."""
    info = _meminfo()
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    if total is None:
        try:
            import psutil

            vm = psutil.virtual_memory()
            total, avail = vm.total, vm.available
        except (ImportError, OSError):
            return None, None
    limit = _cgroup_limit()
    if limit and limit[0] < total:
        total, avail = limit[0], min(avail or limit[0], limit[0] - limit[1])
    return total / GB, (avail / GB if avail is not None else None)


def device_memory(device: str | None = None, card_gb: float | None = None) -> DeviceMemory:
    """Total and available memory of `device` (default: the one a run would use here). With
    `card_gb`: a CUDA card of that size, as planned (nothing measured)."""
    if card_gb is not None:
        return DeviceMemory("cuda", float(card_gb), float(card_gb), planned=True)
    if device is None:
        from engine.models.load import default_device

        device = default_device()
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = torch.device(device).index
        free, total = torch.cuda.mem_get_info(
            index if index is not None else torch.cuda.current_device()
        )
        return DeviceMemory("cuda", total / GB, free / GB)
    total, avail = host_memory()
    return DeviceMemory(kind, total, avail)


@dataclass(frozen=True)
class MemoryEstimate:
    total_gb: float
    fits: bool
    card_gb: float | None  # what the estimate is checked against: available memory, or a card
    breakdown: dict[str, float] = field(default_factory=dict)  # GB per term
    params: int = 0
    lora_params: int = 0
    device: str = "cuda"
    total_memory_gb: float | None = None
    available_gb: float | None = None
    planned: bool = False
    dtype: str = "bf16"
    seq: int = 0

    @property
    def what(self) -> str:
        return "GPU memory" if self.device == "cuda" else "host memory"

    def where(self) -> str:
        """What the estimate is checked against, in words."""
        if self.planned:
            return f"a {self.card_gb:g} GB card"
        if self.available_gb is None:
            return f"this machine's {self.what} (unknown)"
        total = f" of {self.total_memory_gb:.1f} GB" if self.total_memory_gb else ""
        return f"the {self.available_gb:.1f} GB {self.what} available{total} ({self.device})"

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.breakdown.items())
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"estimated peak {self.what} {self.total_gb:.2f} GB on {self.device} "
            f"({self.dtype} activations, {parts}); {verdict} {self.where()}"
        )

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "estimate_gb": self.total_gb,
            "available_gb": None if self.available_gb is None else round(self.available_gb, 3),
            "total_memory_gb": None
            if self.total_memory_gb is None
            else round(self.total_memory_gb, 3),
            "planned_card": self.planned,
            "fits": self.fits,
            "parts": dict(self.breakdown),
            "activation_dtype": self.dtype,
            "params": self.params,
            "lora_params": self.lora_params,
            "seq": self.seq,
        }


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
    from engine.models.load import (
        GGUF_ALIASES,
        TINY,
        ModelError,
        gguf_cache_dir,
        is_random,
        random_config_path,
        resolve_model,
    )

    if is_random(spec):
        return _shape_from_config(json.loads(random_config_path(spec).read_text()))
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
        from engine.models.load import alias_gguf_path

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


def _precision(precision: str, device: str) -> tuple[int, int, str]:
    """(weight bytes, activation bytes, activation dtype name) as engine.train.loop runs it."""
    if precision == "fp32":
        return 4, 4, "fp32"
    if device == "cuda":
        return 2, 2, "bf16"  # auto means bf16 on a CUDA card
    if precision == "bf16":  # fp32 weights plus autocast's cached bf16 copies
        return 6, 2, "bf16"
    return 4, 4, "fp32"


def estimate_memory(
    model_spec: str,
    cfg: Any,
    card_gb: float | None = None,
    *,
    longest: int | None = None,
    device: str | None = None,
    memory: DeviceMemory | None = None,
) -> MemoryEstimate:
    """Expected peak memory (GB) of training `cfg` on `model_spec`, and whether it fits.

    The device is `device`, else this machine's (CUDA, else MPS, else CPU), checked against its
    available memory; `card_gb` instead plans for a CUDA card of that size. `longest`: the
    longest example kept (in tokens) when the data is known; else max_seq_len.
    """
    mem = memory or device_memory(device, card_gb)
    shape = model_shape(model_spec)
    b_w, b, dtype = _precision(_cfg_value(cfg, "precision"), mem.device)
    batch, seq = _cfg_value(cfg, "batch_size"), _cfg_value(cfg, "max_seq_len")
    if longest:
        seq = min(seq, longest)
    tokens = batch * seq
    n_params = shape.n_params()
    n_lora = lora_params(shape, _cfg_value(cfg, "lora_r"), _cfg_value(cfg, "target_modules"))
    per_layer = 20 * shape.hidden + 5 * shape.intermediate
    mask = batch * seq * seq * b  # one layer's float copy of the padding mask
    if _cfg_value(cfg, "gradient_checkpointing"):
        act = tokens * (shape.layers * shape.hidden + per_layer) * b + mask
    else:
        act = (tokens * per_layer * b + mask) * shape.layers
    logit_bytes = LOGIT_BYTES.get(mem.device, 40)
    parts = {
        "weights": n_params * b_w / GB,
        "lora+adam": n_lora * 16 / GB,
        "activations": act / GB,
        "logits": tokens * TARGET_SHARE * shape.vocab * logit_bytes / GB,
    }
    parts["slack"] = SLACK * sum(parts.values())
    parts["runtime"] = RUNTIME_GB.get(mem.device, 0.6)
    total = sum(parts.values())
    limit = mem.available_gb
    # An estimate is per process; data-parallel processes off CUDA share this host's memory.
    procs = (getattr(cfg, "nproc", 1) if not isinstance(cfg, dict) else cfg.get("nproc", 1)) or 1
    return MemoryEstimate(
        total_gb=round(total, 3),
        fits=limit is None or total * (procs if mem.device != "cuda" else 1) <= limit,
        card_gb=limit,
        breakdown={k: round(v, 3) for k, v in parts.items()},
        params=n_params,
        lora_params=n_lora,
        device=mem.device,
        total_memory_gb=mem.total_gb,
        available_gb=mem.available_gb,
        planned=mem.planned,
        dtype=dtype,
        seq=seq,
    )


def suggestions(
    model_spec: str, cfg: Any, est: MemoryEstimate, *, longest: int | None = None
) -> list[dict]:
    """Changes that make a config fit, each with its estimate: gradient checkpointing, a
    smaller batch with more grad_accum (same effective batch), a shorter max_seq_len.
    Empty when it fits, or when nothing tried fits."""
    from dataclasses import replace

    if est.fits:
        return []
    mem = DeviceMemory(est.device, est.total_memory_gb, est.available_gb, est.planned)

    def fit(**change) -> MemoryEstimate:
        return estimate_memory(model_spec, replace(cfg, **change), longest=longest, memory=mem)

    out: list[dict] = []

    def add(change: dict, new: MemoryEstimate) -> None:
        out.append({"change": change, "estimate_gb": new.total_gb})

    batch, accum = cfg.batch_size, cfg.grad_accum
    effective = batch * accum
    extras: list[dict] = [{}]
    if not cfg.gradient_checkpointing:
        new = fit(gradient_checkpointing=True)
        if new.fits:
            add({"gradient_checkpointing": True}, new)
        extras.append({"gradient_checkpointing": True})
    for extra in extras:  # the largest smaller batch that fits, without then with checkpointing
        found = False
        for smaller in range(batch - 1, 0, -1):
            change = {**extra, "batch_size": smaller, "grad_accum": -(-effective // smaller)}
            new = fit(**change)
            if new.fits:
                add(change, new)
                found = True
                break
        if found:
            break
    seq = min(cfg.max_seq_len, longest or cfg.max_seq_len)
    for shorter in (s for s in (1536, 1024, 768, 512, 384, 256, 128) if s < seq):
        new = fit(max_seq_len=shorter)
        if new.fits:
            add({"max_seq_len": shorter}, new)
            break
    return out


def describe_change(change: dict) -> str:
    """`batch_size 2, grad_accum 16` for a suggestion's change."""
    text = ", ".join(f"{k} {str(v).lower()}" for k, v in change.items())
    if "max_seq_len" in change:
        text += " (longer examples are dropped)"
    return text


def peak_memory(device: str) -> dict[str, float]:
    """The measured peak of this process: on CUDA the allocator's peaks, elsewhere the peak
    resident set (what the estimate predicts on that device is the first key)."""
    if device.startswith("cuda"):
        import torch

        return {
            "peak_memory_gb": torch.cuda.max_memory_reserved() / GB,
            "peak_allocated_gb": torch.cuda.max_memory_allocated() / GB,
        }
    return {"peak_memory_gb": peak_rss_gb()}


def peak_rss_gb() -> float:
    """Peak resident set of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / GB if sys.platform == "darwin" else rss * 1024 / GB
