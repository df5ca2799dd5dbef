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

A rules file beside the data is loaded without being asked for, so the evaluator's work is
bounded: expressions are short and shallow, constants and `round` digits are small, and every
number is computed as a float (no unbounded integer arithmetic). A rule that still cannot be
computed raises RuleFailure, which validation reports as a finding on the rule.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import REPO_ROOT

BUNDLED_RULES_DIR = REPO_ROOT / "datasets" / "rules"
DEFAULT_TOLERANCE = 0.02
# Bounds on what a rule may ask of the evaluator (see the module docstring).
MAX_EXPRESSION_CHARS = 1000
MAX_EXPRESSION_DEPTH = 40  # nesting of operators, calls and parentheses
MAX_CONSTANT = 1e15  # largest constant written in a rule
MAX_ROUND_DIGITS = 15  # round(x, n) needs -15 <= n <= 15
ARITY = {"sum": (1, 2), "round": (1, 2), "abs": (1, 1), "min": (2, 50), "max": (2, 50)}
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


class RuleFailure(Exception):
    """A rule that cannot be computed on a document (a result too large, a bad `round`
    digit count): a problem of the rule, reported on it, never a crash."""


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
    number: int | None = None  # its position in the schema's list of rules (1-based)

    def where(self) -> str:
        """`FILE: schemas.ID rule N (check = equals)`, to name the rule in a finding."""
        head = f"{self.source}: " if self.source else ""
        number = f" rule {self.number}" if self.number else ""
        return f"{head}schemas.{self.schema_id}{number} ({self.check} = {_clip(self.equals)})"


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            raise bad(f"the constant {_clip(repr(node.value), 40)}")
        if not abs(node.value) <= MAX_CONSTANT:  # also refuses inf and nan
            raise bad(f"the constant {_clip(repr(node.value), 40)} (larger than {MAX_CONSTANT:g})")
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
            raise bad(f"calling {_clip(ast.unparse(node.func), 40)}")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise bad("*arguments")
        if name == "sum" and (len(node.args) not in (1, 2) or _dotted(node.args[0]) is None):
            raise bad("sum() other than sum(path[*].field) or sum(path, expression)")
        low, high = ARITY[name]
        if not low <= len(node.args) <= high:
            wanted = f"{low}" if low == high else f"{low} to {high}"
            raise RuleError(
                [(f"expression {text!r}: {name}() takes {wanted} arguments, not {len(node.args)}")]
            )
        if name == "round" and len(node.args) == 2:
            digits = node.args[1]
            if isinstance(digits, ast.UnaryOp) and isinstance(digits.operand, ast.Constant):
                digits = ast.Constant(
                    -digits.operand.value
                    if isinstance(digits.op, ast.USub)
                    else digits.operand.value
                )
            if isinstance(digits, ast.Constant) and not (
                isinstance(digits.value, int) and abs(digits.value) <= MAX_ROUND_DIGITS
            ):
                raise RuleError(
                    [
                        (
                            f"expression {text!r}: round()'s digits must be a whole "
                            f"number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}"
                        )
                    ]
                )
        for arg in node.args:
            _check_node(arg, text)
    else:
        raise bad(type(node).__name__)


def _depth(tree: ast.AST) -> int:
    """Nesting depth of a syntax tree, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_expression(text: str) -> ast.Expression:
    """Parse and vet an expression; raises RuleError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError([f"expression {text!r} is empty"])
    if len(text) > MAX_EXPRESSION_CHARS:
        raise RuleError(
            [
                (
                    f"expression {_clip(text, 60)!r} is {len(text)} characters long; "
                    f"keep it under {MAX_EXPRESSION_CHARS}"
                )
            ]
        )
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
        raise RuleError([f"expression {_clip(text)!r} does not parse: {exc.msg}"]) from None
    except (RecursionError, MemoryError, ValueError):
        raise RuleError([f"expression {_clip(text)!r} is nested too deeply to read"]) from None
    # The tree has a few nodes per level of the expression (Expression, BinOp, operator, ...).
    if _depth(tree) > 2 * MAX_EXPRESSION_DEPTH:
        raise RuleError(
            [
                (
                    f"expression {_clip(text)!r} nests more than {MAX_EXPRESSION_DEPTH} "
                    "levels deep; split it into simpler rules"
                )
            ]
        )
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
    """A field's value as a float; Skip when it is not a number, RuleFailure when it is too
    large for a float (a 400-digit integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Skip(name)
    try:
        number = float(value)
    except OverflowError:
        raise RuleFailure(f"{name} is too large a number to compute with") from None
    if not math.isfinite(number):
        raise Skip(name)
    return number


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise RuleFailure("the result is too large to compute (not a finite number)")
    return value


def evaluate(tree: ast.AST, scope: dict) -> float:
    """Value of a vetted expression over `scope`; raises Skip when a needed field is absent."""
    node = tree.body if isinstance(tree, ast.Expression) else tree
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        return _number(lookup(scope, name), name)
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left, scope), evaluate(node.right, scope)
        if isinstance(node.op, ast.Div) and right == 0:
            raise Skip("division by zero")
        return _finite(_OPS[type(node.op)](left, right))
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
            return _finite(sum(_number(v, path) for v in items))
        if not all(isinstance(item, dict) for item in items):
            raise Skip(path)
        return _finite(sum(evaluate(node.args[1], item) for item in items))
    args = [evaluate(arg, scope) for arg in node.args]
    if name == "round":
        if len(args) == 1:
            return float(round(args[0]))
        digits = args[1]
        if digits != int(digits) or abs(digits) > MAX_ROUND_DIGITS:
            raise RuleFailure(
                f"round()'s digits are {digits:g}, not a whole number from "
                f"-{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}"
            )
        return round(args[0], int(digits))
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
    if not _is_tolerance(default_tol):
        problems.append(f"{source}: tolerance must be a finite number >= 0")
        default_tol = DEFAULT_TOLERANCE
    for schema_id, entries in data["schemas"].items():
        if not isinstance(entries, list):
            problems.append(f"{source}: schemas.{schema_id} must be a list of rules")
            continue
        for i, entry in enumerate(entries, start=1):
            where = f"{source}: schemas.{schema_id} rule {i}"
            try:
                ruleset.rules.setdefault(str(schema_id), []).append(
                    _parse_rule(entry, str(schema_id), default_tol, source, i)
                )
            except RuleError as exc:
                problems.extend(f"{where}: {p}" for p in exc.problems)
    if problems:
        raise RuleError(problems)
    return ruleset


def _is_tolerance(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and 0 <= value <= MAX_CONSTANT
    )


def _parse_rule(
    entry: Any, schema_id: str, default_tol: float, source: str, number: int | None = None
) -> Rule:
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
    if not _is_tolerance(tolerance):
        raise RuleError(["tolerance must be a finite number >= 0"])
    equals = str(entry["equals"])
    description = entry.get("description")
    return Rule(
        schema_id,
        check,
        equals,
        compile_expression(equals),
        each,
        float(tolerance),
        _clip(description, 200) if description is not None else None,
        source,
        number,
    )


def load_rules(path: str | Path) -> RuleSet:
    """Rules from one YAML file; raises RuleError (file, what is wrong) when unusable."""
    import yaml

    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark at the start is not content.
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise RuleError([f"cannot read rules file {path}: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuleError([f"rules file {path} is not valid YAML: {_clip(str(exc), 300)}"]) from None
    except RecursionError:
        raise RuleError([f"rules file {path} is nested too deeply to read"]) from None
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
    if abs(value) >= 1e12:
        return f"{value:.6g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def check_rule(rule: Rule, expected: Any) -> list[Violation]:
    """Violations of one rule in one expected output (none when it does not apply).

    Raises RuleFailure when the rule cannot be computed on this output (a result too large
    for a float, round() digits out of range): a problem with the rule, for its author."""
    return list(iter_violations(rule, expected))


def iter_violations(rule: Rule, expected: Any):
    """check_rule's violations one at a time, so a caller can stop or count without keeping
    one message per element of a huge array."""
    if rule.each:
        try:
            items = lookup(expected, rule.each)
        except Skip:
            return
        if not isinstance(items, list):
            return
        scopes = ((f"$.{rule.each}[{i}].{rule.check}", item) for i, item in enumerate(items))
    else:
        scopes = iter([(f"$.{rule.check}", expected)])
    for path, scope in scopes:
        if not isinstance(scope, dict):
            continue
        try:
            actual = _number(lookup(scope, rule.check), rule.check)
            computed = evaluate(rule.tree, scope)
        except Skip:
            continue
        except RuleFailure as exc:
            raise RuleFailure(f"at {path}: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, RecursionError, MemoryError) as exc:
            raise RuleFailure(f"at {path}: {type(exc).__name__}: {_clip(str(exc))}") from None
        diff = actual - computed
        if abs(diff) > rule.tolerance + 1e-9:
            yield Violation(
                path,
                actual,
                computed,
                (
                    f"{path[2:]} is {_fmt(actual)}, expected {_fmt(computed)} "
                    f"({rule.description or rule.check + ' = ' + _clip(rule.equals)}): off by "
                    f"{_fmt(abs(diff))} (tolerance {_fmt(rule.tolerance)}); fix the derived number "
                    "or its parts"
                ),
            )
