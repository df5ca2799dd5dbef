"""End to end: `python -m engine validate` and `runs` in a subprocess, on the bundled sample
and on the EdgeJSON data set read in place."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.paths import REPO_ROOT


def cli(*args, db=None):
    cmd = [sys.executable, "-m", "engine", *map(str, args)]
    if db is not None:
        cmd += ["--db", str(db)]
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


def validate_json(*args, db=None):
    proc = cli("validate", *args, "--format", "json", db=db)
    return proc.returncode, json.loads(proc.stdout)


def test_sample_train_and_test_are_clean(sample_dir, db_path):
    rc, doc = validate_json(sample_dir / "train.jsonl", sample_dir / "test.jsonl", db=db_path)
    assert rc == 0 and doc["examples"] >= 300
    assert {f["severity"] for f in doc["findings"]} == {"info"}
    assert isinstance(doc["run_id"], int)


def test_sample_broken_file_shows_each_kind(sample_dir, db_path):
    rc, doc = validate_json(sample_dir / "broken.jsonl", db=db_path)
    assert rc == 1
    expected = {
        "unreadable",
        "parse",
        "missing_field",
        "unknown_schema",
        "json_schema",
        "arithmetic",
        "ungrounded",
        "duplicate",
    }
    assert expected <= set(doc["by_kind"])
    for f in doc["findings"]:
        assert set(f) >= {"kind", "severity", "example_id", "line", "path", "message"}
        if f["kind"] in expected:
            assert f["line"] and f["message"]


def test_table_output_and_runs_listing(sample_dir, db_path):
    proc = cli("validate", sample_dir / "broken.jsonl", db=db_path)
    assert proc.returncode == 1
    assert "arithmetic" in proc.stdout and "recorded as run 1" in proc.stdout
    runs = cli("runs", "--format", "json", db=db_path)
    assert runs.returncode == 0
    (run,) = json.loads(runs.stdout)["runs"]
    assert run["kind"] == "validate" and run["status"] == "completed"
    assert "errors" in run["key_figure"]
    table = cli("runs", "--kind", "validate", db=db_path)
    assert table.returncode == 0 and "validate" in table.stdout


def test_unreadable_input_exits_2(sample_dir, tmp_path, db_path):
    proc = cli("validate", tmp_path / "absent.jsonl", db=db_path)
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = cli("validate", sample_dir / "train.jsonl", "--schemas", tmp_path / "nope", db=db_path)
    assert proc.returncode == 2 and "--schemas" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_record_leaves_no_run_log(sample_dir, db_path):
    proc = cli("validate", sample_dir / "test.jsonl", "--no-record", db=db_path)
    assert proc.returncode == 0 and not db_path.exists()


def _changed_between_releases(edgejson_dir) -> set[str]:
    """Ids whose expected output v3 regenerated: the records v2 got wrong."""

    def load(name):
        lines = (edgejson_dir / name).read_text(encoding="utf-8").splitlines()
        return {r["id"]: r["expected_output"] for r in map(json.loads, lines)}

    v2, v3 = load("train_v2.jsonl"), load("train_v3.jsonl")
    return {i for i in v2 if v2[i] != v3.get(i)}


def test_edgejson_v2_arithmetic_finds_the_regenerated_records(edgejson_dir, db_path):
    rc, doc = validate_json(
        edgejson_dir / "train_v2.jsonl", "--schemas", edgejson_dir / "schemas", db=db_path
    )
    assert rc == 1 and doc["examples"] == 629
    flagged = {f["example_id"] for f in doc["findings"] if f["kind"] == "arithmetic"}
    changed = _changed_between_releases(edgejson_dir)
    assert len(changed) == 72 and flagged == changed
    msg = next(f["message"] for f in doc["findings"] if f["kind"] == "arithmetic")
    assert "expected" in msg and "off by" in msg
    assert doc["by_kind"].get("json_schema", 0) == 0  # every record is schema-valid


def test_edgejson_v3_has_no_arithmetic_findings(edgejson_dir, db_path):
    rc, doc = validate_json(edgejson_dir / "train_v3.jsonl", db=db_path)  # schemas found
    assert doc["examples"] == 629 and "arithmetic" not in doc["by_kind"]
    assert rc == 0 and doc["by_kind"].get("ungrounded", 0) > 0


def test_edgejson_folder_versions_are_not_duplicates_of_each_other(edgejson_dir, db_path):
    """Both releases of EdgeJSON's train split, validated together as the Datasets pane's
    "validate the folder" does: the same prompts in v2 and v3 are not duplicates."""
    v2, v3 = edgejson_dir / "train_v2.jsonl", edgejson_dir / "train_v3.jsonl"
    _, doc = validate_json(v2, v3, "--no-record", db=db_path)
    assert doc["examples"] == 2 * 629
    assert doc["by_kind"].get("duplicate", 0) < 50 and "leak" not in doc["by_kind"]
    assert doc["not_compared"] == [[str(v2), str(v3)]] and doc["compared"] == []
    assert "not between train_v2.jsonl and train_v3.jsonl" in doc["comparison"]
    table = cli("validate", v2, v3, "--no-record", db=db_path)
    assert "not between train_v2.jsonl and train_v3.jsonl" in " ".join(table.stdout.split())
