"""Validation of data sets: every problem an example can have, as typed findings.

Loading problems come from engine.data.load; this module adds the content checks: json_schema,
arithmetic (declared rules, engine.data.rules), ungrounded values, duplicates, train/test leaks,
token lengths, and records the whole report in the run log as a `validate` run.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.grounding import Prompt, normalise_text
from engine.data.load import (
    SchemaRegistry,
    file_sha256,
    find_schemas_dir,
    load_examples,
    other_versions,
    short_repr,
    shorten_middle,
)
from engine.data.rules import RuleError, RuleFailure, RuleSet, iter_violations, resolve_rules
from engine.data.types import SEVERITIES, Example, Finding
from engine.jsontools import (
    format_checker,  # noqa: F401 - the checker validation uses
    json_path,
    validator,
    walk_leaves,
)

Progress = Callable[[int, int], None]

# Findings of one kind listed per example; past this, one finding says how many more there are
# (an array of a million bad elements is one problem to fix, not a million findings to store).
FINDINGS_PER_KIND = 20
# Schema errors of one example counted before saying "at least N more" and moving on: each
# costs the validator real time, and a count past this changes nothing one does about them.
ERRORS_COUNTED = 10_000


@dataclass
class ValidationReport:
    """Everything found in a set of files: the examples that loaded and every finding."""

    files: list[str]
    examples: list[Example] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unreadable_files: list[str] = field(default_factory=list)  # inputs that could not be opened
    schemas_dir: str | None = None
    rules_sources: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    @property
    def n_examples(self) -> int:
        return len(self.examples)

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.findings).most_common())

    @property
    def by_severity(self) -> dict[str, int]:
        counts = Counter(f.severity for f in self.findings)
        return {s: counts.get(s, 0) for s in SEVERITIES}

    @property
    def by_schema(self) -> dict[str, int]:
        """Findings per schema id (loading problems without an example count as `-`)."""
        schema_of = {e.id: e.schema_id for e in self.examples}
        counts = Counter(schema_of.get(f.example_id, "-") for f in self.findings)
        return dict(counts.most_common())

    def compared_pairs(self) -> tuple[list[list[str]], list[list[str]]]:
        """Pairs of files judged for duplicates and leaks, and pairs that were not (two
        versions of one data set); every file is also judged against itself."""
        return comparisons(self.files)

    def comparison_note(self) -> str:
        """One line saying which files duplicates and leaks were judged between."""
        names = [Path(f).name for f in self.files]
        compared, skipped = self.compared_pairs()
        within = "within " + ("each file" if len(names) > 1 else (names[0] if names else "-"))
        parts = [f"duplicates and leaks judged {within}"]
        if compared:
            parts.append(
                "between " + ", ".join(f"{Path(a).name} and {Path(b).name}" for a, b in compared)
            )
        if skipped:
            parts.append(
                "not between "
                + ", ".join(f"{Path(a).name} and {Path(b).name}" for a, b in skipped)
                + " (versions of one data set)"
            )
        return "; ".join(parts)

    @property
    def n_errors(self) -> int:
        return self.by_severity["error"]

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.n_examples,
            "errors": self.by_severity["error"],
            "warnings": self.by_severity["warning"],
            "infos": self.by_severity["info"],
            "by_kind": self.by_kind,
            "files": self.files,
            "compared": self.compared_pairs()[0],
            "not_compared": self.compared_pairs()[1],
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def to_json(self) -> dict[str, Any]:
        keys = ("kind", "severity", "example_id", "line", "path", "message", "file")
        return {
            "examples": self.n_examples,
            "findings": [{k: getattr(f, k) for k in keys} for f in self.findings],
            "by_kind": self.by_kind,
            "by_severity": self.by_severity,
            "by_schema": self.by_schema,
            "files": self.files,
            "compared": self.compared_pairs()[0],
            "not_compared": self.compared_pairs()[1],
            "comparison": self.comparison_note(),
            "schemas_dir": self.schemas_dir,
            "rules": self.rules_sources,
        }


def validate_files(
    paths: list[str | Path],
    schemas_dir: str | Path | None = None,
    rules_file: str | Path | None = None,
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
) -> ValidationReport:
    """Load and check every file; `tokenizer` is a tokenizer or a model spec (e.g. "tiny").

    Raises engine.models.load.ModelError only when a tokenizer spec cannot be loaded.
    """
    paths = [Path(p) for p in paths]
    if schemas_dir is None and paths:
        schemas_dir = find_schemas_dir(paths[0])
    report = ValidationReport(
        files=[str(p) for p in paths], schemas_dir=str(schemas_dir) if schemas_dir else None
    )
    registry = SchemaRegistry.from_dir(schemas_dir)
    report.findings.extend(registry.findings)
    try:
        ruleset = resolve_rules(rules_file, schemas_dir)
    except RuleError as exc:
        ruleset = RuleSet()
        source = str(rules_file or Path(schemas_dir or ".") / "rules.yaml")
        report.findings.extend(
            Finding(
                "invalid_rules",
                "error",
                f"{p}; arithmetic is not checked until it is fixed",
                file=source,
            )
            for p in exc.problems
        )
    report.rules_sources = ruleset.sources
    for path in paths:
        loaded = load_examples(path, registry)
        if not loaded.readable:
            report.unreadable_files.append(str(path))
        report.examples.extend(loaded.examples)
        report.findings.extend(loaded.findings)

    total = len(report.examples)
    if progress:
        progress(0, total)
    step = max(1, total // 100)
    checker = _ContentChecker(registry, ruleset)
    for done, example in enumerate(report.examples, start=1):
        report.findings.extend(checker.check(example))
        if progress and (done % step == 0 or done == total):
            progress(done, total)
    report.findings.extend(checker.rule_findings())
    report.findings.extend(duplicate_findings(report.examples))
    report.findings.extend(length_findings(report.examples, tokenizer, max_seq_len, max_new_tokens))
    report.elapsed_s = time.time() - report.started
    return report


class _Capped:
    """The findings of one example, at most FINDINGS_PER_KIND of each kind, plus one finding
    per kind saying how many more there were."""

    def __init__(self, example: Example) -> None:
        self.example = example
        self.found: list[Finding] = []
        self.counts: Counter = Counter()
        self.extra: dict[str, list[Any]] = {}  # kind -> [count, worst severity]
        self.at_least: set[str] = set()  # kinds whose count stopped early

    def add(self, kind: str, severity: str, message: str, path: str | None) -> None:
        e = self.example
        self.counts[kind] += 1
        if self.counts[kind] <= FINDINGS_PER_KIND:
            self.found.append(Finding(kind, severity, message, e.id, e.line, path, e.file))
        else:
            self.more(kind, severity, 1)

    def full(self, kind: str) -> bool:
        """Whether the next finding of `kind` would only be counted."""
        return self.counts[kind] >= FINDINGS_PER_KIND

    def more(self, kind: str, severity: str, n: int) -> None:
        if n <= 0:
            return
        slot = self.extra.setdefault(kind, [0, severity])
        slot[0] += n
        if SEVERITIES.index(severity) < SEVERITIES.index(slot[1]):
            slot[1] = severity

    def result(self) -> list[Finding]:
        e = self.example
        for kind, (n, severity) in self.extra.items():
            self.found.append(
                Finding(
                    kind,
                    severity,
                    f"... and {'at least ' if kind in self.at_least else ''}{n} more {kind} "
                    f"finding{'s' if n != 1 else ''} in this example (the "
                    f"first {FINDINGS_PER_KIND} are listed); fix those and validate again",
                    e.id,
                    e.line,
                    None,
                    e.file,
                )
            )
        return self.found


class _ContentChecker:
    """Per-example checks, with compiled schema validators cached across examples."""

    def __init__(self, registry: SchemaRegistry, ruleset: RuleSet) -> None:
        self.registry = registry
        self.ruleset = ruleset
        self._validators: dict[str, Any] = {}
        # rule -> [failure message, number of examples, first example]: reported once per rule
        self._failed_rules: dict[Any, list[Any]] = {}

    def schema_of(self, example: Example) -> dict | None:
        return example.inline_schema or self.registry.get(example.schema_id)

    def _validator(self, schema: dict):
        return validator(schema)

    def check(self, example: Example) -> list[Finding]:
        found = _Capped(example)
        try:
            self._check(example, found)
        except RecursionError:
            found.add("parse", "error", "nested too deeply to check; flatten the record", None)
        return found.result()

    def _check(self, example: Example, found: _Capped) -> None:
        from referencing.exceptions import Unresolvable

        schema = self.schema_of(example)
        add = found.add
        if schema is not None:
            counted = [0]

            def errors():
                for error in self._validator(schema).iter_errors(example.expected):
                    counted[0] += 1
                    yield error
                    if counted[0] >= ERRORS_COUNTED:
                        found.at_least.add("json_schema")
                        return

            try:
                # The first errors by path, without keeping every error of a huge array.
                first = heapq.nsmallest(
                    FINDINGS_PER_KIND, errors(), key=lambda e: list(map(str, e.absolute_path))
                )
            except Unresolvable as exc:
                first = []
                add(
                    "invalid_schema",
                    "error",
                    f"schema {example.schema_id!r} has a reference that does not resolve "
                    f"({shorten_middle(str(exc))}); fix the schema",
                    None,
                )
            for error in first:
                path = json_path(error.absolute_path)
                add(
                    "json_schema",
                    "error",
                    f"{shorten_middle(path, 120)}: {shorten_middle(error.message)} (schema "
                    f"{example.schema_id!r}); fix the expected output or the schema",
                    path,
                )
            found.more("json_schema", "error", counted[0] - len(first))
        rules = self.ruleset.for_schema(example.schema_id, schema)
        for rule in rules:
            try:
                for v in iter_violations(rule, example.expected):
                    add("arithmetic", "error", v.message, v.path)
            except RuleFailure as exc:
                slot = self._failed_rules.setdefault(rule, [str(exc), 0, example])
                slot[1] += 1
        for path, value, enum in ungrounded_values(example.prompt, example.expected, schema):
            if found.full("ungrounded"):
                found.add("ungrounded", "warning", "", path)  # counted, not kept
                continue
            hint = " (an enum label: perhaps inferred rather than extracted)" if enum else ""
            add(
                "ungrounded",
                "warning",
                f"{shorten_middle(path, 120)} = {short_repr(value)} does not occur in the "
                f"prompt{hint}; a model cannot copy it: check the value or the prompt",
                path,
            )

    def rule_findings(self) -> list[Finding]:
        """One finding per rule that could not be computed, on the rules file."""
        out = []
        for rule, (message, n, first) in self._failed_rules.items():
            where = f"{Path(first.file).name}:{first.line}" if first.file else f"line {first.line}"
            out.append(
                Finding(
                    "invalid_rules",
                    "error",
                    f"{rule.where()}: cannot be computed {message} on {n} example"
                    f"{'s' if n != 1 else ''} (first {first.id}, {where}); fix the rule: it is "
                    "not checked where it fails",
                    file=rule.source,
                )
            )
        return out


# --- grounding ------------------------------------------------------------------------------


def ungrounded_values(prompt: str, expected: Any, schema: dict | None = None):
    """(path, value, is_enum) for each leaf of `expected` that the prompt does not contain
    (engine.data.grounding decides; booleans and nulls are skipped)."""
    text = Prompt(prompt)
    for path, value, leaf_schema in walk_leaves(expected, "$", schema):
        if text.contains(value) is False:
            yield path, value, "enum" in leaf_schema


# --- duplicates, leaks, lengths -------------------------------------------------------------


def comparisons(files: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Which pairs of files duplicates and leaks are judged between (each file is always
    compared with itself), and which are not because they are two versions of one data set."""
    compared, skipped = [], []
    for i, a in enumerate(files):
        for b in files[i + 1 :]:
            (skipped if other_versions(a, b) else compared).append([a, b])
    return compared, skipped


def duplicate_findings(examples: list[Example]) -> list[Finding]:
    """`duplicate` (warning) for a prompt seen before; `leak` (error) for a test prompt in train.
    Judged within a file and between the files of one data set (its train and test splits),
    never between two versions of a data set (`train_v2` and `train_v3`)."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[normalise_text(e.prompt)].append(e)
    versions: dict[tuple[str | None, str | None], bool] = {}

    def comparable(a: Example, b: Example) -> bool:
        key = (a.file, b.file)
        if key not in versions:
            versions[key] = a.file == b.file or not (
                a.file and b.file and other_versions(a.file, b.file)
            )
        return versions[key]

    found = []
    for group in groups.values():
        if len(group) < 2:
            continue
        for i, e in enumerate(group):
            if e.split == "test":
                t = next((x for x in group if x.split == "train" and comparable(x, e)), None)
                if t is not None:
                    found.append(
                        Finding(
                            "leak",
                            "error",
                            f"test example has the same prompt as train example {t.id} "
                            f"({_where(t)}); remove it from one split or the test score is inflated",
                            e.id,
                            e.line,
                            None,
                            e.file,
                        )
                    )
                    continue
            # A test example repeated in train is reported once, as that test example's leak.
            first = next(
                (
                    x
                    for x in group[:i]
                    if comparable(x, e) and not (x.split == "test" and e.split == "train")
                ),
                None,
            )
            if first is None:
                continue
            differs = " with a different expected output" if e.expected != first.expected else ""
            found.append(
                Finding(
                    "duplicate",
                    "warning",
                    f"same prompt as {first.id} ({_where(first)}){differs}; delete one of them",
                    e.id,
                    e.line,
                    None,
                    e.file,
                )
            )
    return found


def _where(e: Example) -> str:
    return f"{Path(e.file).name}:{e.line}" if e.file else f"line {e.line}"


def _lengths(examples: list[Example], tokenizer) -> tuple[list[int], list[int]]:
    """(prompt template + target + EOS, target alone) token counts per example."""
    from engine.decode.prompt import render_prompt, render_target

    prompts = [render_prompt(e.prompt, e.schema_id) for e in examples]
    targets = [render_target(e.expected) for e in examples]
    if not examples:
        return [], []
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    t_ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
    return [len(p) + len(t) + 1 for p, t in zip(p_ids, t_ids)], [len(t) for t in t_ids]


def token_lengths(examples: list[Example], tokenizer) -> list[int]:
    """Tokens per example as trained: the prompt template, the target and EOS."""
    return _lengths(examples, tokenizer)[0]


def length_findings(
    examples: list[Example], tokenizer: Any, max_seq_len: int | None, max_new_tokens: int | None
) -> list[Finding]:
    if tokenizer is None:
        return [
            Finding(
                "length",
                "info",
                "token-length check skipped: pass --tokenizer SPEC "
                "(e.g. tiny, or a model folder) with --max-seq-len N and/or "
                "--max-new-tokens N to find examples that would be truncated",
            )
        ]
    if isinstance(tokenizer, str):
        from engine.models.load import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    totals, targets = _lengths(examples, tokenizer)
    found = []
    for e, total, target in zip(examples, totals, targets):
        messages = []
        if max_seq_len and total > max_seq_len:
            messages.append(
                f"{total} tokens (prompt template + output + EOS) exceed --max-seq-len "
                f"{max_seq_len}: training would truncate it; raise the limit or shorten it"
            )
        if max_new_tokens and target > max_new_tokens:
            messages.append(
                f"the output alone is {target} tokens, over --max-new-tokens {max_new_tokens}: "
                "decoding can never finish it; raise the limit"
            )
        found.extend(Finding("length", "error", m, e.id, e.line, None, e.file) for m in messages)
    if not max_seq_len and not max_new_tokens and totals:
        i = max(range(len(totals)), key=totals.__getitem__)
        found.append(
            Finding(
                "length",
                "info",
                (
                    f"longest example {examples[i].id}: {totals[i]} tokens, output {targets[i]}; "
                    "pass --max-seq-len/--max-new-tokens to check against your limits"
                ),
            )
        )
    return found


# --- run log --------------------------------------------------------------------------------


def record_validation(db, report: ValidationReport, config: dict) -> int:
    """Store the report as a `validate` run with one validation_issues row per finding."""
    from engine import runlog

    dataset_ids = []
    for file in report.files:
        if file in report.unreadable_files:
            continue
        examples = [e for e in report.examples if e.file == file]
        dataset_ids.append(
            runlog.upsert_dataset(
                db,
                file,
                file_sha256(file),
                len(examples),
                len({e.schema_id for e in examples}),
                dict(Counter(e.complexity or "unknown" for e in examples)),
            )
        )
    run_id = runlog.create_run(
        db,
        "validate",
        config,
        name="validate " + ", ".join(Path(f).name for f in report.files),
        data_path=";".join(report.files),
        dataset_id=dataset_ids[0] if dataset_ids else None,
        started=report.started,
    )
    try:
        runlog.insert_rows(
            db,
            "validation_issues",
            ({"run_id": run_id, **{k: v for k, v in f.to_dict().items()}} for f in report.findings),
        )
        runlog.finish_run(db, run_id, "completed", summary=report.summary())
    except BaseException as exc:
        # E.g. a full disk: end the run `failed` with the cause while the log can be written.
        try:
            runlog.finish_run(db, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001, S110 - the first failure is the one to report
            pass
        raise
    return run_id
