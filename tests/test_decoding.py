"""The generation path: presets, batched == unbatched greedy, stop rules, streaming, cancel."""

from __future__ import annotations

import threading

import pytest

from engine.decode.generate import (
    PRESETS,
    Cancelled,
    DecodingError,
    Generator,
    decoding_from,
    resolve_adapter,
)


@pytest.fixture(scope="module")
def generator(_private_cache):
    return Generator("tiny")


@pytest.fixture(scope="module")
def sample_items():
    from engine.data.load import SchemaRegistry, load_examples
    from engine.paths import SAMPLE_DIR

    registry = SchemaRegistry.from_dir(SAMPLE_DIR / "schemas")
    examples = load_examples(SAMPLE_DIR / "test.jsonl", registry).examples[:6]
    return [(e.prompt, e.schema_id, registry.get(e.schema_id)) for e in examples]


class Scripted:
    """Wraps the tiny model so that every row is forced to write `script` (token ids)."""

    def __init__(self, model, script: list[int]):
        self.model, self.script, self.calls = model, script, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, **kwargs):
        out = self.model(**kwargs)
        token = self.script[min(self.calls, len(self.script) - 1)]
        out.logits[:, -1, :] = -1e4
        out.logits[:, -1, token] = 1e4
        self.calls += 1
        return out


def scripted(generator, text: str, eos: bool = False) -> Generator:
    tok = generator.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
    return Generator("tiny", model=Scripted(generator.model, ids), tokenizer=tok)


def test_presets_and_overrides():
    assert PRESETS["greedy"].do_sample is False
    guard = PRESETS["loop-guard"]
    assert (guard.temperature, guard.top_p, guard.repetition_penalty) == (0.2, 0.9, 1.2)
    cfg = decoding_from("loop-guard", ["max_new_tokens=64", "top_k=5", "do_sample=false"])
    assert (cfg.max_new_tokens, cfg.top_k, cfg.do_sample, cfg.temperature) == (64, 5, False, 0.2)
    with pytest.raises(DecodingError, match="key one of"):
        decoding_from("greedy", ["beams=2"])
    with pytest.raises(DecodingError, match="expected a int"):
        decoding_from("greedy", ["max_new_tokens=many"])
    with pytest.raises(DecodingError, match="unknown decoding preset"):
        decoding_from("fast")
    with pytest.raises(DecodingError, match="temperature"):
        decoding_from("greedy", ["temperature=0"])


def test_batched_equals_unbatched_greedy(generator, sample_items):
    cfg = decoding_from("greedy", ["max_new_tokens=20"])
    batched = generator.generate(sample_items, cfg, batch_size=6)
    single = generator.generate(sample_items, cfg, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.n_tokens for g in batched] == [g.n_tokens for g in single]
    assert all(g.n_tokens == 20 and g.truncated for g in batched)


def test_stops_when_the_object_closes(generator, sample_items):
    gen = scripted(generator, 'Sure: {"a": "}{\\"", "b": {"c": 1}} trailing text {"d": 2}')
    out = gen.generate(sample_items[:3], decoding_from("greedy", ["max_new_tokens=200"]))
    for g in out:
        assert g.text == 'Sure: {"a": "}{\\"", "b": {"c": 1}}'
        assert g.finish == "json_closed" and not g.truncated
        assert g.n_tokens < len(gen.model.script)


def test_eos_and_truncation(generator, sample_items):
    out = scripted(generator, "abc def", eos=True).generate(sample_items[:2], decoding_from())
    assert [(g.text, g.finish, g.truncated) for g in out] == [("abc def", "eos", False)] * 2
    gen = scripted(generator, '{"a": "' + "x" * 200)
    g = gen.generate(sample_items[:1], decoding_from("greedy", ["max_new_tokens=10"]))[0]
    assert g.truncated and g.finish == "max_tokens" and g.n_tokens == 10


def test_stream_matches_generate_and_cancels(generator, sample_items):
    cfg = decoding_from("greedy", ["max_new_tokens=12"])
    prompt, schema_id, schema = sample_items[0]
    pieces = list(generator.stream(prompt, schema_id, schema, cfg))
    assert "".join(pieces) == generator.generate([sample_items[0]], cfg)[0].text
    assert generator.last.n_tokens == 12

    stop = threading.Event()
    for _piece in generator.stream(prompt, schema_id, schema, cfg, cancel=stop):
        stop.set()  # cancelling mid-stream ends the stream at the next token
    assert generator.last.finish == "cancelled" and generator.last.n_tokens < 12
    assert list(generator.stream(prompt, schema_id, schema, cfg, cancel=stop)) == []
    assert generator.last.finish == "cancelled"
    with pytest.raises(Cancelled):
        generator.generate(sample_items, cfg, cancel=lambda: True)


def test_sampling_is_seeded(generator, sample_items):
    cfg = decoding_from("loop-guard", ["max_new_tokens=12", "temperature=1.0", "seed=3"])
    a = [g.text for g in generator.generate(sample_items[:3], cfg)]
    b = [g.text for g in generator.generate(sample_items[:3], cfg)]
    assert a == b


def test_resolve_adapter(tmp_path, db_path):
    from engine import runlog

    folder = tmp_path / "run" / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "train", {}, out_dir=str(tmp_path / "run"))
    assert resolve_adapter(str(run_id), db) == (folder, run_id)
    assert resolve_adapter(tmp_path / "run", db) == (folder, None)
    empty = runlog.create_run(db, "train", {}, out_dir=str(tmp_path / "nothing"))
    with pytest.raises(DecodingError, match="no adapter on disk"):
        resolve_adapter(str(empty), db)
    with pytest.raises(DecodingError, match="no run 999"):
        resolve_adapter("999", db)
    with pytest.raises(DecodingError, match="not a training run id"):
        resolve_adapter("no/such/folder", db)


class Looping(Scripted):
    """A model that loops whenever it may: it writes `script` (token ids), and where that token
    is not allowed it prefers to close what is open (`closers`, best first)."""

    def __init__(self, model, script: list[int], closers: list[int]):
        super().__init__(model, script)
        self.closers = closers

    def __call__(self, **kwargs):
        out = self.model(**kwargs)
        logits = out.logits[:, -1, :]
        logits[:] = -1e4
        for rank, token in enumerate(self.closers):
            logits[:, token] = 1e3 - rank
        logits[:, self.script[min(self.calls, len(self.script) - 1)]] = 1e4
        self.calls += 1
        return out


def looping(generator, text: str) -> Generator:
    tok = generator.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    closers = [
        tok(s, add_special_tokens=False)["input_ids"][0] for s in ('"]}', '"}', "]}", "]", "}", '"')
    ]
    return Generator("tiny", model=Looping(generator.model, ids, closers), tokenizer=tok)


TAGS = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["tags"],
}
NOTE = {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]}


@pytest.mark.parametrize(
    "schema, text",
    [(TAGS, '{"tags": [' + '"red", "blue", ' * 60), (NOTE, '{"note": "' + "la la land " * 60)],
    ids=["repeated-items", "repeating-string"],
)
def test_loop_guard_ends_runaway_answers(generator, schema, text):
    import json

    import jsonschema

    cfg = decoding_from("greedy", ["max_new_tokens=150"])
    item = ("Tags: red, blue. Note: la la land.", "loop", schema)
    gen = looping(generator, text)
    gen.loop_guard = False  # without the guard the grammar lets the loop run to the cap
    g = gen.generate([item], cfg, constrained=True)[0]
    assert g.finish == "max_tokens" and g.truncated and g.loop_guard_fired == 0

    g = looping(generator, text).generate([item], cfg, constrained=True)[0]
    assert g.finish == "json_closed" and not g.truncated and g.loop_guard_fired == 1
    value = json.loads(g.text)
    jsonschema.validate(value, schema)
    if "tags" in value:  # closed at the third repeated item
        assert value["tags"] == ["red", "blue", "red", "blue", "red"]
    else:  # closed once a piece repeated three times
        assert value["note"].startswith("la la land la la land la la") and len(value["note"]) < 40
    # Row-wise: an unconstrained row in the same batch is left alone and runs to the cap.
    from engine.decode.generate import _drain

    gen = looping(generator, text)
    prompt = gen.encode(*item)
    both = _drain(gen._run([prompt, prompt], [schema, None], cfg, None, "lenient"))
    assert both[0].text == g.text and both[0].loop_guard_fired == 1
    assert both[1].finish == "max_tokens" and both[1].loop_guard_fired == 0


def test_an_answer_near_the_token_cap_closes_instead_of_being_cut(generator):
    """A long list of distinct items is no loop the guard can see, and used to run to the cap
    (not JSON at all); in the last tokens of the budget the guard closes what is open."""
    import json

    import jsonschema

    from engine.decode.loopguard import wind_down_reserve

    items = ", ".join(f'"item {i}"' for i in range(200))
    prompt = "Items: " + " ".join(f"item {i}" for i in range(200))
    item = (prompt, "list", TAGS)
    cfg = decoding_from("greedy", ["max_new_tokens=150"])
    gen = looping(generator, '{"tags": [' + items)
    gen.loop_guard = False
    g = gen.generate([item], cfg, constrained=True)[0]
    assert g.finish == "max_tokens" and g.truncated

    g = looping(generator, '{"tags": [' + items).generate([item], cfg, constrained=True)[0]
    assert g.finish == "json_closed" and not g.truncated and g.loop_guard_fired == 1
    value = json.loads(g.text)
    jsonschema.validate(value, TAGS)
    assert g.n_tokens <= 150 - wind_down_reserve(150) + 8  # closed within a few tokens
    assert value["tags"][:3] == ["item 0", "item 1", "item 2"]

    # A value string that is still being written ends within a few characters.
    note = '{"note": "' + " ".join(f"word{i}" for i in range(300))
    g = looping(generator, note).generate([(prompt, "note", NOTE)], cfg, constrained=True)[0]
    assert g.finish == "json_closed" and not g.truncated
    jsonschema.validate(json.loads(g.text), NOTE)
