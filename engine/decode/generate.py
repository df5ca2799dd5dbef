"""The one generation path, shared by the playground (streaming) and evaluation (batched).

The decoding loop is written out over the model's forward pass with a KV cache: prompts are
left-padded and grouped by length, each sequence stops as soon as its top-level JSON object
closes (or at EOS), finished sequences leave the batch, and an optional xgrammar mask keeps the
output inside the example's JSON Schema. The prompt is `engine.decode.prompt.render_prompt`, exactly as
in training. torch, transformers, peft and xgrammar are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.decode.prompt import (
    DEFAULT_TEMPLATE,
    check_template,
    prompt_adds_special_tokens,
    render_prompt,
)
from engine.decode.stop import JsonCloseTracker


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding settings. Greedy unless `do_sample`; `top_k=0` and `top_p=1.0` turn those off.

    `repetition_penalty` follows Hugging Face `generate`: every token already in the prompt or
    the output has its logit divided (if positive) or multiplied (if negative) by it.
    `max_new_tokens` is generous (EdgeJSON's complex answers need over 1,000 tokens); stopping at
    the closing brace makes a large limit cost nothing on answers that finish. `stop="eos"`
    ignores the closing brace and runs to EOS or `max_new_tokens`, as the published EdgeJSON
    harness does (text after the object then stays in the output).
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 1536
    seed: int = 0
    stop: str = "json"  # json: stop when the top-level object closes; eos: run to EOS or the cap

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


STOP_RULES = ("json", "eos")

PRESETS: dict[str, DecodingConfig] = {
    "greedy": DecodingConfig(),
    # The published workaround for small models that loop: mild sampling plus a repetition penalty.
    "loop-guard": DecodingConfig(
        do_sample=True, temperature=0.2, top_p=0.9, repetition_penalty=1.2
    ),
    "sample": DecodingConfig(do_sample=True, temperature=0.7, top_p=0.95),
}


class DecodingError(ValueError):
    """Bad decoding settings or adapter; the message says what to change."""


class Cancelled(Exception):
    """Generation stopped because its cancel signal was set."""


def decoding_from(
    preset: str = "greedy", overrides: list[str] | tuple[str, ...] = ()
) -> DecodingConfig:
    """A preset with `key=value` overrides applied, e.g. decoding_from("greedy", ["max_new_tokens=256"])."""
    if preset not in PRESETS:
        raise DecodingError(
            f"unknown decoding preset {preset!r}; choose one of {', '.join(PRESETS)}"
        )
    cfg = PRESETS[preset]
    fields = {f.name: f for f in dataclasses.fields(DecodingConfig)}
    changes: dict[str, Any] = {}
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise DecodingError(
                f"bad decoding setting {item!r}: use key=value with key one of {', '.join(fields)}"
            )
        changes[key] = _coerce(key, fields[key].type, raw.strip())
    cfg = dataclasses.replace(cfg, **changes)
    problems = config_problems(cfg)
    if problems:
        raise DecodingError("; ".join(problems))
    return cfg


def _coerce(key: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "str":
            return raw
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise DecodingError(f"{key}={raw!r}: expected a {kind}") from None


def config_problems(cfg: DecodingConfig) -> list[str]:
    problems = []
    if cfg.temperature <= 0:
        problems.append("temperature must be > 0 (use do_sample=false for greedy)")
    if not 0 < cfg.top_p <= 1:
        problems.append("top_p must be in (0, 1]")
    if cfg.top_k < 0:
        problems.append("top_k must be >= 0")
    if cfg.repetition_penalty <= 0:
        problems.append("repetition_penalty must be > 0")
    if cfg.max_new_tokens < 1:
        problems.append("max_new_tokens must be >= 1")
    if cfg.stop not in STOP_RULES:
        problems.append(f"stop must be one of {', '.join(STOP_RULES)}")
    return problems


@dataclass
class Generation:
    """One generated answer. `finish`: json_closed, eos, max_tokens, cancelled or grammar_error.
    `loop_guard_fired`: how many runaway arrays, strings or numbers the loop guard of
    constrained decoding had to close (engine.decode.loopguard); 0 when unconstrained."""

    text: str
    n_tokens: int
    latency_s: float
    truncated: bool
    finish: str = "json_closed"
    loop_guard_fired: int = 0


def resolve_adapter(adapter: str | Path, db: Any = None) -> tuple[Path, int | None]:
    """(adapter folder, training run id or None) for a PEFT adapter folder or a training run's
    adapter spec, looked up in the run log `db` (a path or an open database):

    - `RUN_ID`: the run's best checkpoint when one is marked, else its final adapter (else its
      last checkpoint);
    - `RUN_ID:final`: the adapter written when training completed;
    - `RUN_ID:step-N`: the checkpoint saved at step N (`RUN_ID:best` names the best explicitly).
    """
    import re

    path = Path(str(adapter)).expanduser()
    if path.is_dir():
        for candidate in (path, path / "adapter"):
            if (candidate / "adapter_config.json").exists():
                return candidate, None
        raise DecodingError(f"{path}: not a PEFT adapter folder (no adapter_config.json)")
    spec = str(adapter).strip()
    match = re.fullmatch(r"(\d+)(?::(final|best|step-(\d+)))?", spec)
    if match is None:
        raise DecodingError(
            f"adapter {spec!r}: no such folder, and not a training run id; give an adapter "
            "folder, RUN_ID (its best checkpoint), RUN_ID:final or RUN_ID:step-N"
        )
    from engine import runlog

    database = runlog.connect(db) if db is None or isinstance(db, (str, Path)) else db
    run_id, which = int(match.group(1)), match.group(2) or "default"
    run = runlog.get_run(database, run_id)
    if run is None:
        raise DecodingError(f"adapter {spec}: no run {run_id} in the run log (`schemalab runs`)")
    if run.get("kind") not in (None, "train"):
        raise DecodingError(
            f"adapter {spec}: run {run_id} is a {run['kind']} run, not a training run "
            "(`schemalab runs --kind train` lists them)"
        )

    def on_disk(folder: Path | None) -> Path | None:
        for candidate in (folder, folder / "adapter") if folder else ():
            if (candidate / "adapter_config.json").exists():
                return candidate
        return None

    ckpts = runlog.checkpoints(database, run_id)
    final = Path(run["out_dir"]) / "adapter" if run.get("out_dir") else None
    kept = [c for c in ckpts if on_disk(Path(c["path"]))]
    choices = (
        ", ".join(
            [f"{run_id}:step-{c['step']}" for c in kept]
            + ([f"{run_id}:final"] if on_disk(final) else [])
        )
        or "none on disk"
    )
    if which.startswith("step-"):
        step = int(match.group(3))
        folder = next((on_disk(Path(c["path"])) for c in kept if c["step"] == step), None)
        if folder is None:
            raise DecodingError(
                f"run {run_id} has no checkpoint at step {step}; use one of: {choices}"
            )
        return folder, run_id
    if which == "final":
        if on_disk(final) is None:
            raise DecodingError(
                f"run {run_id} has no final adapter (status {run.get('status')}); use one of: {choices}"
            )
        return on_disk(final), run_id
    best = next((c for c in kept if c["is_best"]), None)
    if best is not None:
        return on_disk(Path(best["path"])), run_id
    if which == "best":
        raise DecodingError(f"run {run_id} has no best checkpoint marked; use one of: {choices}")
    tried = ([final] if final else []) + [Path(c["path"]) for c in reversed(ckpts)]
    for candidate in tried:
        if on_disk(candidate):
            return on_disk(candidate), run_id
    raise DecodingError(
        f"run {run_id} has no adapter on disk (looked in: {', '.join(map(str, tried)) or 'nothing recorded'})"
    )


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())


class _Detokenizer:
    """Incremental decoding of one sequence: text pieces only once their bytes form whole
    characters, and with the context of the previous token (leading-space rules)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        if len(text) > len(before) and not text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return text[len(before) :]
        return ""

    def flush(self) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        return self._decode(self.ids[self.prefix :])[len(before) :]


class Generator:
    """A loaded model (plus optional LoRA adapter) that turns prompts into JSON answers."""

    # Constrained decoding closes runaway arrays, strings and numbers (engine.decode.loopguard); False
    # turns that off, e.g. to measure how many answers would otherwise run to the token cap.
    loop_guard: bool = True

    def __init__(
        self,
        model_spec: str,
        adapter: str | Path | None = None,
        device: str | None = None,
        *,
        db: Any = None,
        dtype: Any = None,
        model: Any = None,
        tokenizer: Any = None,
        template: str = DEFAULT_TEMPLATE,
    ):
        self.model_spec = model_spec
        self.template = check_template(template)
        self.adapter_path: Path | None = None
        self.adapter_run_id: int | None = None
        if model is None:
            from engine.models.load import load_model

            model, tokenizer = load_model(model_spec, device=device, dtype=dtype)
        if adapter:
            self.adapter_path, self.adapter_run_id = resolve_adapter(adapter, db)
            from peft import PeftModel

            # Merging the LoRA weights makes inference as fast as the base model.
            model = PeftModel.from_pretrained(model, str(self.adapter_path)).merge_and_unload()
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.last: Generation | None = None  # the last streamed generation's figures

    def encode(self, prompt: str, schema_id: str, schema: dict | None = None) -> list[int]:
        """Token ids of the prompt as training sees it (under `self.template`)."""
        text = render_prompt(
            prompt, schema_id, self.template, schema=schema, tokenizer=self.tokenizer
        )
        special = prompt_adds_special_tokens(self.template)
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def generate(
        self,
        items: list[tuple[str, str, dict | None]],
        cfg: DecodingConfig | None = None,
        constrained: bool = False,
        batch_size: int = 8,
        cancel: Any = None,
        *,
        formats: str = "lenient",
        on_batch: Callable[[list[int], list[Generation]], None] | None = None,
    ) -> list[Generation]:
        """Answers for (prompt, schema_id, schema) items, in input order. Prompts are batched by
        length; `on_batch(indices, generations)` is called as each batch finishes. Raises
        Cancelled when `cancel` (an Event or a callable) is set."""
        cfg = cfg or DecodingConfig()
        encoded = [self.encode(p, s, schema) for p, s, schema in items]
        order = sorted(range(len(items)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(items)
        for start in range(0, len(order), max(1, batch_size)):
            if _is_cancelled(cancel):
                raise Cancelled()
            idx = order[start : start + batch_size]
            schemas = [items[i][2] if constrained else None for i in idx]
            loop = self._run([encoded[i] for i in idx], schemas, cfg, cancel, formats)
            gens = _drain(loop)
            if any(g.finish == "cancelled" for g in gens):
                raise Cancelled()
            for i, g in zip(idx, gens):
                results[i] = g
            if on_batch:
                on_batch(idx, gens)
        return results  # type: ignore[return-value]

    def stream(
        self,
        prompt: str,
        schema_id: str,
        schema: dict | None = None,
        cfg: DecodingConfig | None = None,
        constrained: bool = False,
        cancel: Any = None,
        *,
        formats: str = "lenient",
    ) -> Iterator[str]:
        """Text pieces of one answer as they are generated; stops quietly when cancelled. The
        finished answer's figures are in `self.last` afterwards."""
        loop = self._run(
            [self.encode(prompt, schema_id, schema)],
            [schema if constrained else None],
            cfg or DecodingConfig(),
            cancel,
            formats,
        )
        while True:
            try:
                pieces = next(loop)
            except StopIteration as stop:
                self.last = stop.value[0]
                return
            for _row, piece in pieces:
                if piece:
                    yield piece

    def _run(
        self,
        prompts: list[list[int]],
        schemas: list[dict | None],
        cfg: DecodingConfig,
        cancel: Any,
        formats: str,
    ):
        """The decoding loop over one batch: yields [(row, text piece)] per step, returns the
        Generations."""
        import torch

        tok = self.tokenizer
        state = _BatchState(prompts, tok.pad_token_id, self.device)
        mask = None
        if any(s is not None for s in schemas):
            from engine.decode.grammar import SchemaMask

            mask = SchemaMask(tok, schemas, formats, self.vocab_size)
        guard = None
        if mask is not None and self.loop_guard:
            from engine.decode.loopguard import LoopGuard, wind_down_reserve

            # Data bounds come from the prompt's text (the grammar is compiled per schema).
            texts_in = [
                tok.decode(p, skip_special_tokens=True) if s is not None else ""
                for p, s in zip(prompts, schemas)
            ]
            guard = LoopGuard(
                tok, [s is not None for s in schemas], texts_in, self.vocab_size, self.device
            )
            wind_down_at = cfg.max_new_tokens - wind_down_reserve(cfg.max_new_tokens)
        rng = torch.Generator(device="cpu").manual_seed(cfg.seed) if cfg.do_sample else None
        presence = state.presence(self.vocab_size) if cfg.repetition_penalty != 1.0 else None
        n = len(prompts)
        detoks = [_Detokenizer(tok) for _ in range(n)]
        # The stop rule: watch for the top-level object's close, or (stop="eos") never stop there.
        trackers = [JsonCloseTracker() for _ in range(n)] if cfg.stop == "json" else []
        texts = [""] * n
        finish: list[str | None] = [None] * n
        latency = [0.0] * n
        n_tokens = [0] * n
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = state.prefill(self.model)
            for step in range(cfg.max_new_tokens):
                if _is_cancelled(cancel):
                    for r in state.active:
                        finish[r] = "cancelled"
                    break
                logits = logits.float()
                if presence is not None:
                    logits = _penalise(logits, presence, cfg.repetition_penalty)
                if mask is not None:
                    mask.apply(logits, state.active)
                if guard is not None:  # after the grammar: close runaway arrays and strings
                    if step >= wind_down_at:  # and close everything as the budget runs out
                        guard.wind_down(state.active)
                    guard.apply(logits, state.active)
                tokens = _pick(logits, cfg, rng)
                pieces, keep = [], []
                now = time.perf_counter() - t0
                for i, (r, t) in enumerate(zip(state.active, tokens.tolist())):
                    n_tokens[r] += 1
                    latency[r] = now
                    if mask is not None and not mask.accept(r, t):
                        finish[r] = "grammar_error"
                    elif t == tok.eos_token_id:
                        finish[r] = "eos"
                    else:
                        piece = detoks[r].add(t)
                        closed = trackers[r].feed(piece) if piece and trackers else None
                        if closed is not None:
                            piece = piece[: len(piece) - (trackers[r].seen - closed)]
                            finish[r] = "json_closed"
                        texts[r] += piece
                        pieces.append((r, piece))
                    if finish[r] is None:
                        keep.append(i)
                if presence is not None:
                    presence[torch.arange(len(tokens)), tokens] = True
                if guard is not None:
                    for r, piece in pieces:
                        guard.feed(r, piece)
                yield pieces
                if not keep or step == cfg.max_new_tokens - 1:
                    break
                tokens = state.keep(keep, tokens)
                if presence is not None and len(keep) < len(presence):
                    presence = presence[keep]
                logits = state.step(self.model, tokens)
        for r in range(n):
            if finish[r] is None:
                finish[r] = "max_tokens"
                rest = detoks[r].flush()
                texts[r] += rest
        return [
            Generation(
                texts[r],
                n_tokens[r],
                latency[r],
                finish[r] == "max_tokens",
                finish[r],
                loop_guard_fired=guard.fired(r) if guard is not None else 0,
            )
            for r in range(n)
        ]


def _drain(loop) -> list[Generation]:
    while True:
        try:
            next(loop)
        except StopIteration as stop:
            return stop.value


class _BatchState:
    """Left-padded inputs, attention mask, positions and KV cache of the rows still running."""

    def __init__(self, prompts: list[list[int]], pad_id: int, device):
        import torch

        width = max(len(p) for p in prompts)
        self.input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        self.attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, ids in enumerate(prompts):
            self.input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            self.attention[r, width - len(ids) :] = 1
        self.input_ids = self.input_ids.to(device)
        self.attention = self.attention.to(device)
        # Positions count real tokens only, so a padded row sees the same positions as unpadded.
        self.positions = (self.attention.cumsum(-1) - 1).clamp(min=0)
        self.next_pos = self.positions[:, -1] + 1
        self.active = list(range(len(prompts)))
        self.cache = None

    def presence(self, vocab_size: int):
        """[rows, vocab] bool: which tokens each row's prompt holds (for the repetition penalty)."""
        import torch

        out = torch.zeros(
            (len(self.active), vocab_size), dtype=torch.bool, device=self.input_ids.device
        )
        out.scatter_(1, self.input_ids, self.attention.bool())
        return out

    def prefill(self, model):
        from transformers import DynamicCache

        self.cache = DynamicCache()
        out = model(
            input_ids=self.input_ids,
            attention_mask=self.attention,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        return out.logits[:, -1, :]

    def keep(self, keep: list[int], tokens):
        """Drop finished rows from the batch and the cache; the kept rows' last tokens."""
        import torch

        if len(keep) < len(self.active):
            index = torch.tensor(keep, device=self.attention.device)
            self.cache.batch_select_indices(index)
            self.attention = self.attention[index]
            self.next_pos = self.next_pos[index]
            tokens = tokens[index.to(tokens.device)]
            self.active = [self.active[i] for i in keep]
        return tokens

    def step(self, model, tokens):
        import torch

        ones = torch.ones(
            (len(self.active), 1), dtype=self.attention.dtype, device=self.attention.device
        )
        self.attention = torch.cat([self.attention, ones], dim=1)
        out = model(
            input_ids=tokens.view(-1, 1).to(self.attention.device),
            attention_mask=self.attention,
            position_ids=self.next_pos.view(-1, 1),
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :]


def _penalise(logits, presence, penalty: float):
    import torch

    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(presence[:, : logits.shape[1]], scaled, logits)


def _pick(logits, cfg: DecodingConfig, rng):
    """Next token per row: argmax, or a sample after temperature, top-k and top-p."""
    import torch

    if not cfg.do_sample:
        return logits.argmax(dim=-1).cpu()
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token once the mass before it already reaches top_p (the best token always stays).
        drop = probs.cumsum(dim=-1) - probs >= cfg.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=rng).view(-1)
