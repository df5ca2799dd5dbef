"""End to end: `schemalab eval`, `show` and `compare` on the bundled sample with the tiny model."""

from __future__ import annotations

import json

from engine.cli import main


def run(capsys, *args):
    rc = main([*map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_eval_show_compare(capsys, sample_dir, db_path, tmp_path):
    data = sample_dir / "test.jsonl"
    seed = tmp_path / "seed.json"
    rc, out, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        data,
        "--limit",
        "3",
        "--set",
        "max_new_tokens=8",
        "--format",
        "json",
        "--db",
        db_path,
        "--export-seed-format",
        seed,
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert {"run_id", "overall", "by_complexity", "by_schema", "by_failure"} <= set(doc)
    assert doc["overall"]["n"] == 3 and doc["constrained"] is False
    assert json.loads(seed.read_text())["aggregate"]["total_examples"] == 3

    rc, out, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        data,
        "--limit",
        "3",
        "--set",
        "max_new_tokens=8",
        "--constrained",
        "--db",
        db_path,
    )
    assert rc == 0, err
    assert "overall" in out and "truncated" in out and "tokens/s" in out
    assert "schemalab show 2" in out

    rc, out, _ = run(capsys, "show", "2", "--db", db_path, "--failure", "truncated")
    assert rc == 0 and out.count("truncated") >= 3 and "sample_test_" in out
    rc, out, _ = run(capsys, "show", "1", "--db", db_path, "--schema", "no_such_schema")
    assert "no failing examples match" in out

    rc, out, _ = run(capsys, "compare", "1", "2", "--db", db_path, "--format", "json")
    result = json.loads(out)
    assert rc == 0 and result["n_common"] == 3 and "by_schema" in result
    rc, out, _ = run(capsys, "compare", "1", "2", "--db", db_path)
    assert "flight_booking" in out and "pass -> fail" in out


def test_eval_errors_are_clear(capsys, sample_dir, db_path):
    rc, _, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        sample_dir / "test.jsonl",
        "--decoding",
        "fastest",
        "--db",
        db_path,
    )
    assert rc == 2 and "unknown decoding preset" in err
    rc, _, err = run(
        capsys, "eval", "--model", "tiny", "--data", sample_dir / "none.jsonl", "--db", db_path
    )
    assert rc == 2 and "no such data file" in err
    rc, _, err = run(capsys, "show", "42", "--db", db_path)
    assert rc == 2 and "no run 42" in err


def test_eval_edgejson_protocol(capsys, sample_dir, db_path):
    data = sample_dir / "test.jsonl"
    rc, out, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        data,
        "--limit",
        "2",
        "--protocol",
        "edgejson",
        "--format",
        "json",
        "--db",
        db_path,
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["protocol"] == "edgejson" and doc["prompt_template"] == "edgejson"
    assert doc["decoding"]["stop"] == "eos" and doc["decoding"]["max_new_tokens"] == 512
    # A random model rarely writes EOS: every answer runs to the harness's 512-token cap.
    assert 2 <= doc["overall"]["n_tokens"] <= 1024
    assert set(doc["by_complexity"]) <= {"simple", "medium", "complex", "unknown"}
    for flag in (["--constrained"], ["--set", "max_new_tokens=8"], ["--decoding", "sample"]):
        rc, _, err = run(
            capsys,
            "eval",
            "--model",
            "tiny",
            "--data",
            data,
            "--protocol",
            "edgejson",
            *flag,
            "--db",
            db_path,
        )
        assert rc == 2 and "--protocol edgejson decodes as the published harness" in err
    rc, _, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        data,
        "--protocol",
        "edgejson",
        "--prompt-template",
        "schemalab",
        "--db",
        db_path,
    )
    assert rc == 2 and "template edgejson" in err


def test_eval_prompt_template_and_stop_override(capsys, sample_dir, db_path):
    rc, out, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        sample_dir / "test.jsonl",
        "--limit",
        "2",
        "--prompt-template",
        "edgejson",
        "--set",
        "stop=eos",
        "--set",
        "max_new_tokens=4",
        "--format",
        "json",
        "--db",
        db_path,
    )
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["protocol"] == "schemalab" and doc["prompt_template"] == "edgejson"
    assert doc["decoding"]["stop"] == "eos" and doc["template_warning"] is None
    rc, _, err = run(
        capsys,
        "eval",
        "--model",
        "tiny",
        "--data",
        sample_dir / "test.jsonl",
        "--set",
        "stop=never",
        "--db",
        db_path,
    )
    assert rc == 2 and "stop must be one of json, eos" in err
