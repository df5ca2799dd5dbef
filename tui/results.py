"""Widgets and formatting shared by the Playground and Evaluate panes: metric cells, the
path-level diff of one output against its expected JSON, and one example's full detail.

Everything here only formats what the engine computed; nothing here scores anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

# The metric columns every evaluation view shows, in order: (key, header).
OVERALL_METRICS = (
    ("json_exact", "JSONExact"),
    ("field_f1", "field F1"),
    ("leaf_f1", "leaf F1"),
    ("schema_valid", "valid"),
    ("parse_rate", "parses"),
    ("tokens_per_s", "tok/s"),
)


def as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def fmt_ratio(value: Any) -> str:
    """A 0..1 rate as a percentage with one decimal; "-" when absent."""
    number = as_float(value)
    return "-" if number is None else f"{100 * number:.1f}%"


def fmt_metric(key: str, value: Any) -> str:
    number = as_float(value)
    if number is None:
        return "-"
    if key in ("tokens_per_s",):
        return f"{number:.1f}"
    if key in ("n", "count", "n_examples"):
        return str(int(number))
    return fmt_ratio(number)


def fmt_delta(key: str, value: Any) -> Text:
    """A difference between two evaluations: green when it went up, red when down."""
    number = as_float(value)
    if number is None:
        return Text("-", style="dim")
    if key == "tokens_per_s":
        label = f"{number:+.1f}"
    elif key in ("n", "count", "n_examples"):
        label = f"{int(number):+d}"
    else:
        label = f"{100 * number:+.1f}"
    style = "green" if number > 1e-9 else "red" if number < -1e-9 else "dim"
    return Text(label, style=style)


def yes_no(value: Any) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("yes", style="green") if bool(value) else Text("no", style="red")


def rows_of(table: Any, key_name: str) -> list[dict]:
    """A breakdown as a list of dicts whether the engine gave {key: {...}} or [{key_name: ...}]."""
    if isinstance(table, dict):
        rows = []
        for key, value in table.items():
            row = dict(value) if isinstance(value, dict) else {"value": value}
            row.setdefault(key_name, key)
            rows.append(row)
        return rows
    return [dict(r) for r in table or [] if isinstance(r, dict)]


def count_of(row: dict) -> int:
    for key in ("n", "count", "n_examples"):
        if row.get(key) is not None:
            return int(row[key])
    return 0


def loads(value: Any) -> Any:
    """A JSON column of runs.db decoded, or the value itself when it is not JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def pretty_json(value: Any) -> str:
    value = loads(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


# Failure categories in a word each, for narrow columns (a legend says what they stand for).
FAILURE_SHORT = {
    "truncated": "trunc",
    "unparseable": "unparse",
    "schema_violation": "schema",
    "missing_field": "missing",
    "extra_field": "extra",
    "wrong_type": "type",
    "wrong_value": "value",
}


def failure_short(failure: str | None) -> str:
    return FAILURE_SHORT.get(failure or "", failure or "")


def failure_legend(failures) -> str:
    """`schema = schema_violation, value = wrong_value` for the abbreviations in `failures`."""
    present = set(failures)
    used = [f for f in FAILURE_SHORT if f in present]
    return ", ".join(f"{FAILURE_SHORT[f]} = {f}" for f in used)


def decoding_mode(decoding: dict | None) -> str:
    """`greedy` or `sampling T=0.7` from a decoding config mapping; `?` when unknown."""
    if not decoding:
        return "?"
    if not decoding.get("do_sample"):
        return "greedy"
    temperature = decoding.get("temperature")
    return f"sampling T={temperature:g}" if isinstance(temperature, (int, float)) else "sampling"


def preset_mode(preset: str) -> str:
    """`greedy` or `sampling T=…` for a decoding preset's name (from the engine's presets)."""
    try:
        from engine.decode.generate import PRESETS
    except ImportError:
        return "greedy" if preset == "greedy" else "?"
    cfg = PRESETS.get(preset)
    return decoding_mode(cfg.to_dict()) if cfg is not None else "?"


def constrained_label(constrained: Any) -> str:
    return "constrained" if constrained else "unconstrained"


def short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def diff_table(diff: Iterable[dict] | None, parse_error: str | None = None) -> Table | Text:
    """The path-level diff as a table; an "ungrounded" tag marks a value absent from the prompt.
    An output that does not parse has no paths to compare: `parse_error` says why."""
    rows = list(loads(diff) or [])
    if not rows and parse_error:
        return Text(f"no path diff: the output does not parse ({parse_error})", style="red")
    if not rows:
        return Text("no differences", style="green")
    table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
    table.add_column("path", ratio=3, overflow="fold")
    table.add_column("expected", ratio=3, overflow="fold")
    table.add_column("got", ratio=3, overflow="fold")
    table.add_column("kind", width=11, no_wrap=True)  # fixed: wrong_value is never cut
    for row in rows:
        kind = Text(str(row.get("kind", "")), style="yellow")
        if row.get("message"):  # a schema error: its message says what is wrong
            table.add_row(
                Text(str(row.get("path", "$")), style="cyan"),
                Text(str(row["message"]), style="red"),
                "",
                kind,
            )
            continue
        if row.get("ungrounded"):
            kind.append("\n")
            kind.append("ungrounded", style="bold white on red")
        missing = Text("—", style="dim")
        expected = short(row["expected"], 60) if row.get("expected") is not None else missing
        got = short(row["got"], 60) if row.get("got") is not None else missing
        table.add_row(Text(str(row.get("path", "$")), style="cyan"), expected, got, kind)
    return table


class DiffView(Static):
    """The path-level diff of one output against its expected JSON."""

    def show(self, diff: Iterable[dict] | None, parse_error: str | None = None) -> None:
        self.update(diff_table(diff, parse_error))


class ExampleDetail(VerticalScroll):
    """One prediction in full: scores, prompt, expected JSON, the model's output and the diff."""

    DEFAULT_CSS = """
    ExampleDetail { height: 1fr; }
    ExampleDetail > Static { margin-bottom: 1; }
    """

    def compose(self):
        yield Static("Select an example to see its prompt, output and diff.", id="detail-body")

    def show(self, pred: dict) -> None:
        header = Text.assemble(
            (f"{pred.get('example_id', '?')}", "bold"),
            f"  schema {pred.get('schema_id', '?')}  ",
            ("exact " if pred.get("json_exact") else "not exact ", "bold"),
            f"field F1 {fmt_ratio(pred.get('field_f1'))}  valid ",
            yes_no(pred.get("schema_valid")),
            "  failure ",
            (str(pred.get("failure") or "none"), "magenta"),
        )
        got = Text(pred.get("output_text") or "")
        if pred.get("parse_error"):
            got.append(f"\n(does not parse: {pred['parse_error']})", style="red")
        expected = loads(pred.get("expected"))
        # The diff first: it is what a person drilling into a failure came for.
        body = Group(
            header,
            Text("Diff", style="bold underline"),
            diff_table(pred.get("diff"), pred.get("parse_error")),
            Text(""),
            Text("Got", style="bold underline"),
            got,
            Text(""),
            Text("Expected", style="bold underline"),
            Text(
                expected if isinstance(expected, str) else json.dumps(expected, ensure_ascii=False)
            ),
            Text(""),
            Text("Prompt", style="bold underline"),
            Text(str(pred.get("prompt") or "")),
        )
        self.query_one("#detail-body", Static).update(body)
        self.scroll_home(animate=False)


def error_message(exc: BaseException) -> str:
    """One line a person can act on, from an engine error (never a traceback)."""
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, (FileNotFoundError, OSError)) and getattr(exc, "filename", None):
        text = f"{exc.filename}: {exc.strerror or text}"
    return text.splitlines()[0] if len(text) > 300 else text
