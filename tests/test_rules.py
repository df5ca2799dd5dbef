"""Arithmetic rules as data: the safe expression evaluator, rule files, and where rules apply."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.data.rules import (
    RuleError,
    Skip,
    bundled_rules,
    check_rule,
    compile_expression,
    evaluate,
    load_rules,
    parse_rules,
    resolve_rules,
    rule_fits,
)


def ev(text, scope):
    return evaluate(compile_expression(text), scope)


def rules_of(yaml_text, schema_id="po"):
    return parse_rules(yaml.safe_load(yaml_text), "test.yaml").rules[schema_id]


ORDER = {
    "items": [{"qty": 2, "price": 1.5, "total": 3.0}, {"qty": 1, "price": 4.0, "off": 50}],
    "tax": 0.5,
    "budget": {"allocated": 10, "spent": 4},
}


def test_arithmetic_names_and_nested_paths():
    assert ev("2 * (3 + 4) - 10 / 4", {}) == pytest.approx(11.5)
    assert ev("-tax + budget.allocated - budget.spent", ORDER) == pytest.approx(5.5)


def test_or_gives_defaults_for_absent_fields():
    assert ev("(shipping or 0) + tax", ORDER) == 0.5
    assert ev("tax or 99", ORDER) == 0.5
    with pytest.raises(Skip):
        ev("shipping + tax", ORDER)


def test_sum_forms():
    assert ev("sum(items[*].qty)", ORDER) == 3
    assert ev("sum(items, qty * price * (1 - (off or 0) / 100))", ORDER) == pytest.approx(5.0)
    assert ev("sum(items, total or qty * price)", ORDER) == pytest.approx(7.0)
    with pytest.raises(Skip):  # the second item has no total and no default
        ev("sum(items[*].total)", ORDER)
    assert ev("max(1, abs(-3)) + round(2.346, 2) + min(tax, 9)", ORDER) == pytest.approx(5.85)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "items.__class__",
        "open('x')",
        "(lambda: 1)()",
        "[1, 2][0]",
        "a if b else c",
        "2 ** 8",
        "'text'",
        "True",
        "a and b",
        "items[0]",
        "sum(x for x in items)",
        "sum(items[*].qty * items[*].price)",
        "print(1)",
        "a.b()",
        "",
        "1 +",
    ],
)
def test_unsafe_or_unsupported_expressions_are_rejected(text):
    with pytest.raises(RuleError):
        compile_expression(text)


def test_each_rule_reports_path_and_both_numbers():
    (rule,) = rules_of("""
schemas:
  po:
    - each: $.line_items
      check: total
      equals: quantity * unit_price
""")
    doc = {
        "line_items": [
            {"quantity": 2, "unit_price": 5, "total": 10.01},
            {"quantity": 3, "unit_price": 5, "total": 16},
            {"quantity": 3, "unit_price": 5},
        ]
    }
    (v,) = check_rule(rule, doc)
    assert v.path == "$.line_items[1].total" and v.actual == 16 and v.computed == 15
    assert "16" in v.message and "15" in v.message and "off by 1" in v.message


def test_total_is_checked_when_subtotal_is_absent():
    rules = rules_of("""
tolerance: 0.05
schemas:
  po:
    - check: subtotal
      equals: sum(items[*].total)
    - check: grand
      equals: (subtotal or sum(items[*].total)) + (tax or 0)
      tolerance: 0.5
""")
    assert rules[0].tolerance == 0.05 and rules[1].tolerance == 0.5
    doc = {"items": [{"total": 3}, {"total": 4}], "grand": 9}
    assert check_rule(rules[0], doc) == []  # nothing to check
    (v,) = check_rule(rules[1], doc)
    assert v.computed == 7 and v.path == "$.grand"
    assert check_rule(rules[1], {**doc, "tax": 2}) == []
    assert check_rule(rules[1], {**doc, "grand": "nine"}) == []  # not a number: skipped


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("schemas: {po: [{check: total}]}", "equals"),
        ("schemas: {po: [{check: total, equals: '1', colour: red}]}", "unknown key"),
        ("schemas: {po: [{check: total, equals: 'os.system(1)'}]}", "not allowed"),
        ("schemas: {po: [{check: 'a b', equals: '1'}]}", "field name"),
        ("schemas: {po: [{check: t, equals: '1', tolerance: -1}]}", "tolerance"),
        ("schemas: {po: {check: t}}", "list"),
        ("rules: []", "schemas"),
    ],
)
def test_bad_rule_files_say_what_is_wrong(text, fragment):
    with pytest.raises(RuleError) as info:
        parse_rules(yaml.safe_load(text), "r.yaml")
    assert fragment in str(info.value) and "r.yaml" in str(info.value)


def test_load_rules_file_errors(tmp_path):
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schemas: [unclosed")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules(bad)


def test_rule_fits_only_schemas_that_have_every_named_field():
    (rule, total) = rules_of("""
schemas:
  po:
    - {each: $.items, check: total, equals: qty * price}
    - {check: grand, equals: 'sum(items, qty * price) + (tax or 0)'}
""")
    item = {"type": "object", "properties": {"qty": {}, "price": {}, "total": {}}}
    schema = {"properties": {"items": {"type": "array", "items": item}, "grand": {}, "tax": {}}}
    assert rule_fits(rule, schema) and rule_fits(total, schema)
    del item["properties"]["price"]
    assert not rule_fits(rule, schema) and not rule_fits(total, schema)


def test_bundled_rules_apply_only_where_they_fit():
    lib = bundled_rules()
    assert lib.bundled and {"invoice", "order_details", "shopping_cart"} <= set(lib.rules)
    unrelated = {"type": "object", "properties": {"number": {}, "amount": {}}}
    assert lib.for_schema("invoice", unrelated) == []
    assert lib.for_schema("invoice", None) == []


def test_resolve_rules_order(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("schemas: {a: [{check: x, equals: '1'}]}")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    assert resolve_rules(None, schemas).bundled  # nothing beside the schemas: the library
    (schemas / "rules.yaml").write_text("schemas: {b: [{check: x, equals: '2'}]}")
    beside = resolve_rules(None, schemas)
    assert set(beside.rules) == {"b"} and not beside.bundled
    # A user's rules apply to their schema ids without the fit check.
    assert beside.for_schema("b", None)
    assert set(resolve_rules(own, schemas).rules) == {"a"}


# --- bounded work: a rules file beside the data loads without being asked for -----------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("round(7, -100000000)", "round()'s digits"),  # took minutes per example
        ("round(total, 2.5)", "round()'s digits"),
        ("round()", "round() takes 1 to 2 arguments"),  # was skipped without a word
        ("abs(a, b)", "abs() takes 1 arguments"),
        ("min(total)", "min() takes 2 to 50 arguments"),
        ("1" * 400, "larger than"),  # a 400-digit constant: OverflowError before
        ("1e999 * total", "larger than"),
        ("+".join(["a"] * 600), "characters long"),  # a long sum: RecursionError before
        ("+".join(["a"] * 300), "levels deep"),
        ("-" * 900 + "a", "levels deep"),  # a deep unary chain
        ("abs(" * 180 + "a" + ")" * 180, "deep"),
    ],
)
def test_expressions_that_would_take_unbounded_work_are_refused(text, fragment):
    with pytest.raises(RuleError) as info:
        compile_expression(text)
    assert fragment in str(info.value)


def test_a_rule_that_cannot_be_computed_raises_rule_failure():
    from engine.data.rules import RuleFailure

    (digits, huge, overflow, fine) = rules_of("""
schemas:
  po:
    - {check: total, equals: 'round(amount, digits)'}
    - {check: total, equals: 'amount * 2'}
    - {check: total, equals: 'amount * amount * amount'}
    - {check: total, equals: 'round(amount, 2)'}
""")
    with pytest.raises(RuleFailure, match="digits are -1e"):
        check_rule(digits, {"amount": 7, "digits": -100_000_000, "total": 7})
    with pytest.raises(RuleFailure, match="too large"):
        check_rule(huge, {"amount": 10**400, "total": 1})
    with pytest.raises(RuleFailure, match="too large"):
        check_rule(overflow, {"amount": 1e200, "total": 1})
    assert check_rule(fine, {"amount": 2.004, "total": 2.0}) == []


def test_failing_rules_beside_the_data_are_findings_on_the_rule(tmp_path):
    from engine.data.validate import validate_files

    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "po.json").write_text('{"type": "object"}')
    rules = schemas / "rules.yaml"
    rules.write_text("""
schemas:
  po:
    - {check: total, equals: 'round(amount, digits)'}
    - {check: total, equals: 'amount * amount', description: squared}
    - {check: total, equals: 'amount + 1'}
""")
    rows = [
        {
            "id": f"r{i}",
            "schema_id": "po",
            "prompt": "x",
            "expected_output": {"amount": amount, "digits": -100_000_000, "total": 5},
        }
        for i, amount in enumerate([1e200, 10**400, 4])
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = validate_files([data])
    failed = [f for f in report.findings if f.kind == "invalid_rules"]
    assert len(failed) == 3 and all(f.file == str(rules) for f in failed)
    first, second, third = sorted(f.message for f in failed)
    assert "schemas.po rule 1 (total = round(amount, digits))" in first
    assert "on 3 examples (first r0, d.jsonl:1)" in first and "digits" in first
    assert "schemas.po rule 2" in second and "on 2 examples" in second
    assert "schemas.po rule 3" in third and "on 1 example (first r1" in third
    assert "too large" in third
    # Where a rule can be computed it is still checked.
    arithmetic = [f for f in report.findings if f.kind == "arithmetic"]
    assert sorted(f.example_id for f in arithmetic) == ["r0", "r2"]
    assert all(len(f.message) < 400 for f in report.findings)
