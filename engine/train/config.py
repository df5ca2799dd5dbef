"""The training config: one frozen dataclass, read from YAML plus `key=value` overrides, checked
in full before anything heavy loads.

Defaults follow the EdgeJSON authors' LoRA recipe where it is sound (r=16, alpha=32, dropout
0.05 on q/k/v/o, lr 2e-4, cosine with warmup, 3 epochs, effective batch 32) and fix where it
was not (completion-only loss, EOS trained, no silent truncation: see engine.train.data).
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from engine.decode.prompt import TEMPLATES

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
TOO_LONG = ("drop", "error")
PRECISIONS = ("auto", "bf16", "fp32")
PATH_KEYS = ("train_data", "val_data", "schemas_dir", "out_dir")
SELECT_BY = ("json_exact", "field_f1", "val_loss")


class ConfigError(ValueError):
    """Every problem found in a config, listed at once."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}{len(self.problems)} problem(s) in the training config:\n{lines}")


@dataclass(frozen=True)
class TrainConfig:
    """A training job, fully resolved (paths absolute, defaults filled)."""

    model: str = "HuggingFaceTB/SmolLM2-135M"
    train_data: str | None = None  # a JSONL file (required)
    val_data: str | None = None  # a separate validation file; else a slice of train_data
    val_fraction: float = 0.05  # held-out slice of train_data when val_data is not given
    schemas_dir: str | None = None  # default: `schemas/` beside the data file
    out_dir: str | None = None  # default: <db stem>-outputs/run-<id> beside the run log
    name: str | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | str = DEFAULT_TARGETS  # or "all-linear"
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    epochs: int = 3
    max_steps: int | None = None  # a cap on optimizer steps (None: epochs decide)
    batch_size: int = 8  # examples per micro-batch
    grad_accum: int = 4  # micro-batches per optimizer step: effective batch 32
    max_grad_norm: float = 1.0
    max_seq_len: int = 2048  # prompt + target + EOS, in tokens; longer examples are never cut
    too_long: str = "drop"  # drop (and report) or error
    precision: str = "auto"  # auto: bf16 autocast on CUDA when supported, else fp32
    gradient_checkpointing: bool = False
    log_every: int = 10
    eval_every: int = 50  # validation loss and decoding metrics every N steps (and at saves)
    save_every: int = 100
    seed: int = 42
    prompt_template: str = "schemalab"  # one of engine.decode.prompt.TEMPLATES; stored with the run
    # In-training evaluation: decode the first val_eval_limit validation examples at every
    # evaluation and record val_json_exact, val_field_f1, ... (0 turns decoding off; val_loss stays).
    val_eval_limit: int = 32
    val_constrained: bool = True  # schema-constrained decoding (xgrammar) for those answers
    val_max_new_tokens: int = 1024  # decode-token cap per answer
    val_eval_batch: int = 8  # answers decoded together
    # The best checkpoint (marked in the run log, kept, used by `RUN_ID`): the highest
    # val_json_exact / val_field_f1 (an equal value: the lower val_loss), or the lowest
    # val_loss; full ties keep the earlier one. An evaluation that finds a new best saves a
    # checkpoint there. Without decoding (val_eval_limit 0), val_loss decides.
    select_by: str = "json_exact"
    patience: int | None = None  # stop after N evaluations without improvement (null: never)
    keep_last: int = 3  # checkpoints kept besides the best; older ones are deleted
    # Data-parallel processes (torchrun; one GPU each, or CPU processes with gloo). Every
    # optimizer step takes batch_size x grad_accum x nproc examples, in the order one process
    # with grad_accum x nproc would take them: see engine.train.distributed.
    nproc: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not isinstance(self.target_modules, str):  # "all-linear" stays a string
            data["target_modules"] = list(self.target_modules)
        return data

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.nproc


DEFAULTS: dict[str, Any] = TrainConfig().to_dict()
KEYS = tuple(f.name for f in fields(TrainConfig))

# key -> (accepted types, human description) for the type check.
_INT, _FLOAT, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": (_STR, "a model spec (string)"),
    "name": (_STR, "a string"),
    "lora_r": (_INT, "an integer"),
    "lora_alpha": (_FLOAT, "a number"),
    "lora_dropout": (_FLOAT, "a number"),
    "lr": (_FLOAT, "a number"),
    "weight_decay": (_FLOAT, "a number"),
    "warmup_ratio": (_FLOAT, "a number"),
    "val_fraction": (_FLOAT, "a number"),
    "epochs": (_INT, "an integer"),
    "max_steps": (_INT, "an integer"),
    "batch_size": (_INT, "an integer"),
    "grad_accum": (_INT, "an integer"),
    "max_grad_norm": (_FLOAT, "a number"),
    "max_seq_len": (_INT, "an integer"),
    "too_long": (_STR, f"one of {', '.join(TOO_LONG)}"),
    "precision": (_STR, f"one of {', '.join(PRECISIONS)}"),
    "gradient_checkpointing": (_BOOL, "true or false"),
    "log_every": (_INT, "an integer"),
    "eval_every": (_INT, "an integer"),
    "save_every": (_INT, "an integer"),
    "seed": (_INT, "an integer"),
    "prompt_template": (_STR, "one of " + ", ".join(TEMPLATES)),
    "val_eval_limit": (_INT, "an integer"),
    "val_constrained": (_BOOL, "true or false"),
    "val_max_new_tokens": (_INT, "an integer"),
    "val_eval_batch": (_INT, "an integer"),
    "select_by": (_STR, f"one of {', '.join(SELECT_BY)}"),
    "patience": (_INT, "an integer"),
    "keep_last": (_INT, "an integer"),
    "nproc": (_INT, "an integer"),
    **{k: (_STR, "a path (string)") for k in PATH_KEYS},
}
# Names other tools use for the same settings, for the did-you-mean hint.
_ALIASES = {
    "learning_rate": "lr",
    "r": "lora_r",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "nproc_per_node": "nproc",
    "world_size": "nproc",
    "max_length": "max_seq_len",
    "seq_len": "max_seq_len",
    "output_dir": "out_dir",
    "data": "train_data",
    "warmup": "warmup_ratio",
}
_NULLABLE = {"val_data", "schemas_dir", "out_dir", "name", "max_steps", "train_data", "patience"}


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as a YAML scalar (`lr=1e-4` is a float, `x=null` is None)."""
    if "=" not in item:
        raise ConfigError([f"override {item!r} is not key=value"])
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError([f"override {item!r}: value is not valid YAML ({exc})"]) from exc
    if isinstance(value, str) and _looks_float(raw):
        value = float(raw)  # YAML 1.1 reads `2e-4` as a string; people mean a number
    return key.strip(), value


def _looks_float(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return not raw.strip().lstrip("+-").isdigit()


def _check_types(data: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in data.items():
        if key not in KEYS:
            close = (
                [_ALIASES[key]] if key in _ALIASES else difflib.get_close_matches(key, KEYS, n=1)
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}")
            continue
        if value is None:
            if key not in _NULLABLE:
                problems.append(f"{key}: must be set (got null)")
            continue
        if key == "target_modules":
            ok = value == "all-linear" or (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(v, str) and v for v in value)
            )
            if not ok:
                problems.append(
                    f"target_modules: a list of module names or 'all-linear', got {value!r}"
                )
            continue
        types, what = _TYPES[key]
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            problems.append(f"{key}: must be {what}, got {value!r}")
    return problems


def _check_values(c: dict[str, Any]) -> list[str]:
    """Impossible values, once the types are right."""
    p = []

    def need(cond: bool, message: str) -> None:
        if not cond:
            p.append(message)

    for key, value in c.items():  # .inf and .nan read as numbers but train nothing
        if isinstance(value, float) and not math.isfinite(value):
            p.append(f"{key} must be a finite number, got {value}")
    need(c["lora_r"] > 0, f"lora_r must be > 0, got {c['lora_r']}")
    need(c["lora_alpha"] > 0, f"lora_alpha must be > 0, got {c['lora_alpha']}")
    need(0 <= c["lora_dropout"] < 1, f"lora_dropout must be in [0, 1), got {c['lora_dropout']}")
    need(c["lr"] > 0, f"lr must be > 0, got {c['lr']}")
    need(c["weight_decay"] >= 0, f"weight_decay must be >= 0, got {c['weight_decay']}")
    need(0 <= c["warmup_ratio"] < 1, f"warmup_ratio must be in [0, 1), got {c['warmup_ratio']}")
    need(0 <= c["val_fraction"] < 1, f"val_fraction must be in [0, 1), got {c['val_fraction']}")
    need(c["epochs"] >= 1, f"epochs must be >= 1, got {c['epochs']}")
    need(
        c["max_steps"] is None or c["max_steps"] >= 1,
        f"max_steps must be >= 1 or null, got {c['max_steps']}",
    )
    need(c["batch_size"] >= 1, f"batch_size must be >= 1, got {c['batch_size']}")
    need(c["grad_accum"] >= 1, f"grad_accum must be >= 1, got {c['grad_accum']}")
    need(c["max_grad_norm"] > 0, f"max_grad_norm must be > 0, got {c['max_grad_norm']}")
    need(c["max_seq_len"] >= 16, f"max_seq_len must be >= 16, got {c['max_seq_len']}")
    need(c["too_long"] in TOO_LONG, f"too_long must be one of {TOO_LONG}, got {c['too_long']!r}")
    need(
        c["precision"] in PRECISIONS,
        f"precision must be one of {PRECISIONS}, got {c['precision']!r}",
    )
    for key in (
        "log_every",
        "eval_every",
        "save_every",
        "val_max_new_tokens",
        "val_eval_batch",
        "keep_last",
        "nproc",
    ):
        need(c[key] >= 1, f"{key} must be >= 1, got {c[key]}")
    need(
        c["val_eval_limit"] >= 0, f"val_eval_limit must be >= 0 (0: off), got {c['val_eval_limit']}"
    )
    need(
        c["patience"] is None or c["patience"] >= 1,
        f"patience must be >= 1 or null (off), got {c['patience']}",
    )
    need(
        c["prompt_template"] in TEMPLATES,
        f"prompt_template must be one of {TEMPLATES}, got {c['prompt_template']!r}",
    )
    need(
        c["select_by"] in SELECT_BY, f"select_by must be one of {SELECT_BY}, got {c['select_by']!r}"
    )
    return p


def _resolve_path(value: str, base_dir: Path | None) -> Path:
    """Relative paths are tried against the working folder, then the config file's folder."""
    path = Path(value).expanduser()
    if path.is_absolute() or base_dir is None:
        return path.resolve() if path.exists() else path.absolute()
    if path.exists():
        return path.resolve()
    candidate = base_dir / path
    return candidate.resolve() if candidate.exists() else path.absolute()


def _check_paths(c: dict[str, Any], base_dir: Path | None) -> list[str]:
    p = []
    if not c.get("train_data"):
        p.append("train_data: required (a JSONL file of training examples)")
    for key in PATH_KEYS:
        if c.get(key):
            c[key] = str(_resolve_path(c[key], base_dir))
    for key in ("train_data", "val_data"):
        if c.get(key):
            path = Path(c[key])
            if not path.is_file():
                what = "is a folder, not a JSONL file" if path.is_dir() else "no such file"
                p.append(f"{key}: {c[key]}: {what}")
    if c.get("schemas_dir") and not Path(c["schemas_dir"]).is_dir():
        p.append(f"schemas_dir: {c['schemas_dir']}: no such folder")
    return p


def config_problems(data: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    """Every problem with a config mapping (empty when it is valid). Paths are not resolved in `data`."""
    return _validate(dict(data), base_dir)[1]


def _validate(data: dict[str, Any], base_dir: Path | None) -> tuple[dict[str, Any], list[str]]:
    for key, value in data.items():
        # YAML 1.1 reads `2e-4` as a string; people mean a number.
        is_float_key = key in _TYPES and _TYPES[key][0] is _FLOAT
        if is_float_key and isinstance(value, str) and _looks_float(value):
            data[key] = float(value)
    problems = _check_types(data)
    merged = {**DEFAULTS, **{k: v for k, v in data.items() if k in KEYS}}
    # Range checks run on well-typed values only (defaults stand in for the others), so
    # every independent problem is reported once.
    bad_types = {p.split(":")[0] for p in problems}
    safe = {k: (DEFAULTS[k] if k in bad_types else v) for k, v in merged.items()}
    problems += _check_values(safe)
    problems += _check_paths(merged, base_dir)
    return merged, problems


def config_from_dict(
    data: dict[str, Any], base_dir: Path | None = None, source: str | None = None
) -> TrainConfig:
    merged, problems = _validate(dict(data), base_dir)
    if problems:
        raise ConfigError(problems, source)
    if isinstance(merged["target_modules"], list):
        merged["target_modules"] = tuple(merged["target_modules"])
    for key in ("lr", "lora_alpha", "lora_dropout", "weight_decay", "warmup_ratio", "val_fraction"):
        merged[key] = float(merged[key])
    return TrainConfig(**merged)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (optional), apply `key=value` overrides, validate everything.

    Raises ConfigError listing every problem; nothing heavy is imported.
    """
    data: dict[str, Any] = {}
    base_dir = None
    source = None
    if path is not None:
        path = Path(path)
        source = str(path)
        base_dir = path.resolve().parent
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read config file: {exc.strerror or exc}"], source) from exc
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            bad = exc.object[exc.start]
            message = f"line {line}: not UTF-8 text (byte 0x{bad:02x}); save the file as UTF-8"
            raise ConfigError([message], source) from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(
                [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source
            ) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(["the file must hold a mapping of key: value"], source)
        data.update(loaded)
    for item in overrides or []:
        key, value = parse_override(item)
        data[key] = value
    return config_from_dict(data, base_dir, source)


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of `cfg` with some fields changed, validated again."""
    return config_from_dict({**cfg.to_dict(), **changes})


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg), encoding="utf-8")


def config_json(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict())


__all__ = [
    "DEFAULTS",
    "ConfigError",
    "TrainConfig",
    "config_from_dict",
    "config_problems",
    "load_config",
    "parse_override",
    "replace",
    "save_config",
    "to_yaml",
    "with_overrides",
]
