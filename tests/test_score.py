"""`schemalab score`: outputs produced elsewhere, scored under both protocols through the real CLI
and a real run log; findings for bad prediction files; show, compare and the seed export."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.evaluate import run as evaluate

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "qty": {"type": "integer"},
        "ok": {"type": "boolean"},
        "meta": {"type": "object"},
    },
    "required": ["name", "qty", "ok"],
}

# id -> (expected, output); d7 gets no prediction.
CASES = {
    "d1": ({"name": "Ada", "qty": 1, "ok": True}, '{"name": "Ada", "qty": 1, "ok": true}'),
    "d2": ({"name": "Bea", "qty": 2, "ok": True}, '[{"name": "Bea", "qty": 2, "ok": true}]'),
    "d3": ({"name": "Bo", "qty": 2, "ok": True}, '{"name": "Bo", "meta": {"k": 1}, "qty": {'),
    "d4": ({"name": "Cy", "qty": 3, "ok": True}, '{"name": "Cy", "qty": NaN, "ok": true}'),
    "d5": (
        {"name": "Di", "qty": 4, "ok": False},
        'Fields {name, qty} follow: {"name": "Di", "qty": 4, "ok": false}',
    ),
    "d6": ({"name": "Ed", "qty": 5, "ok": True}, '{"name": "Ed", "qty": 5, "ok": 1}'),
    "d7": ({"name": "Flo", "qty": 6, "ok": True}, None),
}


def run(capsys, *args):
    rc = main([*map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "item.json").write_text(json.dumps(SCHEMA))
    data = tmp_path / "data.jsonl"
    with data.open("w") as f:
        for i, (ex_id, (expected, _)) in enumerate(CASES.items()):
            record = {
                "id": ex_id,
                "schema_id": "item",
                "prompt": f"{expected}",
                "expected_output": expected,
            }
            if i < 2:
                record["complexity"] = "simple"
            f.write(json.dumps(record) + "\n")
    preds = tmp_path / "pred.jsonl"
    lines = [
        json.dumps({"id": ex_id, "output": out})
        for ex_id, (_, out) in reversed(CASES.items())
        if out is not None
    ]
    lines.insert(2, "this is not json")
    lines.append(json.dumps({"id": "ghost", "output": "{}"}))
    lines.append(json.dumps({"id": "d1", "output": "{}"}))  # a duplicate: the first one counts
    preds.write_text("\n".join(lines) + "\n")
    return data, preds, tmp_path / "schemas"


def rows_by_id(db_path, run_id):
    return {r["example_id"]: r for r in evaluate.predictions(db_path, run_id)}


def score(capsys, files, db_path, protocol, *extra):
    data, preds, schemas = files
    rc, out, err = run(
        capsys,
        "score",
        "--data",
        data,
        "--predictions",
        preds,
        "--schemas",
        schemas,
        "--protocol",
        protocol,
        "--format",
        "json",
        "--db",
        db_path,
        *extra,
    )
    assert rc == 0, err
    return json.loads(out), err


def test_schemalab_protocol_scores_crafted_outputs(capsys, files, db_path):
    report, err = score(capsys, files, db_path, "schemalab")
    assert report["protocol"] == "schemalab" and report["source"] == "predictions"
    rows = rows_by_id(db_path, report["run_id"])
    assert list(rows) == list(CASES)  # one row per data example, in data order
    exact = {k for k, r in rows.items() if r["json_exact"]}
    assert exact == {"d1", "d5"}  # prose before the JSON is fine; True != 1
    assert "wrapped in an array" in rows["d2"]["parse_error"] and rows["d2"]["parsed"] is None
    assert "unterminated" in rows["d3"]["parse_error"] and rows["d3"]["parsed"] is None
    assert "NaN" in rows["d4"]["parse_error"] and rows["d4"]["schema_valid"] == 0
    assert rows["d6"]["failure"] == "schema_violation"  # `ok` must be a boolean
    assert rows["d6"]["field_f1"] == pytest.approx(2 / 3)
    assert rows["d7"]["parse_error"] == "no prediction for this id"
    assert rows["d7"]["failure"] == "unparseable" and rows["d7"]["output_text"] == ""
    assert {r["failure"] for k, r in rows.items() if k in ("d2", "d3", "d4")} == {"unparseable"}
    o = report["overall"]
    assert o["n"] == 7 and o["json_exact"] == pytest.approx(2 / 7)
    assert o["parse_rate"] == pytest.approx(3 / 7) and o["n_tokens"] == 0
    assert "unknown" in report["note"]
    # Complexity: the two records that carry one, the rest inferred from the schema.
    assert "unknown" not in report["by_complexity"]
    assert sum(g["inferred"] for g in report["by_complexity"].values()) == 5

    kinds = sorted((f["kind"], f["where"].rsplit(":", 1)[-1]) for f in report["findings"])
    assert kinds == [
        ("duplicate_id", "9"),
        ("missing_id", "7"),
        ("unknown_id", "8"),
        ("unreadable", "3"),
    ]
    assert "pred.jsonl:8: unknown_id" in err and "data.jsonl:7: missing_id" in err


def test_edgejson_protocol_follows_the_harness(capsys, files, db_path):
    report, _ = score(capsys, files, db_path, "edgejson")
    assert report["protocol"] == "edgejson"
    rows = rows_by_id(db_path, report["run_id"])
    exact = {k for k, r in rows.items() if r["json_exact"]}
    assert exact == {"d1", "d5", "d6"}  # Python ==: True == 1
    assert rows["d6"]["failure"] is None
    # The array parses (its json.loads takes any value) but scores 0.
    assert rows["d2"]["parsed"] == [CASES["d2"][0]]
    assert (rows["d2"]["field_f1"], rows["d2"]["compliance"]) == (0.0, 0)
    # The truncated answer parses as an inner fragment through the harness's regex.
    assert rows["d3"]["parsed"] == {"k": 1} and rows["d3"]["field_f1"] == 0.0
    # NaN is accepted; two fields match; float NaN passes the loose type check; not schema-valid.
    assert rows["d4"]["field_f1"] == pytest.approx(2 / 3) and rows["d4"]["compliance"] == 1
    assert rows["d4"]["schema_valid"] == 0
    assert rows["d7"]["json_exact"] == 0 and rows["d7"]["parsed"] is None
    o = report["overall"]
    assert o["json_exact"] == pytest.approx(3 / 7) and o["parse_rate"] == pytest.approx(6 / 7)
    # Records without their own complexity are `unknown`, none inferred.
    assert report["by_complexity"]["simple"]["n"] == 2
    assert report["by_complexity"]["unknown"]["n"] == 5
    assert all(g["inferred"] == 0 for g in report["by_complexity"].values())


def test_show_compare_and_seed_export_on_scored_runs(capsys, files, db_path, tmp_path):
    seed = tmp_path / "seed.json"
    a, _ = score(capsys, files, db_path, "schemalab")
    b, err = score(capsys, files, db_path, "edgejson", "--export-seed-format", seed)
    assert "wrote" in err
    rc, out, _ = run(capsys, "show", a["run_id"], "--db", db_path, "--failure", "unparseable")
    out = " ".join(out.split())  # Rich wraps long lines
    assert rc == 0 and "wrapped in an array" in out and "no prediction for this id" in out
    rc, out, _ = run(
        capsys, "compare", a["run_id"], b["run_id"], "--db", db_path, "--format", "json"
    )
    result = json.loads(out)
    assert rc == 0 and result["n_common"] == 7
    assert [f["example_id"] for f in result["fail_to_pass"]] == ["d6"]
    doc = json.loads(seed.read_text())
    individual = doc["individual_results"]
    assert [r["expected_output"] for r in individual] == [e for e, _ in CASES.values()]
    assert individual[-1]["error"] == "no prediction for this id"
    assert [r["complexity"] for r in individual[:3]] == ["simple", "simple", "unknown"]
    assert doc["aggregate"]["json_exact_score"] == pytest.approx(3 / 7)
    rc, out, _ = run(capsys, "runs", "--db", db_path)
    assert rc == 0


def test_score_errors_are_clear(capsys, files, db_path, tmp_path):
    data = files[0]
    rc, _, err = run(
        capsys, "score", "--data", data, "--predictions", tmp_path / "none.jsonl", "--db", db_path
    )
    assert rc == 2 and "no such predictions file" in err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nothing here\n[1]\n")
    rc, _, err = run(capsys, "score", "--data", data, "--predictions", junk, "--db", db_path)
    assert rc == 2 and "no usable predictions" in err


def test_an_output_that_is_not_text_is_a_finding(capsys, files, db_path, tmp_path):
    data, _, schemas = files
    preds = tmp_path / "parsed.jsonl"
    preds.write_text(
        json.dumps({"id": "d1", "output": CASES["d1"][0]})
        + "\n"
        + json.dumps({"id": "d2", "output": CASES["d1"][1]})
        + "\n"
    )
    rc, out, err = run(
        capsys,
        "score",
        "--data",
        data,
        "--predictions",
        preds,
        "--schemas",
        schemas,
        "--format",
        "json",
        "--db",
        db_path,
    )
    assert rc == 0, err
    report = json.loads(out)
    assert "parsed.jsonl:1: unreadable: `output` of 'd1' is a JSON dict, not a string" in err
    assert not any(
        f["kind"] == "missing_id" and f["example_id"] == "d1" for f in report["findings"]
    )
    rows = rows_by_id(db_path, report["run_id"])
    assert rows["d1"]["parse_error"].startswith("no prediction for this id (line 1")
    assert rows["d1"]["json_exact"] == 0 and rows["d2"]["failure"] == "wrong_value"
