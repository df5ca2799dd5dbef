"""The data layer: the three record shapes, every bad-input case, complexity and splits."""

from __future__ import annotations

import json

import pytest

from engine.data.load import (
    SchemaRegistry,
    discover_datasets,
    find_schemas_dir,
    infer_complexity,
    load_examples,
    split_from_name,
)

NOTE = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
    "required": ["title"],
}


def write_lines(path, lines):
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


@pytest.fixture
def schemas(tmp_path):
    """A registry folder: `note` in the simple tier, `memo` flat (no tier)."""
    root = tmp_path / "schemas"
    (root / "simple").mkdir(parents=True)
    (root / "simple" / "note.json").write_text(json.dumps(NOTE))
    (root / "memo.json").write_text(json.dumps(NOTE))
    return root


def rec(**fields):
    base = {"prompt": "Title: Dune, 412 pages", "expected_output": {"title": "Dune", "pages": 412}}
    return json.dumps({**base, **fields})


def test_registry_tiers_and_flat(schemas):
    reg = SchemaRegistry.from_dir(schemas)
    assert reg.schema_ids == ["memo", "note"]
    assert reg.tier("note") == "simple" and reg.tier("memo") is None
    assert reg.get("note") == NOTE and reg.get("nope") is None and not reg.findings


def test_registry_invalid_schema_files(schemas):
    (schemas / "broken.json").write_text("{not json")
    (schemas / "wrong.json").write_text(json.dumps({"type": "objekt"}))
    (schemas / "simple" / "memo.json").write_text(json.dumps(NOTE))  # defined twice
    reg = SchemaRegistry.from_dir(schemas)
    assert "broken" not in reg and "wrong" not in reg and "note" in reg
    kinds = {(f.kind, f.severity, f.file.rsplit("/", 1)[-1]) for f in reg.findings}
    assert ("invalid_schema", "error", "broken.json") in kinds
    assert ("invalid_schema", "error", "wrong.json") in kinds
    assert ("invalid_schema", "warning", "memo.json") in kinds


def test_registry_missing_folder(tmp_path):
    reg = SchemaRegistry.from_dir(tmp_path / "absent")
    assert len(reg) == 0 and reg.findings[0].kind == "invalid_schema"


def test_three_record_shapes(tmp_path, schemas):
    inline = {**NOTE, "properties": {**NOTE["properties"], "a": {"type": "string"}}}
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            rec(id="a", schema_id="note", complexity="medium", teacher="t"),
            rec(id="b", schema_id="memo", schema_name="memo"),
            rec(id="c", schema_name="note"),
            rec(id="d", schema_id="own", schema=inline),
        ],
    )
    res = load_examples(path, SchemaRegistry.from_dir(schemas))
    ex = {e.id: e for e in res.examples}
    assert list(ex) == ["a", "b", "c", "d"]
    # The record's own complexity wins; teacher and friends are kept in extra.
    assert ex["a"].complexity == "medium" and not ex["a"].complexity_inferred
    assert ex["a"].extra["teacher"] == "t"
    # schema_name alone names the schema; the tier folder supplies complexity.
    assert ex["c"].schema_id == "note" and ex["c"].complexity == "simple"
    assert not ex["c"].complexity_inferred
    # No tier folder, no complexity: inferred from structure, flagged, with an info note.
    assert ex["b"].complexity == "simple" and ex["b"].complexity_inferred
    assert ex["d"].inline_schema == inline and ex["d"].complexity_inferred
    notes = [(f.kind, f.severity, f.example_id) for f in res.findings]
    assert notes == [("missing_metadata", "info", "b"), ("missing_metadata", "info", "d")]
    assert all(e.split == "train" and e.file == str(path) for e in res.examples)
    assert [e.line for e in res.examples] == [1, 2, 3, 4]


def test_every_bad_line_is_a_finding_and_the_rest_loads(tmp_path, schemas):
    path = write_lines(
        tmp_path / "data.jsonl",
        [
            rec(id="ok1", schema_id="note"),
            b'{"id": "cut", "prompt": "abc',
            b"[1, 2, 3]",
            json.dumps({"id": "noexp", "schema_id": "note", "prompt": "x"}),
            json.dumps({"id": "noschema", "prompt": "x", "expected_output": {}}),
            rec(id="unk", schema_id="ghost"),
            b'{"id": "latin", "schema_id": "note", "prompt": "caf\xe9", "expected_output": {}}',
            rec(id="badinline", schema={"type": 12}),
            b"",
            rec(id="ok2", schema_id="note"),
        ],
    )
    res = load_examples(path, SchemaRegistry.from_dir(schemas))
    got = {(f.kind, f.line, f.example_id) for f in res.findings}
    assert got == {
        ("parse", 2, "cut"),
        ("parse", 3, None),
        ("missing_field", 4, "noexp"),
        ("missing_field", 5, "noschema"),
        ("unknown_schema", 6, "unk"),
        ("unreadable", 7, "latin"),
        ("invalid_schema", 8, "badinline"),
    }
    assert all(f.severity == "error" and f.file == str(path) for f in res.findings)
    # An unknown schema is reported but its example is kept (it can still be checked otherwise).
    assert [e.id for e in res.examples] == ["ok1", "unk", "ok2"]
    msg = {f.example_id: f.message for f in res.findings}
    assert "0xe9" in msg["latin"] and "UTF-8" in msg["latin"]
    assert "ghost.json" in msg["unk"]
    assert "expected_output" in msg["noexp"] and "schema_id" in msg["noschema"]


def test_unreadable_file_and_missing_id(tmp_path):
    res = load_examples(tmp_path / "absent.jsonl")
    assert not res.readable and res.findings[0].kind == "unreadable"
    assert not load_examples(tmp_path).readable  # a folder
    path = write_lines(tmp_path / "x.jsonl", [rec(schema_id="note") + "\r"])
    res = load_examples(path)
    assert res.examples[0].id == "x:1"
    assert res.findings[0].kind == "missing_metadata"


def test_bad_complexity_value_is_ignored_with_a_warning(tmp_path, schemas):
    path = write_lines(tmp_path / "d.jsonl", [rec(id="a", schema_id="note", complexity="hard")])
    res = load_examples(path, SchemaRegistry.from_dir(schemas))
    assert res.examples[0].complexity == "simple"
    assert res.findings[0].severity == "warning"


def test_split_from_field_name_and_argument(tmp_path):
    assert split_from_name(tmp_path / "edgejson_test_v1.jsonl") == "test"
    assert split_from_name(tmp_path / "train_v2.jsonl") == "train"
    assert split_from_name(tmp_path / "broken.jsonl") is None
    path = write_lines(
        tmp_path / "all.jsonl",
        [rec(id="a", schema_id="n", split="test"), rec(id="b", schema_id="n")],
    )
    assert [e.split for e in load_examples(path).examples] == ["test", None]
    assert [e.split for e in load_examples(path, split="train").examples] == ["test", "train"]


def test_infer_complexity_from_structure():
    def obj(props):
        return {"type": "object", "properties": props}

    s = {"type": "string"}
    assert infer_complexity(obj({"a": s, "b": s})) == "simple"
    assert infer_complexity(obj({f"f{i}": s for i in range(9)})) == "medium"
    items = {"type": "array", "items": obj({"q": s, "p": s})}
    assert infer_complexity(obj({"a": s, "items": items})) == "medium"
    deep = obj({"a": obj({"b": obj({"c": s})})})
    assert infer_complexity(deep) == "complex"
    assert infer_complexity(obj({f"f{i}": s for i in range(25)})) == "complex"


def test_infer_complexity_agrees_with_edgejson_tiers(edgejson_dir):
    reg = SchemaRegistry.from_dir(edgejson_dir / "schemas")
    assert len(reg) == 25
    assert all(infer_complexity(reg.get(s)) == reg.tier(s) for s in reg.schema_ids)


def test_find_schemas_dir_and_discover(tmp_path, schemas):
    data = tmp_path / "sub"
    data.mkdir()
    write_lines(data / "train.jsonl", [rec(id="a", schema_id="note"), b"oops"])
    assert find_schemas_dir(data / "train.jsonl") == schemas  # in the parent folder
    assert find_schemas_dir(tmp_path / "x.jsonl") == schemas  # beside
    (info,) = discover_datasets([tmp_path])
    assert info.n_examples == 1 and info.schema_ids == ["note"] and info.split == "train"
    assert info.complexity_mix == {"simple": 1} and info.n_findings == 1
