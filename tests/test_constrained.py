"""Schema-constrained decoding with xgrammar on the tiny model and the bundled sample schemas."""

from __future__ import annotations

import pytest

from engine.constrained import compile_grammar, grammar_disagreement, grammar_schema
from engine.decoding import Generator, decoding_from
from engine.metrics import score
from engine.prompt import render_target


@pytest.fixture(scope="module")
def sample(_private_cache):
    from engine.data import SchemaRegistry, load_examples
    from engine.paths import SAMPLE_DIR

    registry = SchemaRegistry.from_dir(SAMPLE_DIR / "schemas")
    examples, seen = [], set()
    for e in load_examples(SAMPLE_DIR / "test.jsonl", registry).examples:
        if e.schema_id not in seen:  # one example per schema
            seen.add(e.schema_id)
            examples.append((e, e.inline_schema or registry.get(e.schema_id)))
    return examples


@pytest.fixture(scope="module")
def generator(_private_cache):
    return Generator("tiny")


def test_lenient_schema_relaxes_date_time_only():
    schema = {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"},
                                                "d": {"type": "string", "format": "date"}}}
    relaxed = grammar_schema(schema, "lenient")
    assert "format" not in relaxed["properties"]["t"] and "pattern" in relaxed["properties"]["t"]
    assert relaxed["properties"]["d"] == {"type": "string", "format": "date"}
    assert grammar_schema(schema, "strict") is schema
    assert schema["properties"]["t"]["format"] == "date-time"  # the input is not modified


def test_constrained_tiny_output_is_schema_valid(generator, sample):
    assert len(sample) >= 5
    items = [(e.prompt, e.schema_id, schema) for e, schema in sample]
    # The random model samples near-uniformly, so strings end by chance; a seed keeps it fixed.
    cfg = decoding_from("sample", ["temperature=1.0", "top_p=1.0", "max_new_tokens=512", "seed=1"])
    outs = generator.generate(items, cfg, constrained=True, batch_size=8)
    finished = 0
    for (example, schema), g in zip(sample, outs):
        result = score(example, g.text, schema, truncated=g.truncated)
        if g.finish == "json_closed":
            finished += 1
            assert result["schema_valid"], (example.schema_id, g.text, result["schema_errors"])
            assert result["failure"] not in ("unparseable", "schema_violation", "truncated")
        else:  # a string still open at the limit: reported as truncated, never as valid
            assert g.finish == "max_tokens" and g.truncated and result["failure"] == "truncated"
    assert finished >= 3
    unconstrained = generator.generate(items, cfg, batch_size=8)
    assert not any(score(e, g.text, s)["schema_valid"] for (e, s), g in zip(sample, unconstrained))


def test_grammar_agrees_with_expected_outputs(generator, sample):
    tok = generator.tokenizer
    for example, schema in sample:
        target = render_target(example.expected)
        assert grammar_disagreement(tok, schema, target, "lenient") is None, example.schema_id
    example, schema = sample[0]
    first = next(iter(example.expected))
    wrong = {**example.expected, first: 12345}  # a string field given a number
    assert "rejects" in grammar_disagreement(tok, schema, render_target(wrong))
    partial = {first: example.expected[first]}
    assert grammar_disagreement(tok, schema, render_target(partial)) is not None


def test_zoneless_date_time_needs_lenient(generator):
    schema = {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}},
              "required": ["t"]}
    target = '{"t": "2024-02-29T18:46:41.5"}'
    tok = generator.tokenizer
    assert grammar_disagreement(tok, schema, target, "lenient") is None
    assert grammar_disagreement(tok, schema, target, "strict") is not None
    assert compile_grammar(tok, schema) is compile_grammar(tok, schema)  # cached
