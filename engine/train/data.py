"""Training data: examples -> token ids with a completion-only label mask, the too-long report,
the validation slice, and length-grouped batches with dynamic padding.

Every example is `render_prompt(...)` + `render_target(...)` + EOS, tokenized as two pieces (the
prompt alone, exactly as decoding tokenizes it, then the target), so train and inference agree.
Labels: -100 on the prompt and on pads; the target and its EOS are trained. Examples longer
than max_seq_len are reported and dropped (or rejected), never cut.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.prompt import render_prompt, render_target

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

    def message(self) -> str:
        if not self.n_too_long:
            return f"all {self.n_total} examples fit max_seq_len={self.max_seq_len} (longest {self.longest})"
        ids = ", ".join(self.too_long_ids[:20]) + (" ..." if self.n_too_long > 20 else "")
        return (
            f"{self.n_too_long} of {self.n_total} examples are longer than max_seq_len="
            f"{self.max_seq_len} tokens (longest {self.longest}): {ids}"
        )


@dataclass
class TrainData:
    train: list[Encoded]
    val: list[Encoded]
    report: LengthReport
    findings: list[Any] = field(default_factory=list)  # from loading the files


def encode_example(tok, example) -> Encoded:
    """Token ids of prompt + target + EOS for an engine.types.Example."""
    prompt_ids = tok(render_prompt(example.prompt, example.schema_id))["input_ids"]
    target_ids = tok(render_target(example.expected), add_special_tokens=False)["input_ids"]
    return Encoded(
        example.id, list(prompt_ids) + list(target_ids) + [tok.eos_token_id], len(prompt_ids)
    )


def labels_for(item: Encoded) -> list[int]:
    return [IGNORE] * item.n_prompt + item.input_ids[item.n_prompt :]


def _load(path: str) -> tuple[list, list]:
    from engine.data import load_examples

    result = load_examples(path)
    if not result.examples:
        problems = "; ".join(f.message for f in result.findings[:3])
        raise DataError(f"{path}: no usable examples" + (f" ({problems})" if problems else ""))
    return result.examples, result.findings


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


def length_report(cfg, tokenizer=None, encoded: list[Encoded] | None = None) -> LengthReport:
    """Which training examples are longer than cfg.max_seq_len (loads the tokenizer if needed)."""
    if encoded is None:
        if tokenizer is None:
            from engine.models import load_tokenizer

            tokenizer = load_tokenizer(cfg.model)
        examples, _ = _load(cfg.train_data)
        if cfg.val_data:
            examples += _load(cfg.val_data)[0]
        encoded = [encode_example(tokenizer, e) for e in examples]
    long_ids = [e.id for e in encoded if len(e) > cfg.max_seq_len]
    kept = [len(e) for e in encoded if len(e) <= cfg.max_seq_len]
    return LengthReport(
        n_total=len(encoded),
        n_too_long=len(long_ids),
        too_long_ids=long_ids,
        max_seq_len=cfg.max_seq_len,
        longest=max((len(e) for e in encoded), default=0),
        longest_kept=max(kept, default=0),
    )


def prepare_data(cfg, tok) -> TrainData:
    """Load, split, tokenize and length-check the data of a config."""
    examples, findings = _load(cfg.train_data)
    if cfg.val_data:
        val_examples, more = _load(cfg.val_data)
        train_examples, findings = examples, findings + more
    else:
        train_examples, val_examples = split_val(examples, cfg.val_fraction, cfg.seed)
    train = [encode_example(tok, e) for e in train_examples]
    val = [encode_example(tok, e) for e in val_examples]
    report = length_report(cfg, encoded=train + val)
    if report.n_too_long and cfg.too_long == "error":
        raise DataError(
            report.message() + ". Raise max_seq_len, remove them, or set too_long: drop."
        )
    train = [e for e in train if len(e) <= cfg.max_seq_len]
    val = [e for e in val if len(e) <= cfg.max_seq_len]
    if not train:
        raise DataError(f"no training example fits max_seq_len={cfg.max_seq_len}")
    return TrainData(train, val, report, findings)


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
