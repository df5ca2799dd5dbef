"""Schema-constrained decoding with xgrammar on the tiny model and the bundled sample schemas."""

from __future__ import annotations

import pytest

from engine.decode.generate import Generator, decoding_from
from engine.decode.grammar import compile_grammar, grammar_disagreement, grammar_schema
from engine.decode.prompt import render_target
from engine.evaluate.metrics import score


@pytest.fixture(scope="module")
def sample(_private_cache):
    from engine.data.load import SchemaRegistry, load_examples
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
    schema = {
        "type": "object",
        "properties": {
            "t": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "date"},
        },
    }
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
    schema = {
        "type": "object",
        "properties": {"t": {"type": "string", "format": "date-time"}},
        "required": ["t"],
    }
    target = '{"t": "2024-02-29T18:46:41.5"}'
    tok = generator.tokenizer
    assert grammar_disagreement(tok, schema, target, "lenient") is None
    assert grammar_disagreement(tok, schema, target, "strict") is not None
    assert compile_grammar(tok, schema) is compile_grammar(tok, schema)  # cached


# ------------------------------------------------------------------ the loop guard


def scan(text: str, prompt: str = "", tok=None):
    """A JsonScanner fed `text` (token by token when a tokenizer is given, as decoding does)."""
    from engine.decode.loopguard import JsonScanner

    scanner = JsonScanner(prompt)
    pieces = (
        [tok.decode([t]) for t in tok(text, add_special_tokens=False)["input_ids"]]
        if tok
        else [text]
    )
    for piece in pieces:
        scanner.feed(piece)
    return scanner


def test_token_effects_find_separator_commas():
    from engine.decode.loopguard import token_effects

    assert token_effects(",") == (False, [{0}, set(), set()])
    assert token_effects(" ,")[1][0] == {0}
    quote, commas = token_effects('",')  # closes a string, then a separator
    assert quote and commas[1] == {0} and commas[0] == set()  # outside a string `",` opens one
    assert token_effects('"},')[1][1] == {1}  # closes the string and its object, then a separator
    assert token_effects("}, {")[1][0] == {1}
    assert token_effects('{"a": 1, ')[1][0] == set()  # a comma inside a new object is not ours
    assert token_effects("a,b")[1] == [{0}, set(), set()]  # inside a string a comma is text
    assert token_effects('",')[1][2] == set()  # after a backslash the quote is escaped
    assert token_effects('\\",')[1][1] == set() and token_effects('\\",')[1][2] == {0}
    assert token_effects('"abc') == (True, [set(), set(), set()])


def test_repeated_array_items_forbid_the_separator(generator):
    tok = generator.tokenizer
    scanner = scan('{"tags": ["a", "b", "a", "b"', tok=tok)
    assert scanner.restriction() is None and scanner.fired == 0  # two repeats: still allowed
    scanner.feed(', "c')
    assert scanner.restriction() is None
    scanner = scan('{"tags": ["a", "b", "a", "b", "a', tok=tok)
    # Closing this string would be the third repeat: `",` may not add a sixth item in one token.
    assert scanner.restriction() == (1, [0], "") and scanner.fired == 0
    scanner.feed('"')  # the third repeat
    assert scanner.fired == 1 and "repeats" in scanner.reasons[0]
    assert scanner.restriction() == (0, [0], "")  # after the item: no `,` at this depth
    # Objects repeating: flagged on the fourth copy; inside the next one `},` is what is forbidden.
    scanner = scan('{"xs": [{"a": 1}, {"a": 1}, {"a": 1}, {"a": 1', tok=tok)
    assert scanner.fired == 0 and scanner.restriction() == (0, [1], "")  # `},` would repeat
    scanner.feed('}, {"a": 1')
    assert scanner.fired == 1 and scanner.restriction() == (0, [1], "")
    scanner = scan('{"xs": [1, 1, 1, 1, 1', tok=tok)  # numbers end at the separator
    assert scanner.restriction() == (0, [0], "")
    scanner.feed("]}")
    assert scanner.restriction() is None  # the flagged array is closed


def test_repeated_object_key_closes_the_object(generator):
    tok = generator.tokenizer
    # Seen on EdgeJSON: `"errors": [...], "errors": [...], ...` until the token cap.
    scanner = scan('{"meta": {"errors": [{"m": "x"}], "version": "1", "errors": [', tok=tok)
    assert scanner.fired == 1 and "repeats key 'errors'" in scanner.reasons[0]
    assert scanner.restriction() == (0, [1], "")  # no separator in `meta` once this value ends
    scanner.feed('{"m": "x"}]}')
    assert scanner.restriction() is None  # the looping object is closed
    # The same key in sibling objects is no loop.
    fine = scan('{"xs": [{"a": 1, "b": 2}, {"a": 1, "b": 3}], "a": 1', tok=tok)
    assert fine.fired == 0 and fine.restriction() is None


def test_repeating_string_allows_only_the_closing_quote(generator):
    tok = generator.tokenizer
    scanner = scan('{"note": "la la land la la land la la land', tok=tok)
    assert scanner.fired == 1 and scanner.restriction() == (1, [], "string")
    scanner.feed('"')
    assert scanner.restriction() is None
    # The same text in the prompt is no loop: the value may copy it.
    quoted = scan('{"note": "la la land la la land la la land', prompt="la la land " * 3, tok=tok)
    assert quoted.restriction() is None and quoted.fired == 0
    # Keys are never checked; a string after a backslash is left alone until the escape ends.
    escaped = scan('{"note": "' + "abcdefgh" * 3 + "\\", tok=tok)
    assert escaped.fired == 1 and escaped.restriction() is None  # `"` now would be escaped
    escaped.feed("n")
    assert escaped.restriction() == (1, [], "string")


def test_bounds_from_the_prompt():
    from engine.decode.loopguard import MIN_ITEMS, JsonScanner

    prompt = "Note: " + " ".join(f"w{i}" for i in range(20))  # 21 words, 125 characters
    scanner = JsonScanner(prompt)
    assert scanner.max_items == 21 and scanner.max_string == len(prompt)
    assert JsonScanner("hi").max_items == MIN_ITEMS
    scanner.feed('{"n": [' + ", ".join(str(i) for i in range(20)))
    assert scanner.restriction() is None
    scanner.feed(", ")  # the 21st item begins: no separator after it
    assert scanner.restriction() == (0, [0], "") and "21 items" in scanner.reasons[0]
    text = "".join(chr(ord("a") + (i * 7) % 26) + str(i) for i in range(60))  # never repeats
    scanner = JsonScanner(prompt)
    scanner.feed('{"s": "' + text[: len(prompt)])
    assert scanner.restriction() is None
    scanner.feed(text[len(prompt) : len(prompt) + 1])
    assert (
        scanner.restriction() == (1, [], "string")
        and "longer than the prompt" in scanner.reasons[0]
    )


def test_runaway_number_must_end(generator):
    from engine.decode.loopguard import MAX_NUMBER

    scanner = scan('{"n": -' + "1" * (MAX_NUMBER - 1), tok=generator.tokenizer)
    assert scanner.restriction() is None
    scanner.feed("2")
    assert scanner.restriction() == (0, [], "number") and scanner.fired == 1
    scanner.feed("}")
    assert scanner.restriction() is None


def test_normal_answers_pass_untouched(generator, sample):
    tok = generator.tokenizer
    for example, _schema in sample:
        scanner = scan("", prompt=example.prompt)
        for t in tok(render_target(example.expected), add_special_tokens=False)["input_ids"]:
            assert scanner.restriction() is None, example.schema_id
            scanner.feed(tok.decode([t]))
        assert scanner.fired == 0 and not scanner.stack


def test_guard_masks_logits_and_never_leaves_none(generator):
    import torch

    from engine.decode.loopguard import LoopGuard, token_table

    tok, vocab = generator.tokenizer, generator.vocab_size
    table = token_table(tok, vocab)
    assert token_table(tok, vocab) is table  # cached per tokenizer
    comma, bracket, quote_close = (
        tok(s, add_special_tokens=False)["input_ids"][0] for s in (",", "]", '",')
    )
    guard = LoopGuard(tok, [True, True, False], ["", "", ""], vocab)
    for row in range(3):
        guard.feed(row, '{"tags": ["a", "a", "a", "a"')
    logits = torch.zeros((3, vocab))
    logits[1] = float("-inf")
    logits[1, comma] = 0.0  # the grammar allows only `,`: the guard must not leave nothing
    guard.apply(logits, [0, 1, 2])
    assert logits[0, comma] == float("-inf") and logits[0, bracket] == 0.0
    assert logits[0, quote_close] == 0.0  # from outside a string, `",` opens one: no separator
    assert logits[1, comma] == 0.0  # kept as the grammar had it
    assert torch.all(logits[2] == 0.0)  # unconstrained row: untouched
    assert guard.fired(0) == 1 and guard.fired(2) == 0
    # Only active rows are passed: row 0 finished, rows 1 and 2 remain in logits rows 0 and 1.
    logits = torch.zeros((2, vocab))
    guard.apply(logits, [1, 2])
    assert logits[0, comma] == float("-inf") and torch.all(logits[1] == 0.0)


def test_a_looping_string_that_may_not_close_yet_stops_repeating(generator):
    """An email stuck before its `@` (the pattern forbids the closing quote): seen on EdgeJSON as
    `"reveal_range_range_range...` until the token cap. The guard then forbids the pieces of the
    repeat instead, so the model must write something else (the `@`)."""
    import torch

    from engine.decode.loopguard import LoopGuard

    tok, vocab = generator.tokenizer, generator.vocab_size
    prompt = "Meeting with Jean Gray (christian38@example.net) about the range. " * 3
    guard = LoopGuard(tok, [True], [prompt], vocab)
    for t in tok('{"email": "reveal' + "_range" * 6, add_special_tokens=False)["input_ids"]:
        guard.feed(0, tok.decode([t]))
    scanner = guard.scanners[0]
    assert scanner.restriction() == (1, [], "string") and scanner.repeat_unit
    repeat = tok("_range", add_special_tokens=False)["input_ids"][0]
    at = tok("@", add_special_tokens=False)["input_ids"][0]
    logits = torch.full((1, vocab), float("-inf"))
    logits[0, repeat], logits[0, at] = 5.0, 1.0  # the grammar allows no quote here
    guard.apply(logits, [0])
    assert logits[0, repeat] == float("-inf") and logits[0, at] == 1.0
    # With nothing but the repeat allowed, the grammar's own mask is kept (never no token).
    logits = torch.full((1, vocab), float("-inf"))
    logits[0, repeat] = 5.0
    guard.apply(logits, [0])
    assert logits[0, repeat] == 5.0


def test_a_forced_string_that_slips_into_a_new_repeat_has_that_one_forbidden_too(generator):
    """Seen on EdgeJSON: with `_range` forbidden, an email stuck before its `@` went on with
    `.email.email...` to the token cap. Every repeat of the string is forbidden in turn."""
    import torch

    from engine.decode.loopguard import LoopGuard

    tok, vocab = generator.tokenizer, generator.vocab_size
    prompt = "Meeting with Jean Gray (christian38@example.net) about the range. " * 3
    guard = LoopGuard(tok, [True], [prompt], vocab)
    text = '{"email": "reveal' + "_range" * 6 + ".email" * 8
    for t in tok(text, add_special_tokens=False)["input_ids"]:
        guard.feed(0, tok.decode([t]))
    scanner = guard.scanners[0]
    assert len(scanner.repeat_units) == 2 and scanner.fired == 1
    logits = torch.full((1, vocab), float("-inf"))
    pieces = {s: tok(s, add_special_tokens=False)["input_ids"][0] for s in ("_range", ".", "@")}
    for i, token in enumerate(pieces.values()):
        logits[0, token] = 5.0 - i
    guard.apply(logits, [0])
    assert logits[0, pieces["_range"]] == float("-inf") and logits[0, pieces["."]] == float("-inf")
    assert logits[0, pieces["@"]] == 3.0
