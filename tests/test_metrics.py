"""Every metric of engine.evaluate.metrics on hand-made cases."""

from __future__ import annotations

import pytest

from engine.data.types import Example
from engine.decode.stop import JsonCloseTracker
from engine.evaluate import metrics as m

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "qty": {"type": "integer"},
        "price": {"type": "number"},
        "when": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "items": {"type": "object"}},
        "meta": {"type": "object"},
    },
    "required": ["name", "qty"],
}


def test_parse_plain_and_text_around():
    assert m.parse_output('{"a": 1}') == ({"a": 1}, None)
    parsed, err = m.parse_output('Sure! Here it is: {"a": {"b": "}"}} and more {"c": 2}')
    assert parsed == {"a": {"b": "}"}} and err is None


def test_parse_skips_broken_candidate_and_reports_reasons():
    parsed, _ = m.parse_output('{oops} then {"ok": true}')
    assert parsed == {"ok": True}
    assert m.parse_output("")[1] == "empty output"
    assert "no '{'" in m.parse_output("no json here")[1]
    parsed, err = m.parse_output('{"a": 1, "b": [1, 2')
    assert parsed is None and "unterminated" in err
    parsed, err = m.parse_output('{"a": 1,, "b": 2}')
    assert parsed is None and "invalid JSON" in err
    # A list is not an object.
    assert m.parse_output("[1, 2]")[0] is None


def test_json_object_end_respects_strings_and_escapes():
    text = '{"a": "x\\"}{", "b": {"c": 1}} tail'
    end = m.json_object_end(text)
    assert text[:end] == '{"a": "x\\"}{", "b": {"c": 1}}'
    assert m.json_object_end('{"a": {"b": 1}') is None
    assert m.json_object_end('say "hi" {"a": 1}') == len('say "hi" {"a": 1}')


def test_int_float_equal_but_bool_is_not_a_number():
    assert m.json_equal({"a": 1}, {"a": 1.0})
    assert not m.json_equal({"a": True}, {"a": 1})
    assert not m.json_equal([1, 2], [2, 1])
    assert m.json_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order does not matter
    s = m.score({"qty": 2}, '{"qty": 2.0}')
    assert s["json_exact"] and s["failure"] is None


def test_field_f1_counts_key_with_matching_value():
    expected = {"a": 1, "b": "x", "c": {"d": 1}}
    got = {"a": 1, "b": "y", "c": {"d": 1}, "e": 5}
    p, r, f = m.field_prf(expected, got)
    assert p == pytest.approx(2 / 4) and r == pytest.approx(2 / 3)
    assert f == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
    assert m.field_prf({}, {}) == (1.0, 1.0, 1.0)
    assert m.field_prf({"a": 1}, {}) == (0.0, 0.0, 0.0)


def test_leaf_f1_nested_and_lists_by_position():
    expected = {"a": {"b": 1, "c": [{"x": 1}, {"x": 2}]}, "d": "z"}
    got = {"a": {"b": 1, "c": [{"x": 2}, {"x": 2}]}, "d": "z"}
    assert set(m.leaves(expected)) == {"$.a.b", "$.a.c[0].x", "$.a.c[1].x", "$.d"}
    p, r, f = m.leaf_prf(expected, got)
    assert p == pytest.approx(3 / 4) and r == pytest.approx(3 / 4)
    # The top-level field "a" is wrong as a whole, so field F1 is lower than leaf F1.
    assert m.field_prf(expected, got)[2] < f


def test_compliance_is_loose():
    assert m.compliance({"a": 1, "b": "x"}, {"a": 2.5, "b": "y", "extra": 1})
    assert not m.compliance({"a": 1, "b": "x"}, {"a": 1})
    assert not m.compliance({"a": "1"}, {"a": 1})
    assert not m.compliance({"a": 1}, None)


def test_schema_valid_and_format_strictness():
    ok = {"name": "n", "qty": 1, "when": "2024-01-02T03:04:05"}
    assert m.schema_errors(ok, SCHEMA, "lenient") == []
    assert any("date-time" in e for e in m.schema_errors(ok, SCHEMA, "strict"))
    assert m.schema_errors({**ok, "when": "2024-13-02T03:04:05"}, SCHEMA, "lenient")
    assert m.has_zoneless_date_times(ok, SCHEMA)
    assert not m.has_zoneless_date_times({**ok, "when": "2024-01-02T03:04:05Z"}, SCHEMA)
    assert m.schema_errors({"name": "n", "qty": "1"}, SCHEMA)


def test_diff_kinds_and_grounding():
    prompt = "Order for ACME  corp: 1,500 units at 2.50 each."
    expected = {"name": "ACME Corp", "qty": 1500, "items": [{"a": 1}], "meta": {"k": "v"}}
    got = {"name": "acme corp", "qty": 1200, "items": [{"a": 1}, {"a": 2}], "meta": "v", "x": "y"}
    entries = {e["path"]: e for e in m.diff(expected, got, prompt)}
    assert entries["$.name"]["kind"] == "wrong_value" and entries["$.name"]["ungrounded"] is False
    assert entries["$.qty"]["kind"] == "wrong_value" and entries["$.qty"]["ungrounded"] is True
    assert entries["$.items[1]"]["kind"] == "extra"
    assert entries["$.meta"]["kind"] == "wrong_type"
    assert entries["$.x"]["kind"] == "extra" and entries["$.x"]["ungrounded"] is True
    # A number written with a thousands separator in the prompt is grounded.
    assert m.grounded(1500, prompt) and m.grounded(2.5, prompt)
    missing = m.diff({"a": 1}, {}, prompt)
    assert missing == [
        {"path": "$.a", "expected": 1, "got": None, "kind": "missing", "ungrounded": None}
    ]


@pytest.mark.parametrize(
    ("output", "truncated", "expected_failure"),
    [
        ('{"name": "n", "qty": 1', True, "truncated"),
        ('{"name": "n", "qty": 1}', True, "truncated"),  # truncation wins over everything
        ("nothing", False, "unparseable"),
        ('{"name": "n", "qty": "1"}', False, "schema_violation"),
        ('{"name": "n", "qty": 1}', False, "missing_field"),
        ('{"name": "n", "qty": 1, "price": 2, "meta": {}}', False, "extra_field"),
        # The schema allows any price, so a string "2" is a wrong type, not a schema violation.
        ('{"name": "n", "qty": 1, "price": "2"}', False, "wrong_type"),
        ('{"name": "m", "qty": 1, "price": 2}', False, "wrong_value"),
    ],
)
def test_failure_category_order(output, truncated, expected_failure):
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "price": {}}}
    expected = {"name": "n", "qty": 1, "price": 2}
    assert m.score(expected, output, schema, truncated=truncated)["failure"] == expected_failure


def test_missing_beats_extra_and_exact_is_not_a_failure():
    expected = {"name": "n", "qty": 1}
    result = m.score(expected, '{"name": "n", "price": 3}', None)
    assert result["failure"] == "missing_field" and result["schema_valid"] is None
    result = m.score(expected, 'prefix {"qty": 1, "name": "n"} suffix', SCHEMA)
    assert result["json_exact"] and result["failure"] is None and result["schema_valid"]


def test_score_with_example_uses_its_prompt():
    ex = Example(id="1", schema_id="s", prompt="Name: Bob", expected={"name": "Bob", "qty": 1})
    result = m.score(ex, '{"name": "Rob", "qty": 1}', SCHEMA)
    assert result["failure"] == "wrong_value"
    assert result["diff"][0]["ungrounded"] is True
    assert result["field_precision"] == 0.5 and result["compliance"]
    unparsed = m.score(ex, '{"name": ', SCHEMA)
    assert unparsed["failure"] == "unparseable" and unparsed["schema_valid"] is False
    assert unparsed["leaf_f1"] == 0.0 and unparsed["parse_error"]


def test_validation_and_evaluation_agree_on_grounding():
    """The data check and the model diff use one definition of "written in the prompt"."""
    from engine.data.validate import ungrounded_values

    prompt = "Status: Full-Time, pay $1,250.50, ref A-12"
    expected = {"status": "full time", "pay": 1250.5, "ref": 12, "city": "Oslo"}
    flagged = {path for path, _, _ in ungrounded_values(prompt, expected)}
    assert flagged == {"$.city"}
    for key, value in expected.items():
        assert m.grounded(value, prompt) is (f"$.{key}" not in flagged)


# ---------------------------------------------------------------- defects found against the harness


@pytest.mark.parametrize(
    "output",
    [
        '[{"name": "n", "qty": 1}]',
        'Here it is: [ {"name": "n", "qty": 1} ]',
        '[{"name": "n", "qty": 1}, {"name": "m"',
    ],
)
def test_an_object_wrapped_in_an_array_is_not_the_object(output):
    parsed, err = m.parse_output(output)
    assert parsed is None and "wrapped in an array" in err
    s = m.score({"name": "n", "qty": 1}, output, SCHEMA)
    assert not s["json_exact"] and s["failure"] == "unparseable" and s["schema_valid"] is False
    assert s["field_f1"] == 0.0 and not s["compliance"]


def test_other_json_values_are_not_objects():
    assert "JSON string" in m.parse_output('"{\\"a\\": 1}"')[1]
    assert "JSON number" in m.parse_output("42")[1]


def test_a_truncated_output_does_not_parse_as_an_inner_fragment():
    parsed, err = m.parse_output('{"a": {"b": 1}, "c": {')
    assert parsed is None and "unterminated" in err
    parsed, err = m.parse_output('Sure: {"items": [{"sku": "A1"}, {"sku": "B2"}], "total": ')
    assert parsed is None and "unterminated" in err
    # A complete object before an unterminated one still counts (the first complete object).
    assert m.parse_output('{"a": 1} and then {"b": ')[0] == {"a": 1}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_not_json(constant):
    output = '{"name": "n", "qty": ' + constant + "}"
    parsed, err = m.parse_output(output)
    assert parsed is None and "JSON" in err
    s = m.score({"name": "n", "qty": 1}, output, SCHEMA)
    assert s["schema_valid"] is False and s["failure"] == "unparseable"
    with pytest.raises(ValueError):
        m.loads_strict(output)


def test_a_value_with_nan_parsed_elsewhere_is_never_schema_valid():
    s = m.score_parsed(
        {"name": "n", "price": 1.0},
        {"name": "n", "qty": 1, "price": float("nan")},
        None,
        {**SCHEMA, "properties": {**SCHEMA["properties"]}},
    )
    assert s["schema_valid"] is False and "$.price" in s["schema_errors"][0]
    assert m.non_finite_errors({"a": [1.0, float("inf")]}) == ["$.a[1]: inf is not a JSON number"]


def feed_in_pieces(tracker, text, size):
    for i in range(0, len(text), size):
        closed = tracker.feed(text[i : i + size])
        if closed is not None:
            return closed
    return None


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_tracker_skips_a_brace_pair_in_prose(size):
    text = 'Fields {title, body} follow: {"title": "a}{", "body": {"x": 1}} and {"z": 2}'
    closed = feed_in_pieces(JsonCloseTracker(), text, size)
    assert text[:closed] == 'Fields {title, body} follow: {"title": "a}{", "body": {"x": 1}}'
    # NaN inside an object makes it no JSON object either: the next one closes.
    text = '{"a": NaN} {"a": 1} tail'
    assert text[: feed_in_pieces(JsonCloseTracker(), text, size)] == '{"a": NaN} {"a": 1}'


def test_tracker_without_require_json_stops_at_the_first_pair():
    tracker = JsonCloseTracker(require_json=False)
    assert tracker.feed("Fields {title, body} follow") == len("Fields {title, body}")
    assert m.json_object_end("{oops} {}") == len("{oops}")
    # A candidate spanning pieces is decoded whole when it closes.
    tracker, head, rest = JsonCloseTracker(), '{"a": {"b": 1}, "c": {', '"d": 2}} tail'
    assert tracker.feed(head) is None and tracker.feed(rest) == len(head) + len('"d": 2}}')
