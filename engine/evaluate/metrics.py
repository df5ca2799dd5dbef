"""Scoring one model output against its expected JSON: parse, exact match, field and leaf F1,
schema validity, the published loose compliance, a failure category and a path-level diff.

Pure Python (jsonschema only), so the TUI and tests can score without a model.

Equality rule used everywhere here (json_exact, field and leaf matches, the diff): JSON values are
compared as JSON, not as Python objects. Numbers compare by value, so `1` equals `1.0` (JSON has
one number type, and the published EdgeJSON harness, which compares with Python `==`, also counts
them equal); booleans are not numbers, so `true` does not equal `1` (Python `==` would say it
does); objects compare key sets and values, whatever the key order; arrays compare by position.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from engine.data.grounding import Prompt
from engine.jsontools import (  # noqa: F401 - part of this module's interface
    DECODER,
    FORMATS,
    LENIENT_DATE_TIME,
    NonFiniteNumber,
    format_checker,
    index_path,
    json_equal,
    json_object_end,
    json_path,
    json_type,
    key_path,
    lenient_date_time,
    loads_strict,
    validator,
    walk_leaves,
)

FAILURE_ORDER = (
    "truncated",
    "unparseable",
    "schema_violation",
    "missing_field",
    "extra_field",
    "wrong_type",
    "wrong_value",
)

# ---------------------------------------------------------------- parsing


def parse_output(text: str) -> tuple[dict | None, str | None]:
    """The first complete top-level JSON object in `text`, or why there is none.

    The whole output is tried first: a JSON value that is not an object (an array, even one
    wrapping the object as `[{...}]`, a string, a number) is not an answer. Otherwise prose may
    come before and after the object: each top-level `{...}` is tried in order (a brace pair in
    prose that is not JSON is skipped), but an object preceded by `[` is array-wrapped and fails,
    and an output that ends inside an unterminated object fails: the braces nested inside it are
    never candidates, so a truncated answer does not "parse" as an inner fragment. NaN and
    Infinity are refused.
    """
    if not text or not text.strip():
        return None, "empty output"
    first_error = None
    try:
        value = loads_strict(text.strip())
    except NonFiniteNumber as exc:
        first_error = str(exc)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(value, dict):
            return value, None
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            return None, "the object is wrapped in an array ([{...}]); the answer must be an object"
        return None, f"the output is a JSON {json_type(value)}, not an object"
    start = text.find("{")
    if start < 0:
        return None, first_error or "no JSON object in the output (no '{')"
    attempts = 0
    while start >= 0 and attempts < 64:
        attempts += 1
        if text[:start].rstrip().endswith("["):
            return None, "the object is wrapped in an array ([{...}]); the answer must be an object"
        end = json_object_end(text[start:])
        if end is None:
            return None, (
                f"unterminated JSON object starting at char {start} (output ended inside it)"
            )
        try:
            value, _end = DECODER.raw_decode(text, start)
        except NonFiniteNumber as exc:
            first_error = first_error or str(exc)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"invalid JSON at char {exc.pos}: {exc.msg}"
        except (ValueError, RecursionError) as exc:  # e.g. an integer too long, nesting too deep
            first_error = first_error or f"invalid JSON: {exc}"
        else:
            if isinstance(value, dict):
                return value, None
        start = text.find("{", start + end)
    return None, first_error or "no JSON object in the output"


# ---------------------------------------------------------------- F1 scores


def _prf(correct: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    if n_pred == 0 and n_gold == 0:
        return 1.0, 1.0, 1.0
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def field_prf(expected: Any, predicted: Any) -> tuple[float, float, float]:
    """Top-level field precision, recall, F1 as the EdgeJSON harness defines them.

    A top-level key is correct when it is in both objects and its whole value matches
    (`json_equal`); precision = correct / keys predicted, recall = correct / keys expected.
    Both empty gives 1.0; one empty, or a prediction that is not an object, gives 0.0.
    """
    if not expected and not predicted:
        return 1.0, 1.0, 1.0
    if not expected or not predicted or not isinstance(predicted, dict):
        return 0.0, 0.0, 0.0
    correct = sum(
        1 for k in expected.keys() & predicted.keys() if json_equal(expected[k], predicted[k])
    )
    return _prf(correct, len(predicted), len(expected))


def leaves(value: Any, path: str = "$") -> dict[str, Any]:
    """Every leaf under `value` by path (`$.a.b`, `$.items[0].sku`, `$["unit-price"]`); empty
    containers are leaves."""
    return {p: v for p, v, _schema in walk_leaves(value, path)}


def leaf_prf(expected: Any, predicted: Any) -> tuple[float, float, float]:
    """Leaf-level precision, recall, F1: every nested path (list items by position) is a field."""
    if predicted is None:
        return 0.0, 0.0, 0.0
    gold, pred = leaves(expected), leaves(predicted)
    correct = sum(1 for p in gold.keys() & pred.keys() if json_equal(gold[p], pred[p]))
    return _prf(correct, len(pred), len(gold))


def compliance(expected: Any, predicted: Any) -> bool:
    """The published loose check: every expected top-level key present, with a matching type
    (int and float interchangeable). Extra keys and wrong values still pass."""
    if not predicted or not isinstance(predicted, dict) or not isinstance(expected, dict):
        return False
    for key, value in expected.items():
        if key not in predicted:
            return False
        if json_type(value) != json_type(predicted[key]):
            return False
    return True


# ---------------------------------------------------------------- schema validity


def schema_errors(value: Any, schema: dict, formats: str = "lenient") -> list[str]:
    """Messages of every violation of `schema` (draft-07 with format checks), at most 20."""
    out = []
    for err in validator(schema, formats).iter_errors(value):
        out.append(f"{json_path(err.absolute_path)}: {err.message}")
        if len(out) >= 20:
            break
    return out


def has_zoneless_date_times(value: Any, schema: dict) -> bool:
    """True when `value` has a `date-time` field without a time zone (strict checks reject it)."""
    for err in _strict_format_errors(value, schema):
        if err.validator_value == "date-time" and re.match(LENIENT_DATE_TIME, str(err.instance)):
            return True
    return False


def _strict_format_errors(value: Any, schema: dict):
    return [e for e in validator(schema, "strict").iter_errors(value) if e.validator == "format"]


# ---------------------------------------------------------------- diff and grounding


def grounded(value: Any, prompt: str) -> bool | None:
    """Whether a scalar value occurs in the prompt (engine.data.grounding: case, whitespace, punctuation
    and number format ignored); None where grounding does not apply (booleans, null, containers)."""
    return Prompt(prompt).contains(value)


def diff(expected: Any, got: Any, prompt: str = "", path: str = "$") -> list[dict]:
    """Path-level differences between expected and got, each {path, expected, got, kind,
    ungrounded}; kind is missing / extra / wrong_type / wrong_value, and `ungrounded` is True
    when a produced scalar value does not occur in the prompt (a hallucination)."""
    entries: list[dict] = []
    _diff(expected, got, path, entries)
    text = Prompt(prompt)
    for entry in entries:
        is_grounded = None
        if entry["kind"] != "missing":
            is_grounded = text.contains(entry["got"])
        entry["ungrounded"] = None if is_grounded is None else not is_grounded
    return entries


def _entry(path: str, expected: Any, got: Any, kind: str) -> dict:
    return {"path": path, "expected": expected, "got": got, "kind": kind}


def _diff(expected: Any, got: Any, path: str, out: list[dict]) -> None:
    te, tg = json_type(expected), json_type(got)
    if te != tg:
        out.append(_entry(path, expected, got, "wrong_type"))
    elif te == "object":
        for key, value in expected.items():
            if key in got:
                _diff(value, got[key], key_path(path, key), out)
            else:
                out.append(_entry(key_path(path, key), value, None, "missing"))
        for key in got.keys() - expected.keys():
            out.append(_entry(key_path(path, key), None, got[key], "extra"))
    elif te == "array":
        for i, value in enumerate(expected):
            if i < len(got):
                _diff(value, got[i], index_path(path, i), out)
            else:
                out.append(_entry(index_path(path, i), value, None, "missing"))
        for i in range(len(expected), len(got)):
            out.append(_entry(index_path(path, i), None, got[i], "extra"))
    elif not json_equal(expected, got):
        out.append(_entry(path, expected, got, "wrong_value"))


# ---------------------------------------------------------------- one example


def failure_category(
    *, exact: bool, truncated: bool, parsed: Any, schema_valid: bool | None, entries: list[dict]
) -> str | None:
    """The first that applies of FAILURE_ORDER; None for an exact match."""
    if exact:
        return None
    if truncated:
        return "truncated"
    if parsed is None:
        return "unparseable"
    if schema_valid is False:
        return "schema_violation"
    kinds = {e["kind"] for e in entries}
    for kind, category in (
        ("missing", "missing_field"),
        ("extra", "extra_field"),
        ("wrong_type", "wrong_type"),
    ):
        if kind in kinds:
            return category
    return "wrong_value"


def score(
    example: Any,
    output_text: str,
    schema: dict | None = None,
    *,
    prompt: str | None = None,
    truncated: bool = False,
    formats: str = "lenient",
) -> dict:
    """Every per-example figure for one output: parsed, parse_error, json_exact, field_* and
    leaf_* precision/recall/F1, schema_valid (None without a schema), schema_errors, compliance,
    failure, diff. `example` is an engine.data.types.Example (its expected value and prompt are used)
    or the expected value itself; `truncated` is whether generation hit max_new_tokens."""
    parsed, parse_error = parse_output(output_text)
    return score_parsed(
        example, parsed, parse_error, schema, prompt=prompt, truncated=truncated, formats=formats
    )


def score_parsed(
    example: Any,
    parsed: dict | None,
    parse_error: str | None = None,
    schema: dict | None = None,
    *,
    prompt: str | None = None,
    truncated: bool = False,
    formats: str = "lenient",
) -> dict:
    """`score` of an already parsed object (None when the output did not parse, with
    `parse_error` saying why). A value holding NaN or Infinity (another parser may have let it
    through) is never schema-valid."""
    if hasattr(example, "expected") and hasattr(example, "prompt"):
        expected = example.expected
        prompt = example.prompt if prompt is None else prompt
    else:
        expected = example
    prompt = prompt or ""
    exact = parsed is not None and json_equal(expected, parsed)
    fp, fr, ff = field_prf(expected, parsed) if parsed is not None else (0.0, 0.0, 0.0)
    lp, lr, lf = leaf_prf(expected, parsed)
    errors: list[str] = []
    valid: bool | None = None
    if parsed is not None and schema is not None:
        errors = non_finite_errors(parsed) or schema_errors(parsed, schema, formats)
        valid = not errors
    elif schema is not None:
        valid = False
    entries = diff(expected, parsed, prompt) if parsed is not None else []
    return {
        "parsed": parsed,
        "parse_error": parse_error,
        "json_exact": exact,
        "field_precision": fp,
        "field_recall": fr,
        "field_f1": ff,
        "leaf_precision": lp,
        "leaf_recall": lr,
        "leaf_f1": lf,
        "schema_valid": valid,
        "schema_errors": errors,
        "compliance": compliance(expected, parsed),
        "truncated": bool(truncated),
        "failure": failure_category(
            exact=exact, truncated=truncated, parsed=parsed, schema_valid=valid, entries=entries
        ),
        "diff": entries,
    }


def non_finite_errors(value: Any) -> list[str]:
    """A message for every NaN or infinite number in `value` (none of them is JSON)."""
    return [
        f"{path}: {v!r} is not a JSON number"
        for path, v in leaves(value).items()
        if isinstance(v, float) and not math.isfinite(v)
    ]
