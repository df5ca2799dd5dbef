"""Content checks: one test per finding kind, the report, progress, and the run log record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import runlog
from engine.data.grounding import prompt_numbers
from engine.data.load import SchemaRegistry, other_versions, version_from_name
from engine.data.types import Example
from engine.data.validate import (
    duplicate_findings,
    format_checker,
    length_findings,
    record_validation,
    token_lengths,
    ungrounded_values,
    validate_files,
)

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "buyer": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "status": {"type": "string", "enum": ["open", "paid"]},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number"},
                    "total": {"type": "number"},
                },
            },
        },
        "subtotal": {"type": "number"},
        "shipping": {"type": "number"},
        "total": {"type": "number"},
    },
    "required": ["buyer", "items", "total"],
    "additionalProperties": False,
}
RULES = """\
schemas:
  order:
    - each: $.items
      check: total
      equals: qty * price
    - check: subtotal
      equals: sum(items[*].total)
    - check: total
      equals: (subtotal or sum(items[*].total)) + (shipping or 0)
"""


def order(**over):
    out = {
        "buyer": "Ada Byron",
        "email": "ada@example.org",
        "status": "open",
        "items": [{"qty": 2, "price": 600, "total": 1200}],
        "subtotal": 1200,
        "total": 1200,
    }
    out.update(over)
    return out


PROMPT = "Ada Byron (ada@example.org), open order: 2 x $600.00 = $1,200.00; total 1200."


@pytest.fixture
def data(tmp_path):
    """A schemas folder with rules.yaml, and a helper that writes a JSONL file of records."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "order.json").write_text(json.dumps(ORDER_SCHEMA))
    (tmp_path / "schemas" / "rules.yaml").write_text(RULES)

    def write(name, records):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    return write


def rec(i, expected=None, prompt=PROMPT):
    return {
        "id": f"e{i}",
        "schema_id": "order",
        "complexity": "medium",
        "prompt": prompt,
        "expected_output": expected if expected is not None else order(),
    }


def kinds(report, example_id=None):
    return sorted(
        (f.kind, f.severity, f.path)
        for f in report.findings
        if f.kind != "length" and (example_id is None or f.example_id == example_id)
    )


def test_clean_example_has_no_findings(data):
    report = validate_files([data("d.jsonl", [rec(1)])])
    assert kinds(report) == [] and report.n_examples == 1
    assert [f.kind for f in report.findings] == ["length"]  # the skipped-check note
    assert "--tokenizer" in report.findings[0].message


def test_json_schema_one_finding_per_violation_with_path(data):
    bad = order(email="nobody", extra=1, items=[{"qty": 0, "price": 600, "total": 0}])
    report = validate_files([data("d.jsonl", [rec(1, bad, PROMPT + " nobody 0 extra 1")])])
    got = [(f.path, f.severity) for f in report.findings if f.kind == "json_schema"]
    assert sorted(got) == [("$", "error"), ("$.email", "error"), ("$.items[0].qty", "error")]
    msgs = " ".join(f.message for f in report.findings if f.kind == "json_schema")
    assert "nobody" in msgs and "extra" in msgs


def test_date_time_format_accepts_missing_offset_but_not_nonsense():
    check = format_checker()
    assert check.conforms("2024-05-01T10:00:00", "date-time")
    assert check.conforms("2024-05-01T10:00:00.5+02:00", "date-time")
    assert not check.conforms("2024-05-32T10:00:00", "date-time")
    assert not check.conforms("yesterday", "date-time")
    assert not check.conforms("nobody", "email")


def test_arithmetic_findings_per_failed_rule(data):
    wrong_line = order(items=[{"qty": 2, "price": 600, "total": 1100}], subtotal=1100, total=1100)
    no_subtotal = order(total=1300)
    del no_subtotal["subtotal"]
    report = validate_files(
        [
            data(
                "d.jsonl",
                [rec(1, wrong_line, PROMPT + " 1100"), rec(2, no_subtotal, PROMPT + " 1300")],
            )
        ]
    )
    assert kinds(report, "e1") == [("arithmetic", "error", "$.items[0].total")]
    assert kinds(report, "e2") == [("arithmetic", "error", "$.total")]
    msg = next(f.message for f in report.findings if f.example_id == "e2")
    assert "1300" in msg and "1200" in msg and "off by 100" in msg


def test_invalid_rules_file_is_a_finding_not_a_crash(data, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schemas: {order: [{check: total, equals: 'eval(1)'}]}")
    report = validate_files([data("d.jsonl", [rec(1)])], rules_file=bad)
    (f,) = [f for f in report.findings if f.kind == "invalid_rules"]
    assert f.severity == "error" and "eval" in f.message


def test_ungrounded_values_after_normalising():
    numbers = prompt_numbers("paid $1,200.00, then 1200, -3.5 C, A-12, 1,2,3")
    assert {1200.0, -3.5, 12.0, 1.0, 2.0, 3.0} <= numbers
    prompt = "BUYER:  ada   BYRON; 2 x 600 = 1,200.00 (Full-Time)"
    expected = {
        "buyer": "Ada Byron",
        "n": 1200,
        "p": 600.0,
        "kind": "full time",
        "flag": True,
        "none": None,
        "status": "paid",
        "tags": ["zzz"],
    }
    schema = {"properties": {"status": {"enum": ["open", "paid"]}}}
    got = list(ungrounded_values(prompt, expected, schema))
    assert got == [("$.status", "paid", True), ("$.tags[0]", "zzz", False)]


def test_ungrounded_is_a_warning_with_an_enum_hint(data):
    report = validate_files([data("d.jsonl", [rec(1, order(status="paid"))])])
    (f,) = [f for f in report.findings if f.kind == "ungrounded"]
    assert (f.severity, f.path, f.example_id) == ("warning", "$.status", "e1")
    assert "enum" in f.message and "'paid'" in f.message


def test_duplicates_and_leaks(data):
    other = "Ada Byron (ada@example.org) open: 2 x 600 = 1200, total 1200"
    train = data("train.jsonl", [rec(1), rec(2, prompt=PROMPT.upper()), rec(3, prompt=other)])
    test = data("test.jsonl", [rec(4, prompt="  " + other), rec(5, prompt=other + " again")])
    report = validate_files([train, test])
    dup = [
        (f.kind, f.severity, f.example_id)
        for f in report.findings
        if f.kind in ("duplicate", "leak")
    ]
    assert dup == [("duplicate", "warning", "e2"), ("leak", "error", "e4")]
    leak = next(f for f in report.findings if f.kind == "leak")
    assert "e3" in leak.message and "train.jsonl:3" in leak.message


def test_versions_of_one_data_set_are_not_compared(data):
    """train_v2 and train_v3 hold the same prompts: neither is a duplicate of the other, but
    duplicates within a version and leaks into that version's test split still count."""
    other = "Ada Byron (ada@example.org) open: 2 x 600 = 1200, total 1200"
    v2 = data("train_v2.jsonl", [rec(1), rec(2, prompt=other)])
    v3 = data("train_v3.jsonl", [rec(1), rec(2, prompt=other), rec(3, prompt=other)])
    test3 = data("test_v3.jsonl", [rec(9)])
    report = validate_files([v2, v3, test3])
    found = sorted(
        (f.kind, Path(f.file).name, f.example_id)
        for f in report.findings
        if f.kind in ("duplicate", "leak")
    )
    assert found == [("duplicate", "train_v3.jsonl", "e3"), ("leak", "test_v3.jsonl", "e9")]
    leak = next(f for f in report.findings if f.kind == "leak")
    assert "train_v3.jsonl:1" in leak.message
    compared, skipped = report.compared_pairs()
    assert compared == [[str(v3), str(test3)]]
    assert sorted(map(tuple, skipped)) == [(str(v2), str(test3)), (str(v2), str(v3))]
    note = report.comparison_note()
    assert "between train_v3.jsonl and test_v3.jsonl" in note
    assert "not between train_v2.jsonl and train_v3.jsonl" in note
    assert report.to_json()["not_compared"] == skipped


def test_version_from_name():
    assert version_from_name("a/train_v3.jsonl") == ("", "3")
    assert version_from_name("edgejson_test_v1.jsonl") == ("edgejson", "1")
    assert version_from_name("train.jsonl") == ("", None)
    assert version_from_name("orders-train-v1.2.jsonl") == ("orders", "1.2")
    assert other_versions("train_v2.jsonl", "train_v3.jsonl")
    assert other_versions("train_v2.jsonl", "test_v3.jsonl")
    assert not other_versions("train_v3.jsonl", "test_v3.jsonl")
    assert not other_versions("train_v3.jsonl", "test.jsonl")  # an unversioned split is shared
    assert not other_versions("a_train_v2.jsonl", "b_train_v3.jsonl")


def test_duplicate_with_different_output_is_called_out():
    a = Example("a", "s", "same text", {"x": 1})
    b = Example("b", "s", "Same  text", {"x": 2})
    (f,) = duplicate_findings([a, b])
    assert f.example_id == "b" and "different expected output" in f.message


def test_length_check_with_a_tokenizer(tiny_model_path):
    from engine.models.load import load_tokenizer

    tok = load_tokenizer("tiny")
    short = Example("short", "s", "hi", {"a": 1})
    long = Example("long", "s", "word " * 200, {"text": "word " * 100})
    totals = token_lengths([short, long], tok)
    assert totals[0] < 40 and totals[1] > 100
    found = length_findings([short, long], tok, max_seq_len=totals[0] + 1, max_new_tokens=20)
    assert [(f.kind, f.severity, f.example_id) for f in found] == [
        ("length", "error", "long"),
        ("length", "error", "long"),
    ]
    assert str(totals[1]) in found[0].message
    (note,) = length_findings([short, long], tok, None, None)
    assert note.severity == "info" and "long" in note.message


def test_progress_and_report_json(data):
    calls = []
    report = validate_files(
        [data("d.jsonl", [rec(i) for i in range(5)])],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    doc = report.to_json()
    assert doc["examples"] == 5 and doc["by_kind"] == {"duplicate": 4, "length": 1}
    assert set(doc["findings"][0]) >= {"kind", "severity", "example_id", "line", "path", "message"}
    assert report.by_severity == {"error": 0, "warning": 4, "info": 1}


def test_unknown_schema_skips_schema_checks_but_keeps_others(data, tmp_path):
    report = validate_files(
        [data("d.jsonl", [{**rec(1, order(buyer="Zed")), "schema_id": "ghost"}])]
    )
    assert [f.kind for f in report.findings if f.severity != "info"] == [
        "unknown_schema",
        "ungrounded",
    ]


def test_record_validation_stores_run_issues_and_dataset(data, db_path):
    path = data("d.jsonl", [rec(1), rec(2, order(status="paid"))])
    report = validate_files([path, path.parent / "absent.jsonl"])
    assert report.unreadable_files == [str(path.parent / "absent.jsonl")]
    db = runlog.connect(db_path)
    run_id = record_validation(db, report, {"data": [str(path)]})
    run = runlog.get_run(db, run_id)
    assert run["kind"] == "validate" and run["status"] == "completed"
    assert run["summary"]["examples"] == 2 and run["summary"]["errors"] == 1
    assert run["config"] == {"data": [str(path)]}
    rows = list(
        db.query("SELECT kind, example_id FROM validation_issues WHERE run_id = ?", [run_id])
    )
    assert len(rows) == len(report.findings)
    assert {"kind": "ungrounded", "example_id": "e2"} in rows
    (ds,) = list(db.query("SELECT * FROM datasets"))
    assert ds["path"] == str(path) and ds["n_examples"] == 2 and run["dataset_id"] == ds["id"]
    assert SchemaRegistry.from_dir(path.parent / "schemas").get("order") == ORDER_SCHEMA
