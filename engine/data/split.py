"""Stratified train/test splits of one JSONL file, so a user with one file can measure honestly.

Records are grouped by schema (`--by schema`) and each group gives the same fraction to the test
side. Records with the same prompt (whitespace and case ignored) always land on the same side,
so no test prompt was seen in training. Lines are copied byte for byte; the order within each
output is shuffled with the seed, so a `--limit N` evaluation takes a fair sample.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BY = ("schema", "none")


class SplitError(ValueError):
    """A split that cannot be made; the message says what to change."""


@dataclass
class SplitResult:
    train_path: Path
    test_path: Path
    n_train: int
    n_test: int
    by_group: dict[str, dict[str, int]]
    skipped: list[str] = field(default_factory=list)  # "file:line: why" for unreadable lines

    def to_dict(self) -> dict:
        return {
            "train": str(self.train_path),
            "test": str(self.test_path),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "by_group": self.by_group,
            "skipped": self.skipped,
        }


def _prompt_key(record: dict) -> str:
    return re.sub(r"\s+", " ", str(record.get("prompt", ""))).strip().lower()


def _group_key(record: dict, by: str) -> str:
    if by == "none":
        return "all"
    return str(record.get("schema_id") or record.get("schema_name") or "unknown")


def default_outputs(path: Path) -> tuple[Path, Path]:
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    return path.with_name(f"{stem}.split-train.jsonl"), path.with_name(f"{stem}.split-test.jsonl")


def split_file(
    path: str | Path,
    test_fraction: float,
    *,
    by: str = "schema",
    seed: int = 0,
    train_out: str | Path | None = None,
    test_out: str | Path | None = None,
    overwrite: bool = False,
) -> SplitResult:
    """Write a stratified train/test pair of `path`; see the module docstring."""
    path = Path(path)
    if not 0 < test_fraction < 1:
        raise SplitError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    if by not in BY:
        raise SplitError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    try:
        raw_lines = path.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        raise SplitError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    default_train, default_test = default_outputs(path)
    train_path = Path(train_out) if train_out else default_train
    test_path = Path(test_out) if test_out else default_test
    if train_path.resolve() == test_path.resolve() or path.resolve() in (
        train_path.resolve(),
        test_path.resolve(),
    ):
        raise SplitError("the train and test outputs must be two new files, not the input")
    for out in (train_path, test_path):
        if out.exists() and not overwrite:
            raise SplitError(f"{out}: already exists (pass --force to replace it)")

    # group -> prompt key -> lines sharing that prompt
    groups: dict[str, dict[str, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    skipped = []
    for n, line in enumerate(raw_lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append(f"{path}:{n}: not a JSON line ({exc})")
            continue
        except RecursionError:
            skipped.append(f"{path}:{n}: nested too deeply to read")
            continue
        if not isinstance(record, dict):
            skipped.append(f"{path}:{n}: not a JSON object")
            continue
        if not line.endswith(b"\n"):
            line += b"\n"
        groups[_group_key(record, by)][_prompt_key(record)].append(line)
    if not groups:
        raise SplitError(f"{path}: no records to split")

    rng = random.Random(seed)
    train, test, by_group = [], [], {}
    for name in sorted(groups):
        prompts = sorted(groups[name])  # sorted first, so the shuffle depends on the seed only
        rng.shuffle(prompts)
        total = sum(len(groups[name][p]) for p in prompts)
        # At least one test record per group with two or more prompts, never the whole group.
        want = round(total * test_fraction)
        if len(prompts) >= 2:
            want = min(max(want, 1), total - 1)
        else:
            want = 0
        n_test = 0
        for p in prompts:
            lines = groups[name][p]
            if n_test < want and n_test + len(lines) <= max(want, math.ceil(total * test_fraction)):
                test.extend(lines)
                n_test += len(lines)
            else:
                train.extend(lines)
        by_group[name] = {"train": total - n_test, "test": n_test}
    rng.shuffle(train)
    rng.shuffle(test)
    if not test:
        raise SplitError(f"{path}: the test side would be empty; raise --test-fraction")
    for out, lines in ((train_path, train), (test_path, test)):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(b"".join(lines))
        tmp.replace(out)
    return SplitResult(train_path, test_path, len(train), len(test), by_group, skipped)
