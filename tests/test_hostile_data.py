"""Data that is odd or hostile: byte-order marks, references to schemas elsewhere (never
fetched), a huge array of bad values, nesting thousands of levels deep. Each is reported as
findings; nothing hangs, crashes or blows up memory, and one bad file never hides the others."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.load import BOM, SchemaRegistry, discover_datasets, load_examples
from engine.data.validate import (
    ERRORS_COUNTED,
    FINDINGS_PER_KIND,
    record_validation,
    validate_files,
)

REPO = Path(__file__).resolve().parent.parent


def _sample_copy(tmp_path: Path, sample_dir: Path, n: int = 10) -> tuple[Path, list[str]]:
    """A data folder with the sample's schemas and the first `n` lines of its train split."""
    shutil.copytree(sample_dir / "schemas", tmp_path / "schemas")
    lines = (sample_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return tmp_path, lines


# --- byte-order marks and lines left out of training ------------------------------------------


def test_a_byte_order_mark_is_not_an_error_anywhere(tmp_path, sample_dir):
    folder, lines = _sample_copy(tmp_path, sample_dir, 3)
    data = folder / "train.jsonl"
    # A BOM at the start of the file and one on a later line (files concatenated).
    data.write_bytes(
        BOM
        + lines[0].encode()
        + b"\n"
        + lines[1].encode()
        + b"\r\n"
        + BOM
        + lines[2].encode()
        + b"\n"
    )
    schema = folder / "schemas" / "simple" / "bom_schema.json"
    schema.write_bytes(BOM + b'{"type": "object", "properties": {"a": {"type": "string"}}}')
    rules = folder / "schemas" / "rules.yaml"
    rules.write_bytes(BOM + b"schemas:\n  bom_schema:\n    - {check: a, equals: '1'}\n")

    loaded = load_examples(data, SchemaRegistry.from_dir(folder / "schemas"))
    assert len(loaded.examples) == 3
    assert not [f for f in loaded.findings if f.severity == "error"], loaded.findings
    registry = SchemaRegistry.from_dir(folder / "schemas")
    assert "bom_schema" in registry and not registry.findings
    report = validate_files([data])
    assert report.rules_sources == [str(rules)]
    assert not [
        f for f in report.findings if f.kind in ("parse", "invalid_schema", "invalid_rules")
    ]


def _bom_and_broken(tmp_path, sample_dir) -> Path:
    """11 lines: the first with a BOM (fine) and line 5 broken (left out, and said so)."""
    folder, lines = _sample_copy(tmp_path, sample_dir, 10)
    lines.insert(4, '{"id": "cut_off", "prompt": "half a rec')
    data = folder / "train.jsonl"
    data.write_bytes(BOM + "\n".join(lines).encode() + b"\n")
    return data


def test_train_check_reports_lines_that_could_not_be_loaded(
    tmp_path, sample_dir, db_path, capsys, tiny_model_path
):
    data = _bom_and_broken(tmp_path, sample_dir)
    code = main(
        [
            "train",
            "--check",
            "--set",
            "model=tiny",
            "--set",
            f"train_data={data}",
            "--set",
            "max_seq_len=4096",
            "--db",
            str(db_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "all 10 examples fit" in err  # the BOM line loads
    assert "1 line of the data could not be loaded" in err
    assert "train.jsonl:5: parse" in err and "Traceback" not in err


def test_training_summary_and_train_form_show_lines_left_out(tmp_path, sample_dir, tiny_model_path):
    from engine.models.load import load_tokenizer
    from engine.train.config import load_config
    from engine.train.data import prepare_data
    from engine.train.loop import _summary
    from tui.train_form import _lengths_text

    data = _bom_and_broken(tmp_path, sample_dir)
    cfg = load_config(
        None, ["model=tiny", f"train_data={data}", "max_seq_len=4096", "val_fraction=0"]
    )
    prepared = prepare_data(cfg, load_tokenizer("tiny"))
    assert len(prepared.train) == 10
    assert [(Path(s["file"]).name, s["line"], s["kind"]) for s in prepared.report.skipped] == [
        ("train.jsonl", 5, "parse")
    ]
    assert "could not be loaded" in prepared.report.message()  # what the run's log says
    summary = _summary(cfg, prepared, 0, 10, None, None, 0.0)
    assert summary["n_skipped_lines"] == 1 and summary["skipped_lines"][0]["line"] == 5
    text = _lengths_text(cfg)  # the Train form's line under the memory estimate
    assert "all 10 examples fit" in text
    assert "1 line could not be loaded" in text and "train.jsonl:5" in text


# --- $ref: nothing is fetched -----------------------------------------------------------------


class SilentServer:
    """A real TCP server on 127.0.0.1 that accepts connections and never answers; it counts
    them, so a test can show it was never contacted."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)  # held open, never answered

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def _remote_ref_folder(tmp_path: Path, port: int) -> Path:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    url = f"http://127.0.0.1:{port}/address.json"
    (schemas / "order.json").write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"id": {"type": "string"}, "ship_to": {"$ref": url}},
            }
        )
    )
    (schemas / "local_file.json").write_text(
        json.dumps({"type": "object", "properties": {"a": {"$ref": "file:///etc/hostname"}}})
    )
    (tmp_path / "outside.json").write_text('{"type": "string"}')
    (schemas / "escapes.json").write_text(
        json.dumps({"type": "object", "properties": {"a": {"$ref": "../outside.json"}}})
    )
    records = [
        {
            "id": "o1",
            "schema_id": "order",
            "prompt": "Order A-1 to 1 Main St.",
            "expected_output": {"id": "A-1", "ship_to": {"street": "1 Main St."}},
        },
        {"id": "f1", "schema_id": "local_file", "prompt": "a is x", "expected_output": {"a": "x"}},
        {"id": "e1", "schema_id": "escapes", "prompt": "a is x", "expected_output": {"a": "x"}},
        {
            "id": "i1",
            "prompt": "a is x",
            "expected_output": {"a": "x"},
            "schema": {"type": "object", "properties": {"a": {"$ref": url}}},
        },
    ]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return data


def _engine(*args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_remote_ref_is_never_fetched(tmp_path, db_path, silent_server, tiny_model_path):
    data = _remote_ref_folder(tmp_path, silent_server.port)
    # Before, jsonschema fetched the URL and waited for an answer forever.
    done = _engine("validate", data, "--format", "json", "--db", db_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    bad = [f for f in report["findings"] if f["kind"] == "invalid_schema"]
    messages = " | ".join(f["message"] for f in bad)
    assert f"127.0.0.1:{silent_server.port}" in messages and "never fetched" in messages
    assert "file:///etc/hostname" in messages and "leads out of the schema folder" in messages
    assert any(f["line"] == 4 for f in bad)  # the inline schema's line
    unusable = [f for f in report["findings"] if f["kind"] == "unknown_schema"]
    assert {f["example_id"] for f in unusable} == {"o1", "f1", "e1"}
    assert all("not usable" in f["message"] for f in unusable)

    # Evaluation (constrained decoding too) reads the same schemas: a clear error, unfetched.
    for command in ("eval", "score"):
        more = (
            ["--model", "tiny", "--constrained", "--set", "max_new_tokens=4"]
            if command == "eval"
            else ["--predictions", data]
        )
        done = _engine(command, "--data", data, *more, "--db", db_path)
        assert done.returncode == 2, done.stderr
        assert "never fetched" in done.stderr and "test.jsonl:4" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert silent_server.connections == []


def test_refs_to_files_inside_the_schema_folder_resolve(tmp_path, tiny_model_path):
    from engine.decode.grammar import compile_grammar
    from engine.models.load import load_tokenizer

    schemas = tmp_path / "schemas"
    (schemas / "common").mkdir(parents=True)
    (schemas / "common" / "address.json").write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["street"],
                "properties": {"street": {"$ref": "#/definitions/text"}},
                "definitions": {"text": {"type": "string"}},
            }
        )
    )
    (schemas / "order.json").write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "ship_to": {"$ref": "common/address.json"},
                    "lines": {"type": "array", "items": {"$ref": "#/definitions/line"}},
                },
                "definitions": {
                    "line": {"type": "object", "properties": {"qty": {"type": "integer"}}}
                },
            }
        )
    )
    (schemas / "dangling.json").write_text(
        json.dumps({"type": "object", "properties": {"a": {"$ref": "#/definitions/nothing"}}})
    )
    registry = SchemaRegistry.from_dir(schemas)
    order = registry.get("order")
    assert order is not None and "dangling" not in registry
    assert [f.kind for f in registry.findings] == ["invalid_schema"]
    assert "points at nothing" in registry.findings[0].message
    data = tmp_path / "test.jsonl"
    data.write_text(
        json.dumps(
            {
                "id": "x",
                "schema_id": "order",
                "prompt": "ship to 5, 2 of them",
                "expected_output": {"ship_to": {"street": 5}, "lines": [{"qty": "2"}]},
            }
        )
        + "\n"
    )
    report = validate_files([data])
    paths = sorted(f.path for f in report.findings if f.kind == "json_schema")
    assert paths == ["$.lines[0].qty", "$.ship_to.street"]
    # The grammar for constrained decoding is built from the same, self-contained schema.
    assert compile_grammar(load_tokenizer("tiny"), order) is not None


# --- a huge array of bad values ---------------------------------------------------------------


def test_a_huge_array_gives_a_bounded_number_of_short_findings(tmp_path, db_path):
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "nums.json").write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "notes": {"type": "array", "items": {"type": "integer"}},
                    "values": {"type": "array", "items": {"type": "integer"}},
                },
            }
        )
    )
    (schemas / "rules.yaml").write_text("schemas: {}\n")
    n_short, n_long = 20_000, 400
    long_value = "word " * 600  # 3000 characters each
    record = {
        "id": "big",
        "schema_id": "nums",
        "prompt": "numbers",
        "expected_output": {"values": ["abc"] * n_short, "notes": [long_value] * n_long},
    }
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(record) + "\n")
    assert data.stat().st_size > 1_000_000

    tracemalloc.start()
    try:
        report = validate_files([data])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    by_kind = report.by_kind
    assert by_kind["json_schema"] == by_kind["ungrounded"] == FINDINGS_PER_KIND + 1
    more = [f.message for f in report.findings if f.message.startswith("... and")]
    n_bad = n_short + n_long
    # Schema errors are counted up to a point (each costs the validator time), the rest exactly.
    assert f"at least {ERRORS_COUNTED - FINDINGS_PER_KIND} more json_schema findings" in more[0]
    assert f"{n_bad - FINDINGS_PER_KIND} more ungrounded findings" in more[1]
    assert any("word word" in f.message for f in report.findings if f.kind == "json_schema")
    assert max(len(f.message) for f in report.findings) < 600
    assert peak < 200e6, f"validation peaked at {peak / 1e6:.0f} MB"

    from engine import runlog

    record_validation(runlog.connect(db_path), report, {})
    assert db_path.stat().st_size < 300_000

    assert main(["validate", str(data), "--no-record"]) == 1  # the table view finishes too


# --- nesting thousands of levels deep ---------------------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def _deep_folder(tmp_path: Path, sample_dir: Path) -> tuple[Path, Path]:
    folder, lines = _sample_copy(tmp_path, sample_dir, 3)
    good = folder / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    deep = folder / "deep.jsonl"
    deep_record = lines[1].replace(
        '"expected_output": {', '"expected_output": {"deep": ' + _deep(995) + ", ", 1
    )
    deep.write_text(
        "\n".join([lines[0], deep_record, '{"x": ' + _deep(100_000) + "}", lines[2]]) + "\n"
    )
    return good, deep


def test_deep_nesting_is_a_parse_finding_with_its_line(tmp_path, sample_dir, capsys):
    good, deep = _deep_folder(tmp_path, sample_dir)
    loaded = load_examples(deep)
    assert len(loaded.examples) == 2
    parse = [f for f in loaded.findings if f.kind == "parse"]
    assert [f.line for f in parse] == [2, 3] and all("nested" in f.message for f in parse)

    report = validate_files([deep, good])
    assert report.n_examples == 5
    assert main(["validate", str(deep), "--no-record", "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert sorted(f["line"] for f in out["findings"] if f["kind"] == "parse") == [2, 3]

    # A schema nested as deep is an invalid schema, not a crash.
    (good.parent / "schemas" / "deep_schema.json").write_text(
        '{"type": "object", "properties": {"a": ' + '{"items": ' * 3000 + "{}" + "}" * 3000 + "}}"
    )
    registry = SchemaRegistry.from_dir(good.parent / "schemas")
    assert "deep_schema" not in registry
    assert any("deep_schema" in f.message and "nested" in f.message for f in registry.findings)


def test_one_deep_file_never_hides_the_others(tmp_path, sample_dir):
    _deep_folder(tmp_path, sample_dir)
    infos = {i.path.name: i for i in discover_datasets([tmp_path])}
    assert set(infos) == {"good.jsonl", "deep.jsonl"}
    assert infos["good.jsonl"].n_examples == 3 and infos["deep.jsonl"].n_examples == 2
    assert infos["deep.jsonl"].n_findings == 2


def test_predictions_and_split_read_a_bom_and_survive_deep_nesting(tmp_path, sample_dir):
    from engine.data.split import split_file
    from engine.evaluate.run import read_predictions

    predictions = tmp_path / "pred.jsonl"
    predictions.write_bytes(
        BOM
        + b'{"id": "a", "output": "{}"}\n'
        + b'{"id": "b", "output": '
        + _deep(50_000).encode()
        + b"}\n"
        + b'{"id": "c", "output": "{}"}\n'
    )
    outputs, findings = read_predictions(predictions)
    assert sorted(outputs) == ["a", "c"]
    assert [(f["line"], f["kind"]) for f in findings] == [(2, "unreadable")]
    assert "nested" in findings[0]["message"]

    _, lines = _sample_copy(tmp_path / "s", sample_dir, 6)
    data = tmp_path / "s" / "all.jsonl"
    data.write_text("\n".join(lines[:3] + ['{"x": ' + _deep(50_000) + "}"] + lines[3:]) + "\n")
    result = split_file(data, 0.5)
    assert any(":4: nested too deeply" in s for s in result.skipped)
