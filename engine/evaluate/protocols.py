"""Scoring protocols: SchemaLab's own, and the published EdgeJSON harness's, reproduced exactly.

`schemalab` (the default) is engine.evaluate.metrics: this project's prompt template, generation stopped
when the top-level object closes, a strict parse and JSON equality. `edgejson` is the protocol of
CycleCore-Technologies/slmbench `benchmarks/edge_json/scripts/eval.py` (Apache-2.0), so a
published model or adapter can be scored as its authors scored it. Every difference:

- prompt: `schemalab` template (or the adapter's training template) vs the harness's text,
  "Extract the structured JSON data from the following text.\\n\\nInput: {prompt}\\n\\nOutput:"
  (engine.decode.prompt template `edgejson`).
- generation: SchemaLab stops as soon as the top-level JSON object closes (`stop="json"`),
  up to 1,536 new tokens, optionally schema-constrained; the harness decodes greedily,
  unconstrained, to EOS, at most 512 new tokens (`stop="eos"`), and strips the output.
- parsing: SchemaLab takes the first complete top-level object (prose before and after allowed)
  and refuses an array (`[{...}]` is not the object), a truncated object (no inner fragment
  counts), and NaN/Infinity. The harness takes `json.loads` of the whole stripped text, whatever
  its type (an array, a number, NaN included), else the first match of
  `\\{[^{}]*(?:\\{[^{}]*\\}[^{}]*)*\\}` that `json.loads` accepts: objects nested three deep never
  match as a whole (an inner fragment may), and a truncated answer can parse as a fragment.
- exact match: SchemaLab compares as JSON (`1 == 1.0`, but `true != 1`); the harness uses
  Python `==` (`True == 1`, so a boolean and a number can match).
- field F1: both score top-level keys whose whole value matches, but with their own equality
  (above); a parsed non-object scores 0 in both.
- compliance: the harness's loose check (every expected top-level key present with the same
  Python type, int and float interchangeable; extra keys and wrong values pass; an empty object
  fails). SchemaLab reports it too but its headline is schema validity (draft-07 JSON Schema
  with format checks), which the harness does not compute.
- complexity: the harness reports a record's own `complexity` field, else `unknown`; SchemaLab
  takes the schema folder's tier or infers it from the schema (and says how many were inferred).
  A `complexity` value that is not simple/medium/complex is dropped by SchemaLab's loader, so it
  reads `unknown` here where the harness would keep it.
- schema name: the harness groups by `schema_name`, else `schema_id`; SchemaLab by `schema_id`,
  else `schema_name`. Under `edgejson` the harness's name is used.
- figures the harness estimates: its tokens/s assumes 50 tokens per answer; SchemaLab counts.

Under `edgejson` a prediction row's headline figures (json_exact, field precision/recall/F1,
compliance, parsed) follow the harness; schema validity, leaf F1, the failure category and the
path-level diff are SchemaLab's checks of the value the harness parsed (when it is an object),
so the drilldown explains the harness's score. The harness's own run also decodes one example at a
time with the adapter unmerged, in transformers' default dtype; SchemaLab batches with left
padding, merges the adapter and uses bf16 on CUDA, any of which can flip a greedy choice at a
near tie (`--batch-size 1` removes the padding)."""

from __future__ import annotations

import json
import re
from typing import Any

from engine.evaluate.metrics import failure_category, score, score_parsed

PROTOCOLS = ("schemalab", "edgejson")
DEFAULT_PROTOCOL = "schemalab"
EDGEJSON_MAX_NEW_TOKENS = 512
EDGEJSON_TEMPLATE = "edgejson"
_HARNESS_PATTERN = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", re.DOTALL)


class ProtocolError(ValueError):
    """An unknown protocol, or settings the chosen protocol does not allow."""


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def edgejson_decoding():
    """The harness's generation: greedy, unconstrained, to EOS, at most 512 new tokens."""
    from engine.decode.generate import DecodingConfig

    return DecodingConfig(max_new_tokens=EDGEJSON_MAX_NEW_TOKENS, stop="eos")


# ---------------------------------------------------------------- the harness, function by function


def edgejson_extract(text: str) -> Any:
    """The harness's `extract_json_from_text`: any JSON value of the whole stripped text (NaN and
    arrays included), else the first brace match that json.loads accepts, else None."""
    try:
        return json.loads(text.strip())
    except json.JSONDecodeError:
        pass
    for match in _HARNESS_PATTERN.findall(text):
        try:
            return json.loads(match)
        except json.JSONDecodeError:
            continue
    return None


def edgejson_field_prf(expected: Any, predicted: Any) -> tuple[float, float, float]:
    """The harness's `calculate_field_f1`: top-level keys whose values are Python-equal."""
    if not expected and not predicted:
        return 1.0, 1.0, 1.0
    if not expected or not predicted:
        return 0.0, 0.0, 0.0
    if not isinstance(predicted, dict):
        return 0.0, 0.0, 0.0
    expected_fields, predicted_fields = set(expected.keys()), set(predicted.keys())
    correct = sum(1 for k in expected_fields & predicted_fields if expected[k] == predicted[k])
    precision = correct / len(predicted_fields) if predicted_fields else 0.0
    recall = correct / len(expected_fields) if expected_fields else 0.0
    f1 = 2 * (precision * recall) / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def edgejson_compliance(expected: Any, predicted: Any) -> bool:
    """The harness's `check_schema_compliance`: expected keys present, same Python types
    (int and float interchangeable, bool is not int), extra keys and wrong values allowed."""
    if not predicted:
        return False
    if not isinstance(predicted, dict):
        return False
    if not set(expected.keys()).issubset(set(predicted.keys())):
        return False
    for key in expected:
        expected_type, predicted_type = type(expected[key]), type(predicted[key])
        if expected_type in [int, float] and predicted_type in [int, float]:
            continue
        if expected_type != predicted_type:
            return False
    return True


def edgejson_complexity(example) -> str:
    """The record's own complexity, else `unknown` (the harness never infers one)."""
    if example.extra.get("complexity_source") == "record" and example.complexity:
        return example.complexity
    return "unknown"


def edgejson_schema_name(example) -> str:
    return str(example.extra.get("schema_name") or example.schema_id)


# ---------------------------------------------------------------- one example, either protocol


def score_output(
    protocol: str,
    example,
    output_text: str,
    schema: dict | None,
    *,
    truncated: bool = False,
    formats: str = "lenient",
) -> dict:
    """engine.evaluate.metrics.score's figures for one output under `protocol` (see the module docstring
    for what `edgejson` changes)."""
    if check_protocol(protocol) == "schemalab":
        return score(example, output_text, schema, truncated=truncated, formats=formats)
    expected = example.expected
    parsed = edgejson_extract(output_text.strip())
    if parsed is None:
        why = "the harness found no JSON (json.loads of the whole text and its brace regex failed)"
        s = score_parsed(example, None, why, schema, truncated=truncated, formats=formats)
    elif isinstance(parsed, dict):
        s = score_parsed(example, parsed, None, schema, truncated=truncated, formats=formats)
    else:
        kind = type(parsed).__name__
        why = f"the harness parsed a {kind}, not an object; it scores it 0"
        s = score_parsed(example, None, why, schema, truncated=truncated, formats=formats)
    exact = parsed is not None and parsed == expected
    fp, fr, ff = edgejson_field_prf(expected, parsed) if parsed is not None else (0.0, 0.0, 0.0)
    s.update(
        parsed=parsed,
        json_exact=exact,
        field_precision=fp,
        field_recall=fr,
        field_f1=ff,
        compliance=parsed is not None and edgejson_compliance(expected, parsed),
        failure=failure_category(
            exact=exact,
            truncated=truncated,
            parsed=parsed if isinstance(parsed, dict) else None,
            schema_valid=s["schema_valid"],
            entries=s["diff"],
        ),
    )
    return s
