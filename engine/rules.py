"""Arithmetic rules for derived fields, declared as data (YAML) per schema, and a small safe
evaluator for their expressions.

A rules file looks like this (see datasets/README.md for the full syntax):

    tolerance: 0.02
    schemas:
      purchase_order:
        - each: $.line_items              # check every element of this array
          check: line_total
          equals: quantity * unit_price
        - check: total
          equals: (subtotal or sum(line_items[*].line_total)) + (shipping or 0)

Expressions allow numbers, field names (dotted for nested objects), + - * /, parentheses,
`a or b` (a when present, else b: how optional fields get defaults), sum(path[*].field),
sum(path, expression) (the expression evaluated in each element), min, max, abs and round.
Nothing else parses: no attribute tricks, no calls to anything else, no comprehensions.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import REPO_ROOT

BUNDLED_RULES_DIR = REPO_ROOT / "datasets" / "rules"
DEFAULT_TOLERANCE = 0.02
FUNCTIONS = {"sum", "min", "max", "abs", "round"}
RULE_KEYS = {"check", "equals", "each", "tolerance", "description"}
_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
# sum(line_items[*].total) is sugar for sum(line_items, total).
_SUM_STAR = re.compile(r"sum\(\s*([A-Za-z_][\w.]*)\[\*\]\.([A-Za-z_][\w.]*)\s*\)")


class RuleError(ValueError):
    """A rules file that cannot be used; `problems` lists each thing to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Skip(Exception):
    """A value the rule needs is absent (and has no default) or not a number: skip the rule."""


@dataclass(frozen=True)
class Rule:
    schema_id: str
    check: str  # dotted path of the derived field, relative to the scope (root or `each` element)
    equals: str  # the expression, as written
    tree: ast.Expression = field(compare=False, repr=False)
    each: str | None = None  # dotted path of an array whose elements are each checked
    tolerance: float = DEFAULT_TOLERANCE
    description: str | None = None
    source: str | None = None  # the file it came from


@dataclass
class RuleSet:
    """Rules by schema id. `bundled` sets apply only where the schema has every named field."""

    rules: dict[str, list[Rule]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    bundled: bool = False

    def for_schema(self, schema_id: str, schema: dict | None) -> list[Rule]:
        rules = self.rules.get(schema_id, [])
        if self.bundled:
            rules = [r for r in rules if schema is not None and rule_fits(r, schema)]
        return rules


# --- expressions ----------------------------------------------------------------------------


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _check_node(node: ast.AST, text: str) -> None:
    """Reject anything outside the small arithmetic language."""

    def bad(what: str) -> RuleError:
        return RuleError([f"expression {text!r}: {what} is not allowed"])

    if isinstance(node, ast.Expression):
        _check_node(node.body, text)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad(f"the constant {node.value!r}")
    elif isinstance(node, (ast.Name, ast.Attribute)):
        if _dotted(node) is None:
            raise bad("this attribute access")
        if any(part.startswith("_") for part in _dotted(node).split(".")):
            raise bad("a name starting with an underscore")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _OPS:
            raise bad(f"the operator {type(node.op).__name__}")
        _check_node(node.left, text)
        _check_node(node.right, text)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise bad(f"the operator {type(node.op).__name__}")
        _check_node(node.operand, text)
    elif isinstance(node, ast.BoolOp):
        if not isinstance(node.op, ast.Or):
            raise bad("`and`")
        for value in node.values:
            _check_node(value, text)
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords:
            raise bad(f"calling {ast.unparse(node.func)}")
        if name == "sum" and (len(node.args) not in (1, 2) or _dotted(node.args[0]) is None):
            raise bad("sum() other than sum(path[*].field) or sum(path, expression)")
        for arg in node.args:
            _check_node(arg, text)
    else:
        raise bad(type(node).__name__)


def compile_expression(text: str) -> ast.Expression:
    """Parse and vet an expression; raises RuleError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError([f"expression {text!r} is empty"])
    source = _SUM_STAR.sub(r"sum(\1, \2)", text.strip())
    if "[*]" in source:
        raise RuleError(
            [
                (
                    f"expression {text!r}: [*] is only allowed as sum(path[*].field); "
                    "write sum(path, expression) to sum an expression over each element"
                )
            ]
        )
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise RuleError([f"expression {text!r} does not parse: {exc.msg}"]) from None
    _check_node(tree, text)
    return tree


def lookup(scope: Any, dotted: str) -> Any:
    """The value at a dotted path in nested dicts; raises Skip when any part is absent."""
    value = scope
    for part in dotted.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            raise Skip(dotted)
        value = value[part]
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Skip(name)
    return value


def evaluate(tree: ast.AST, scope: dict) -> float:
    """Value of a vetted expression over `scope`; raises Skip when a needed field is absent."""
    node = tree.body if isinstance(tree, ast.Expression) else tree
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        return _number(lookup(scope, name), name)
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left, scope), evaluate(node.right, scope)
        if isinstance(node.op, ast.Div) and right == 0:
            raise Skip("division by zero")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, scope)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BoolOp):  # `a or b`: the first operand that is present
        for value in node.values:
            try:
                return evaluate(value, scope)
            except Skip:
                continue
        raise Skip("no operand of `or` is present")
    if isinstance(node, ast.Call):
        return _call(node, scope)
    raise Skip(f"unsupported {type(node).__name__}")


def _call(node: ast.Call, scope: dict) -> float:
    name = node.func.id
    if name == "sum":
        path = _dotted(node.args[0])
        items = lookup(scope, path)
        if not isinstance(items, list):
            raise Skip(path)
        if len(node.args) == 1:
            return sum(_number(v, path) for v in items)
        if not all(isinstance(item, dict) for item in items):
            raise Skip(path)
        return sum(evaluate(node.args[1], item) for item in items)
    args = [evaluate(arg, scope) for arg in node.args]
    if name == "round":
        return round(*[args[0], int(args[1])] if len(args) > 1 else args)
    return {"min": min, "max": max, "abs": abs}[name](*args)


def named_fields(tree: ast.AST, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field path an expression reads, as tuples ('[]' marks 'each element of')."""
    node = tree.body if isinstance(tree, ast.Expression) else tree
    if isinstance(node, (ast.Name, ast.Attribute)):
        return [prefix + tuple(_dotted(node).split("."))]
    if isinstance(node, ast.Call) and node.func.id == "sum":
        path = prefix + tuple(_dotted(node.args[0]).split("."))
        inner = [named_fields(a, path + ("[]",)) for a in node.args[1:]]
        return [path] + [f for fields in inner for f in fields]
    return [f for child in ast.iter_child_nodes(node) for f in named_fields(child, prefix)]


def _schema_has(schema: dict, parts: tuple[str, ...]) -> bool:
    for part in parts:
        if not isinstance(schema, dict):
            return False
        if part == "[]":
            schema = schema.get("items")
        else:
            schema = (schema.get("properties") or {}).get(part)
        if schema is None:
            return False
    return True


def rule_fits(rule: Rule, schema: dict) -> bool:
    """Whether every field the rule names exists in the schema's properties."""
    prefix = tuple(rule.each.split(".")) + ("[]",) if rule.each else ()
    paths = [prefix + tuple(rule.check.split("."))] + named_fields(rule.tree, prefix)
    return all(_schema_has(schema, p) for p in paths)


# --- rule files -----------------------------------------------------------------------------


def _strip_root(path: str) -> str:
    path = path.strip()
    return path.removeprefix("$.")


def parse_rules(data: Any, source: str) -> RuleSet:
    """A RuleSet from the parsed YAML of a rules file; raises RuleError listing every problem."""
    problems: list[str] = []
    ruleset = RuleSet(sources=[source])
    if not isinstance(data, dict) or not isinstance(data.get("schemas"), dict):
        raise RuleError([f"{source}: expected a mapping with a `schemas:` section"])
    default_tol = data.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(default_tol, bool) or not isinstance(default_tol, (int, float)):
        problems.append(f"{source}: tolerance must be a number")
        default_tol = DEFAULT_TOLERANCE
    for schema_id, entries in data["schemas"].items():
        if not isinstance(entries, list):
            problems.append(f"{source}: schemas.{schema_id} must be a list of rules")
            continue
        for i, entry in enumerate(entries, start=1):
            where = f"{source}: schemas.{schema_id} rule {i}"
            try:
                ruleset.rules.setdefault(str(schema_id), []).append(
                    _parse_rule(entry, str(schema_id), default_tol, source)
                )
            except RuleError as exc:
                problems.extend(f"{where}: {p}" for p in exc.problems)
    if problems:
        raise RuleError(problems)
    return ruleset


def _parse_rule(entry: Any, schema_id: str, default_tol: float, source: str) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError(["a rule must be a mapping with `check` and `equals`"])
    unknown = set(entry) - RULE_KEYS
    if unknown:
        raise RuleError([f"unknown key(s) {', '.join(sorted(unknown))}; use {sorted(RULE_KEYS)}"])
    if not isinstance(entry.get("check"), str) or "equals" not in entry:
        raise RuleError(["a rule needs `check: FIELD` and `equals: EXPRESSION`"])
    check = _strip_root(entry["check"])
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", check):
        raise RuleError([f"check {entry['check']!r} must be a field name or dotted path"])
    each = entry.get("each")
    if each is not None:
        each = _strip_root(str(each)).removesuffix("[*]")
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", each):
            raise RuleError([f"each {entry['each']!r} must be a path to an array, e.g. $.items"])
    tolerance = entry.get("tolerance", default_tol)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise RuleError(["tolerance must be a number >= 0"])
    equals = str(entry["equals"])
    return Rule(
        schema_id,
        check,
        equals,
        compile_expression(equals),
        each,
        float(tolerance),
        entry.get("description"),
        source,
    )


def load_rules(path: str | Path) -> RuleSet:
    """Rules from one YAML file; raises RuleError (file, what is wrong) when unusable."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError([f"cannot read rules file {path}: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuleError([f"rules file {path} is not valid YAML: {exc}"]) from None
    return parse_rules(data, str(path))


def bundled_rules(directory: Path = BUNDLED_RULES_DIR) -> RuleSet:
    """The rule library shipped in datasets/rules/*.yaml; it applies only where it fits."""
    merged = RuleSet(bundled=True)
    for file in sorted(directory.glob("*.yaml")):
        loaded = load_rules(file)
        merged.sources.append(str(file))
        for schema_id, rules in loaded.rules.items():
            merged.rules.setdefault(schema_id, []).extend(rules)
    return merged


def resolve_rules(rules_file: str | Path | None, schemas_dir: str | Path | None) -> RuleSet:
    """`rules_file`; else rules.yaml in the schemas folder; else the bundled library."""
    if rules_file:
        return load_rules(rules_file)
    if schemas_dir and (Path(schemas_dir) / "rules.yaml").is_file():
        return load_rules(Path(schemas_dir) / "rules.yaml")
    return bundled_rules()


# --- checking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    path: str  # JSON path of the derived field, e.g. $.line_items[2].total
    actual: float
    computed: float
    message: str


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def check_rule(rule: Rule, expected: Any) -> list[Violation]:
    """Violations of one rule in one expected output (none when it does not apply)."""
    if rule.each:
        try:
            items = lookup(expected, rule.each)
        except Skip:
            return []
        if not isinstance(items, list):
            return []
        scopes = [(f"$.{rule.each}[{i}].{rule.check}", item) for i, item in enumerate(items)]
    else:
        scopes = [(f"$.{rule.check}", expected)]
    found = []
    for path, scope in scopes:
        if not isinstance(scope, dict):
            continue
        try:
            actual = _number(lookup(scope, rule.check), rule.check)
            computed = evaluate(rule.tree, scope)
        except (Skip, OverflowError, TypeError):
            continue
        diff = actual - computed
        if abs(diff) > rule.tolerance + 1e-9:
            found.append(
                Violation(
                    path,
                    actual,
                    computed,
                    (
                        f"{path[2:]} is {_fmt(actual)}, expected {_fmt(computed)} "
                        f"({rule.description or rule.check + ' = ' + rule.equals}): off by "
                        f"{_fmt(abs(diff))} (tolerance {_fmt(rule.tolerance)}); fix the derived number "
                        "or its parts"
                    ),
                )
            )
    return found
