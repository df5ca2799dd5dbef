"""The one JSON toolkit every part of the engine (and the TUI) uses:

- strict parsing (`loads_strict`: no NaN or Infinity), JSON types and JSON equality;
- JSON paths in one spelling: `$.items[0].sku`, and `$["unit-price"]` for a key that is not an
  identifier (`key_path`, `json_path`, `parse_path`), so a diff's path, a finding's path and
  the viewer's highlight of it always agree;
- one leaf walker (`walk_leaves`, with each leaf's sub-schema);
- the date-time pattern, the format checker (`lenient` accepts a date-time without a time
  zone) and one cache of compiled schema validators;
- a character-level lexer (`JsonLexer`) for code that follows JSON text as it is generated (the
  stop rule, the loop guard), and `json_object_end`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

FORMATS = ("lenient", "strict")

# ---------------------------------------------------------------- parsing, types, equality


class NonFiniteNumber(ValueError):
    """`NaN`, `Infinity`, `-Infinity` or an overflowing number: Python's json accepts them, JSON
    does not."""


def _reject_constant(name: str):
    raise NonFiniteNumber(f"{name} is not JSON (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NonFiniteNumber(f"{text} overflows a JSON number (it would read as Infinity)")
    return value


# Strict JSON: refuses NaN/Infinity (json.loads accepts them by default).
DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads_strict(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and numbers that overflow to infinity."""
    return DECODER.decode(text)


def json_type(value: Any) -> str:
    """JSON type name; integers and floats are both `number`."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), booleans apart from numbers, key order ignored."""
    ta, tb = json_type(a), json_type(b)
    if ta != tb:
        return False
    if ta == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if ta == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------- paths

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def key_path(path: str, key: Any) -> str:
    """`path` extended by an object key: `$.name`, or `$["unit-price"]` for a key that is not
    an identifier."""
    key = str(key)
    return f"{path}.{key}" if _IDENT.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def index_path(path: str, index: int) -> str:
    return f"{path}[{int(index)}]"


def json_path(parts: Any) -> str:
    """The path of a sequence of keys and indices (a jsonschema error's `absolute_path`)."""
    out = "$"
    for part in parts:
        out = index_path(out, part) if isinstance(part, int) else key_path(out, part)
    return out


def parse_path(path: str) -> list[str | int] | None:
    """The keys and indices of a path in this module's spelling; None when it is not one."""
    if not path.startswith("$"):
        return None
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return parts


def walk_leaves(value: Any, path: str = "$", schema: Any = None) -> Iterator[tuple[str, Any, dict]]:
    """(path, value, sub-schema) for every leaf under `value`: scalars, and empty objects and
    arrays (they have no leaves of their own). List items are addressed by position."""
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict) and value:
        props = schema.get("properties") or {}
        for key, item in value.items():
            yield from walk_leaves(item, key_path(path, key), props.get(key))
    elif isinstance(value, list) and value:
        items = schema.get("items")
        for i, item in enumerate(value):
            yield from walk_leaves(item, index_path(path, i), items)
    else:
        yield path, value, schema


# ---------------------------------------------------------------- formats and validators

# A date-time with the zone optional (EdgeJSON writes many without one); strict RFC 3339 needs it.
# Also the pattern the constrained grammar uses, so fields are range-checked; optional groups
# are written {0,1} because xgrammar 0.2.8 misreads a group followed by `?`.
LENIENT_DATE_TIME = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9]([.][0-9]+){0,1}([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]){0,1}$"
)
_LENIENT_DATE_TIME = re.compile(LENIENT_DATE_TIME)


def lenient_date_time(value: Any) -> bool:
    """A date-time, the time zone optional, on a real calendar date (non-strings pass, as
    format checks do)."""
    if not isinstance(value, str):
        return True
    if not _LENIENT_DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value[:19].replace("t", "T").replace(" ", "T"))  # ValueError if not
    return True


def format_checker(formats: str = "lenient"):
    """Draft-07 format checks; `lenient` accepts date-times without a time zone (RFC 3339 wants
    one, but data sets routinely write local times without it)."""
    import jsonschema

    if formats not in FORMATS:
        raise ValueError(f"formats must be one of {FORMATS}, not {formats!r}")
    checker = jsonschema.FormatChecker()
    checker.checkers = dict(jsonschema.Draft7Validator.FORMAT_CHECKER.checkers)
    if formats == "lenient":
        checker.checks("date-time", raises=ValueError)(lenient_date_time)
    return checker


_VALIDATORS: dict[tuple[str, str], Any] = {}


def validator(schema: dict, formats: str = "lenient"):
    """The compiled draft-07 validator of `schema` with format checks, cached by content. It
    fetches nothing: a reference outside the schema fails as unresolvable."""
    import jsonschema

    from engine.data.load import no_fetch_registry

    key = (json.dumps(schema, sort_keys=True), formats)
    found = _VALIDATORS.get(key)
    if found is None:
        found = jsonschema.Draft7Validator(
            schema, format_checker=format_checker(formats), registry=no_fetch_registry()
        )
        _VALIDATORS[key] = found
    return found


# ---------------------------------------------------------------- following text as it grows

# What a character is, as JsonLexer.step reads it.
OTHER, IN_STRING, QUOTE_OPEN, QUOTE_CLOSE, OPEN, CLOSE, COMMA, COLON = range(8)
_STRUCTURAL = {"{": OPEN, "[": OPEN, "}": CLOSE, "]": CLOSE, ",": COMMA, ":": COLON}


class JsonLexer:
    """Whether JSON text fed one character at a time is inside a string (backslash escapes
    respected), and what each character outside strings is. Start inside a string, or just
    after a backslash in one, with `in_string` / `escaped`."""

    __slots__ = ("escaped", "in_string")

    def __init__(self, in_string: bool = False, escaped: bool = False) -> None:
        self.in_string = in_string
        self.escaped = escaped

    def step(self, ch: str, quote_opens: bool = True) -> int:
        """The class of `ch` (OTHER, IN_STRING, QUOTE_OPEN, QUOTE_CLOSE, OPEN, CLOSE, COMMA,
        COLON), moving past it. With `quote_opens` False a `"` outside strings is OTHER (text
        around a JSON value, where quotes are prose)."""
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif ch == "\\":
                self.escaped = True
            elif ch == '"':
                self.in_string = False
                return QUOTE_CLOSE
            return IN_STRING
        if ch == '"':
            if not quote_opens:
                return OTHER
            self.in_string = True
            return QUOTE_OPEN
        return _STRUCTURAL.get(ch, OTHER)


def json_object_end(text: str) -> int | None:
    """Index just past the `}` closing the first top-level brace pair in `text` (strings and
    escapes respected, quotes before the first `{` taken as prose, content not checked), or
    None."""
    lexer, depth = JsonLexer(), 0
    for i, ch in enumerate(text):
        kind = lexer.step(ch, depth > 0)
        if kind == OPEN and ch == "{":
            depth += 1
        elif kind == CLOSE and ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def is_json_object(candidate: str) -> bool:
    try:
        return isinstance(loads_strict(candidate), dict)
    except (ValueError, RecursionError):
        return False
