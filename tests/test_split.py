"""`schemalab split`: stratified by schema, no prompt on both sides, lines copied unchanged."""

import json

import pytest

from engine.cli import main
from engine.data.split import SplitError, split_file


def _write(path, records, extra=b""):
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + extra)


def _records():
    out = []
    for schema, n in (("a", 10), ("b", 20), ("c", 5)):
        for i in range(n):
            out.append(
                {
                    "id": f"{schema}{i}",
                    "schema_id": schema,
                    "prompt": f"text {schema} {i}",
                    "expected_output": {"i": i},
                }
            )
    # the same prompt twice (spacing and case differ): both must land on one side
    out.append({"id": "dup1", "schema_id": "a", "prompt": "Same  prompt", "expected_output": {}})
    out.append({"id": "dup2", "schema_id": "a", "prompt": "same prompt", "expected_output": {}})
    return out


def test_split_is_stratified_and_never_shares_a_prompt(tmp_path):
    data = tmp_path / "d.jsonl"
    _write(data, _records(), extra=b"not json\n")
    res = split_file(data, 0.2, seed=1)
    train = [json.loads(x) for x in res.train_path.read_text().splitlines()]
    test = [json.loads(x) for x in res.test_path.read_text().splitlines()]
    assert len(train) + len(test) == 37 and res.skipped and ":" in res.skipped[0]
    for schema, total in (("a", 12), ("b", 20), ("c", 5)):
        n_test = sum(r["schema_id"] == schema for r in test)
        assert 1 <= n_test <= round(total * 0.2) + 1

    def prompts(rows):
        return {" ".join(r["prompt"].lower().split()) for r in rows}

    assert not prompts(train) & prompts(test)
    # lines are copied byte for byte and the same seed gives the same split
    original = set(data.read_bytes().splitlines())
    assert set(res.train_path.read_bytes().splitlines()) <= original
    again = split_file(
        data, 0.2, seed=1, train_out=tmp_path / "t2.jsonl", test_out=tmp_path / "s2.jsonl"
    )
    assert again.test_path.read_bytes() == res.test_path.read_bytes()


def test_split_refuses_to_overwrite_and_bad_fractions(tmp_path):
    data = tmp_path / "d.jsonl"
    _write(data, _records())
    split_file(data, 0.2)
    with pytest.raises(SplitError, match="already exists"):
        split_file(data, 0.2)
    with pytest.raises(SplitError, match="between 0 and 1"):
        split_file(data, 1.5, overwrite=True)


def test_split_cli(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    _write(data, _records())
    code = main(["split", str(data), "--test-fraction", "0.25", "--seed", "3", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert (
        code == 0
        and out["n_train"] + out["n_test"] == 37
        and set(out["by_group"]) == {"a", "b", "c"}
    )
    assert main(["split", str(tmp_path / "missing.jsonl")]) == 2
