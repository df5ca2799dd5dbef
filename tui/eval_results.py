"""The Evaluate pane's results tab: an evaluation's header and overall figures, the breakdown by
complexity, and the per-schema table with its sort orders. The report is read in a worker."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Static, TabbedContent

from tui.results import (
    OVERALL_METRICS,
    constrained_label,
    count_of,
    decoding_mode,
    error_message,
    failure_legend,
    failure_short,
    fmt_metric,
    rows_of,
)
from tui.widgets import middle_cut

# Per-schema sort orders the `s` key cycles through: (row key, label); all descending.
SORTS = (
    ("json_exact", "JSONExact"),
    ("field_f1", "field F1"),
    ("schema_valid", "validity"),
    ("n", "count"),
)
SCHEMA_COLUMNS = (
    ("schema_id", "schema"),
    ("n", "n"),
    ("json_exact", "exact"),
    ("field_f1", "field F1"),
    ("leaf_f1", "leaf F1"),
    ("schema_valid", "valid"),
    ("parse_rate", "parses"),
    ("top_failure", "failure"),
)


def read_evaluation(db, run_id: int) -> tuple[dict, dict | None, dict]:
    """(report, run row, evaluations row) of one evaluation; runs in a worker."""
    from engine import runlog
    from engine.evaluate.run import load_report

    report = load_report(db, run_id)
    return report, runlog.get_run(db, run_id), runlog.evaluation(db, run_id) or {}


class ResultsView:
    """Mixin for EvaluatePane: the results tab."""

    def show_run(self, run_id: int) -> None:
        """Open an evaluation's results (overall, by complexity, by schema); read in a worker."""
        run_id = int(run_id)
        self._requested_run = run_id

        def failed(exc: BaseException) -> None:
            self._requested_run = self.run_id
            self.notify(f"evaluation {run_id}: {error_message(exc)}", severity="error")

        self.read(
            lambda db: read_evaluation(db, run_id),
            lambda found: self._apply_run(run_id, *found),
            failed,
        )

    def _apply_run(self, run_id: int, report: dict, run: dict | None, ev: dict) -> None:
        self.run_id = run_id
        self._show_overall(report, run, ev)
        self._show_complexity(report)
        failures = report.get("by_schema_failure") or {}
        self.schema_rows = rows_of(report.get("by_schema"), "schema_id")
        for row in self.schema_rows:
            row.setdefault("n", count_of(row))
            row["top_failure"] = top_failure(failures, row["schema_id"])
        self._fill_schemas()
        self._navigate("ev-results", "#ev-schemas")

    def _show_overall(self, report: dict, run: dict | None, ev: dict) -> None:
        overall = report.get("overall") or {}
        title = Text(f"Evaluation {self.run_id}", style="bold")
        if run is not None:
            config = as_dict(run.get("config"))
            title.append(f"  {run.get('model') or config.get('model', '?')}")
            if run.get("adapter"):
                title.append(f" + {Path(str(run['adapter'])).name}")
            title.append(f"  on {Path(str(run.get('data_path') or '?')).name}")
            decoding = as_dict(ev.get("decoding")) or config.get("decoding") or {}
            constrained = ev.get("constrained", config.get("constrained"))
            title.append(
                f"  {preset_label(decoding)}: {decoding_mode(decoding)}, "
                f"{constrained_label(constrained)}"
            )
            if config.get("protocol") or config.get("prompt_template"):
                title.append(
                    f"  {config.get('protocol') or 'schemalab'} protocol, template "
                    f"{config.get('prompt_template') or 'schemalab'}",
                    style="dim",
                )
            title.append(
                f"  {run.get('status')}",
                style="yellow" if run.get("status") != "completed" else "green",
            )
        line = Text()
        for key, label in OVERALL_METRICS:
            line.append(f"{label} ", style="dim")
            line.append(fmt_metric(key, overall.get(key)) + "   ", style="bold")
        line.append(f"n {count_of(overall)}", style="dim")
        self.query_one("#ev-overall", Static).update(Text("\n").join([title, line]))

    def _show_complexity(self, report: dict) -> None:
        table = self.query_one("#ev-complexity", DataTable)
        table.clear(columns=True)
        table.add_columns("complexity", "n", *(label for _, label in OVERALL_METRICS[:5]))
        for row in rows_of(report.get("by_complexity"), "complexity"):
            table.add_row(
                str(row["complexity"]),
                str(count_of(row)),
                *(fmt_metric(k, row.get(k)) for k, _ in OVERALL_METRICS[:5]),
            )

    def _fill_schemas(self) -> None:
        key, label = SORTS[self.sort_index]
        rows = sorted(self.schema_rows, key=lambda r: (r.get(key) is None, -(r.get(key) or 0)))
        table = self.query_one("#ev-schemas", DataTable)
        table.clear(columns=True)
        for col_key, header in SCHEMA_COLUMNS:
            shown = f"{header} ▼" if col_key == key else header
            table.add_column(shown, key=col_key)
        for row in rows:
            cells = [middle_cut(str(row["schema_id"]), 20), str(row.get("n", 0))]
            cells += [fmt_metric(k, row.get(k)) for k, _ in SCHEMA_COLUMNS[2:-1]]
            cells.append(failure_short(row.get("top_failure")))
            table.add_row(*cells, key=str(row["schema_id"]))
        table.border_title = f"sorted by {label}"
        legend = failure_legend(row.get("top_failure") for row in rows)
        self.query_one("#ev-legend", Static).update(
            Text(f"failure (the most common): {legend}", style="dim") if legend else ""
        )

    def action_sort(self) -> None:
        """Sort the per-schema table by the next of JSONExact / field F1 / validity / count."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._fill_schemas()

    def sort_by_column(self, column: str) -> None:
        keys = [k for k, _ in SORTS]
        if column in keys:
            self.sort_index = keys.index(column)
            self._fill_schemas()

    def _navigate(self, tab: str, focus: str) -> None:
        """Show `tab` and focus `focus` in it."""
        self.query_one("#ev-tabs", TabbedContent).active = tab
        self.query_one(focus).focus()


def preset_label(decoding: dict) -> str:
    """The preset a stored decoding config matches, else "custom"."""
    try:
        from engine.decode.generate import PRESETS
    except ImportError:
        return "?"
    for name, cfg in PRESETS.items():
        if all(decoding.get(k) == v for k, v in cfg.to_dict().items()):
            return name
    return "custom" if decoding else "?"


def top_failure(failures, schema_id: str) -> str:
    """The most common failure category of one schema, from the report's schema x failure table."""
    counts = failures.get(schema_id) if isinstance(failures, dict) else None
    if not counts and isinstance(failures, list):
        counts = {
            r.get("failure"): count_of(r) for r in failures if r.get("schema_id") == schema_id
        }
    counts = {k: v for k, v in (counts or {}).items() if k}
    if not counts:
        return ""
    return max(counts.items(), key=lambda kv: kv[1])[0]


def as_dict(value) -> dict:
    """A stored JSON object (text or already decoded); {} when it is anything else."""
    if isinstance(value, dict):
        return value
    try:
        decoded = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
