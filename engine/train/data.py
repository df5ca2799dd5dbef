"""Training data: examples -> token ids with a completion-only label mask, the too-long report,
the validation slice, and length-grouped batches with dynamic padding.

Every example is `render_prompt(...)` + `render_target(...)` + EOS under the config's
`prompt_template`, tokenized as two pieces (the prompt alone, exactly as decoding tokenizes it,
then the target), so train and inference agree.
Labels: -100 on the prompt and on pads; the target and its EOS are trained. Examples longer
than max_seq_len are reported and dropped (or rejected), never cut.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.decode.prompt import (
    DEFAULT_TEMPLATE,
    TemplateError,
    prompt_adds_special_tokens,
    render_prompt,
    render_target,
)

IGNORE = -100
MEGABATCH = 50  # batches whose examples are sorted by length together


class DataError(ValueError):
    """Training data that cannot be used as configured; the message says what to do."""


@dataclass
class Encoded:
    """One tokenized example: `input_ids` = prompt + target + EOS; the first n_prompt are masked."""

    id: str
    input_ids: list[int]
    n_prompt: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_target(self) -> int:
        return len(self.input_ids) - self.n_prompt


@dataclass
class LengthReport:
    """Examples longer than max_seq_len (prompt + target + EOS, in tokens)."""

    n_total: int
    n_too_long: int
    too_long_ids: list[str]
    max_seq_len: int
    longest: int = 0  # the longest example, kept or not
    longest_kept: int = 0
    # Lines of the data files that yielded no example ({file, line, kind, message}), so they
    # are left out of training: reported with the lengths, never dropped silently.
    skipped: list[dict] = field(default_factory=list)

    def message(self) -> str:
        """The length verdict, then the lines that could not be loaded (if any)."""
        problems = self.load_problems()
        return self.length_message() + (f"\n{problems}" if problems else "")

    def length_message(self) -> str:
        if not self.n_too_long:
            return (
                f"all {self.n_total} examples fit max_seq_len={self.max_seq_len} "
                f"(longest {self.longest})"
            )
        ids = ", ".join(self.too_long_ids[:20]) + (" ..." if self.n_too_long > 20 else "")
        return (
            f"{self.n_too_long} of {self.n_total} examples are longer than max_seq_len="
            f"{self.max_seq_len} tokens (longest {self.longest}): {ids}"
        )

    def load_problems(self, limit: int = 5) -> str:
        """One line per skipped data line (the first `limit`), after a count; '' when none."""
        if not self.skipped:
            return ""
        n = len(self.skipped)
        lines = [
            (
                f"{n} line{'s' if n != 1 else ''} of the data could not be loaded and "
                f"{'are' if n != 1 else 'is'} left out of training (run `schemalab validate` "
                "on the file for all findings):"
            )
        ]
        for f in self.skipped[:limit]:
            lines.append(f"  {f['where']}: {f['kind']}: {f['message']}")
        if n > limit:
            lines.append(f"  ... and {n - limit} more")
        return "\n".join(lines)


@dataclass
class TrainData:
    train: list[Encoded]
    val: list[Encoded]
    report: LengthReport
    findings: list[Any] = field(default_factory=list)  # from loading the files
    # The validation examples (engine.data.types.Example, same order as `val`) and the schema
    # registry, for decoding them during training.
    val_examples: list[Any] = field(default_factory=list)
    registry: Any = None


def encode_example(
    tok, example, template: str = DEFAULT_TEMPLATE, schema: dict | None = None
) -> Encoded:
    """Token ids of prompt + target + EOS for an engine.data.types.Example under `template`."""
    text = render_prompt(example.prompt, example.schema_id, template, schema=schema, tokenizer=tok)
    prompt_ids = tok(text, add_special_tokens=prompt_adds_special_tokens(template))["input_ids"]
    target_ids = tok(render_target(example.expected, template), add_special_tokens=False)[
        "input_ids"
    ]
    return Encoded(
        example.id, list(prompt_ids) + list(target_ids) + [tok.eos_token_id], len(prompt_ids)
    )


def _encode_all(cfg, tok, examples: list, registry) -> list[Encoded]:
    from engine.evaluate.run import schema_of

    template = getattr(cfg, "prompt_template", DEFAULT_TEMPLATE)
    try:
        return [encode_example(tok, e, template, schema_of(e, registry)) for e in examples]
    except TemplateError as exc:
        raise DataError(f"{exc} (prompt_template: {template})") from exc


def schema_registry(cfg, path: str | None = None):
    """The schema registry of a config: `schemas_dir`, else `schemas/` beside the data file."""
    from engine.data.load import SchemaRegistry, find_schemas_dir

    folder = cfg.schemas_dir or find_schemas_dir(path or cfg.train_data)
    return SchemaRegistry.from_dir(folder) if folder else None


def labels_for(item: Encoded) -> list[int]:
    return [IGNORE] * item.n_prompt + item.input_ids[item.n_prompt :]


def _where(finding) -> str:
    name = Path(finding.file).name if finding.file else "?"
    return f"{name}:{finding.line}" if finding.line else name


def _load(path: str, registry=None) -> tuple[list, list]:
    from engine.data.load import load_examples

    result = load_examples(path, registry)
    if not result.examples:
        problems = "; ".join(f"{_where(f)}: {f.message}" for f in result.findings[:3])
        raise DataError(f"{path}: no usable examples" + (f" ({problems})" if problems else ""))
    return result.examples, result.findings


def skipped_lines(findings: list, examples: list) -> list[dict]:
    """The error findings of lines that yielded no example, as {where, file, line, kind,
    message}: those lines are not trained on."""
    kept = {(e.file, e.line) for e in examples}
    return [
        {"where": _where(f), "file": f.file, "line": f.line, "kind": f.kind, "message": f.message}
        for f in findings
        if f.severity == "error" and (f.file, f.line) not in kept
    ]


def split_val(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """A held-out slice (deterministic for a seed); at least one example when fraction > 0."""
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    held = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in held]
    val = [e for i, e in enumerate(examples) if i in held]
    return train, val


def length_report(
    cfg, tokenizer=None, encoded: list[Encoded] | None = None, skipped: list[dict] | None = None
) -> LengthReport:
    """Which training examples are longer than cfg.max_seq_len (loads the tokenizer if needed),
    and which lines of the data could not be loaded (`skipped`, when `encoded` is given)."""
    if encoded is None:
        if tokenizer is None:
            from engine.models.load import load_tokenizer

            tokenizer = load_tokenizer(cfg.model)
        registry = schema_registry(cfg)
        examples, findings = _load(cfg.train_data, registry)
        if cfg.val_data:
            more, more_findings = _load(cfg.val_data, registry)
            examples, findings = examples + more, findings + more_findings
        skipped = skipped_lines(findings, examples)
        encoded = _encode_all(cfg, tokenizer, examples, registry)
    long_ids = [e.id for e in encoded if len(e) > cfg.max_seq_len]
    kept = [len(e) for e in encoded if len(e) <= cfg.max_seq_len]
    return LengthReport(
        n_total=len(encoded),
        n_too_long=len(long_ids),
        too_long_ids=long_ids,
        max_seq_len=cfg.max_seq_len,
        longest=max((len(e) for e in encoded), default=0),
        longest_kept=max(kept, default=0),
        skipped=list(skipped or []),
    )


def prepare_data(cfg, tok) -> TrainData:
    """Load, split, tokenize and length-check the data of a config."""
    registry = schema_registry(cfg)
    examples, findings = _load(cfg.train_data, registry)
    if cfg.val_data:
        val_examples, more = _load(cfg.val_data, registry)
        train_examples, findings = examples, findings + more
    else:
        train_examples, val_examples = split_val(examples, cfg.val_fraction, cfg.seed)
    train = _encode_all(cfg, tok, train_examples, registry)
    val = _encode_all(cfg, tok, val_examples, registry)
    skipped = skipped_lines(findings, train_examples + val_examples)
    report = length_report(cfg, encoded=train + val, skipped=skipped)
    if report.n_too_long and cfg.too_long == "error":
        raise DataError(
            report.length_message() + ". Raise max_seq_len, remove them, or set too_long: drop."
        )
    train = [e for e in train if len(e) <= cfg.max_seq_len]
    fits = [len(e) <= cfg.max_seq_len for e in val]
    val_examples = [ex for ex, ok in zip(val_examples, fits) if ok]
    val = [e for e, ok in zip(val, fits) if ok]
    if not train:
        raise DataError(f"no training example fits max_seq_len={cfg.max_seq_len}")
    return TrainData(train, val, report, findings, val_examples, registry)


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-grouped batches of indices for one epoch, deterministic for (seed, epoch).

    Shuffle, cut into megabatches of MEGABATCH batches, sort each by length (so a batch pads
    little), then shuffle the order of the batches (so lengths do not trend over the epoch).
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(order), size):
        mega = sorted(order[start : start + size], key=lambda i: -lengths[i])
        batches += [mega[j : j + batch_size] for j in range(0, len(mega), batch_size)]
    rng.shuffle(batches)
    return batches


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> int:
    return math.ceil(math.ceil(n_examples / batch_size) / grad_accum)


def collate(items: list[Encoded], pad_id: int) -> dict:
    """Right-padded tensors to the longest item of the batch (dynamic padding).

    `target_index` holds the flat positions (in the shifted [B, T-1] grid) whose next token is
    trained, computed here on the CPU so the loss needs no device-side nonzero (a sync point).
    """
    import torch

    width = max(len(e) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, e.n_prompt : n] = torch.tensor(e.input_ids[e.n_prompt :])
        mask[row, :n] = 1
    shifted = labels[:, 1:]
    target_index = (shifted != IGNORE).reshape(-1).nonzero().squeeze(1)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "target_index": target_index,
        "targets": shifted.reshape(-1)[target_index],
        "n_target": int(target_index.numel()),
        "n_tokens": int(mask.sum()),
    }


def data_files(cfg) -> list[Path]:
    return [Path(p) for p in (cfg.train_data, cfg.val_data) if p]


def n_targets(items) -> int:
    """Trained positions of a batch of engine.train.data.Encoded, as `collate` counts them."""
    return sum(len(e) - max(e.n_prompt, 1) for e in items)
