"""The one JSON toolkit: one path spelling shared by the diff, validation findings and the
viewer's highlight; one leaf walker; one validator cache; the lexer the stop rule and the loop
guard share."""

from __future__ import annotations

import pytest

from engine import jsontools as jt

PRICED = {"sku": "A-1", "unit-price": 2.5, "lines": [{"unit price": 7}]}


def test_paths_have_one_spelling():
    assert jt.json_path(["items", 0, "sku"]) == "$.items[0].sku"
    assert jt.json_path(["unit-price"]) == '$["unit-price"]'
    assert jt.key_path("$.lines[0]", "unit price") == '$.lines[0]["unit price"]'
    for parts in (["items", 0, "sku"], ["unit-price"], ['a"b', 3, "é"]):
        assert jt.parse_path(jt.json_path(parts)) == parts
    assert jt.parse_path("items.sku") is None


def test_a_diff_path_and_its_highlight_agree_for_a_key_that_is_not_an_identifier():
    """The diff spelled `$.unit-price` while the JSON viewer spells `$["unit-price"]`, so the
    path of a wrong value did not highlight anything."""
    from engine.evaluate.metrics import diff, leaves, schema_errors
    from tui.widgets import json_lines

    got = {**PRICED, "unit-price": 3.0, "lines": [{"unit price": 2}]}
    paths = [entry["path"] for entry in diff(PRICED, got)]
    assert paths == ['$["unit-price"]', '$.lines[0]["unit price"]']
    _text, spans = json_lines(got)
    assert all(path in spans for path in paths)
    assert set(leaves(PRICED)) <= set(spans)
    schema = {"type": "object", "properties": {"unit-price": {"type": "string"}}}
    errors = schema_errors(PRICED, schema)
    assert errors and errors[0].startswith('$["unit-price"]: ') and '$["unit-price"]' in spans


@pytest.mark.anyio
async def test_the_viewer_highlights_a_diff_path():
    from textual.app import App

    from engine.evaluate.metrics import diff
    from tui.widgets import JsonView

    class ViewApp(App):
        def compose(self):
            yield JsonView(id="view")

    got = {**PRICED, "unit-price": 3.0}
    app = ViewApp()
    async with app.run_test() as pilot:
        view = app.query_one(JsonView)
        line = view.show(got, [entry["path"] for entry in diff(PRICED, got)])
        await pilot.pause()
        assert view.highlighted == ['$["unit-price"]'] and line == 2


def test_validation_and_scoring_share_the_leaf_walker_and_validators():
    from engine.data.validate import ungrounded_values

    schema = {"type": "object", "properties": {"unit-price": {"type": "number"}}}
    assert [p for p, _v, _s in jt.walk_leaves(PRICED, "$", schema)] == [
        "$.sku",
        '$["unit-price"]',
        '$.lines[0]["unit price"]',
    ]
    leaf_schemas = {p: s for p, _v, s in jt.walk_leaves(PRICED, "$", schema)}
    assert leaf_schemas['$["unit-price"]'] == {"type": "number"}
    assert [p for p, _v, _e in ungrounded_values("sku A-1 costs 2.50", PRICED, schema)] == [
        '$.lines[0]["unit price"]'
    ]
    assert jt.validator(schema) is jt.validator(dict(schema))  # cached by content
    assert jt.validator(schema, "strict") is not jt.validator(schema)


def test_lenient_date_times_and_the_grammar_pattern_agree():
    check = jt.format_checker("lenient")
    for ok in ("2024-05-01T10:00:00", "2024-05-01 10:00:00.5+02:00", "2024-05-01t10:00:00Z"):
        assert check.conforms(ok, "date-time")
    for bad in ("2024-02-30T10:00:00", "2024-13-01T10:00:00", "2024-05-01T24:00:00", "soon"):
        assert not check.conforms(bad, "date-time")
    assert not jt.format_checker("strict").conforms("2024-05-01T10:00:00", "date-time")


@pytest.mark.parametrize(
    "text, end",
    [
        ('say "hi" {"a": "}"} tail', len('say "hi" {"a": "}"}')),
        ('{"a": "\\"}"}', len('{"a": "\\"}"}')),
        ('{"a": [1, {"b": 2}]', None),
    ],
)
def test_json_object_end(text, end):
    assert jt.json_object_end(text) == end


def test_the_lexer_classifies_characters_inside_and_outside_strings():
    lexer = jt.JsonLexer()
    kinds = [lexer.step(ch) for ch in '{"a\\"":[1,2]}']
    assert kinds == [
        jt.OPEN,
        jt.QUOTE_OPEN,
        jt.IN_STRING,
        jt.IN_STRING,
        jt.IN_STRING,
        jt.QUOTE_CLOSE,
        jt.COLON,
        jt.OPEN,
        jt.OTHER,
        jt.COMMA,
        jt.OTHER,
        jt.CLOSE,
        jt.CLOSE,
    ]
    assert jt.JsonLexer(in_string=True, escaped=True).step('"') == jt.IN_STRING
