"""The Evaluate pane's past evaluations and comparison: the list of evaluations in the run log,
marking two as A and B, and B minus A laid out (overall, per schema, flipped examples). The run
log is read in workers."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Static, TabbedContent

from tui.eval_results import as_dict, preset_label
from tui.results import error_message, fmt_delta, fmt_ratio, short


def read_history(db) -> list[tuple[dict, dict]]:
    """(run, its evaluations row) for every evaluation, newest first; runs in a worker."""
    from engine import runlog

    scores = runlog.evaluations_by_run(db)
    return [(run, scores.get(run["id"], {})) for run in runlog.list_runs(db, kind="eval")]


class HistoryAndCompare:
    """Mixin for EvaluatePane: the past evaluations and compare tabs."""

    def refresh_history(self) -> None:
        """List every evaluation in runs.db, newest first (read in a worker)."""
        self.read(read_history, self._fill_history)

    def _fill_history(self, runs: list[tuple[dict, dict]]) -> None:
        table = self.query_one("#ev-history-table", DataTable)
        table.clear(columns=True)
        table.add_columns(
            "", "id", "status", "model", "adapter", "data", "decoding", "n", "JSONExact", "field F1"
        )
        for run, ev in runs:
            config = as_dict(run.get("config"))
            decoding = preset_label(as_dict(ev.get("decoding")) or config.get("decoding") or {})
            constrained = ev.get("constrained") or config.get("constrained")
            decoding = f"{decoding}, {'constr.' if constrained else 'unconstr.'}"
            table.add_row(
                self._mark_label(run["id"]),
                str(run["id"]),
                str(run.get("status")),
                short(str(run.get("model") or ev.get("model") or ""), 20),
                short(Path(str(run.get("adapter") or "")).name or "-", 16),
                Path(str(run.get("data_path") or ev.get("data_path") or "")).name,
                decoding,
                str(ev.get("n_examples") or "-"),
                fmt_ratio(ev.get("json_exact")),
                fmt_ratio(ev.get("field_f1")),
                key=str(run["id"]),
            )

    def _mark_label(self, run_id: int) -> Text:
        if run_id in self.marked:
            return Text("AB"[self.marked.index(run_id)], style="bold reverse")
        return Text(" ")

    def action_history(self) -> None:
        """Show the list of past evaluations."""
        self.refresh_history()
        self._navigate("ev-history", "#ev-history-table")

    def _highlighted_history_run(self) -> int | None:
        table = self.query_one("#ev-history-table", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value)

    def action_mark(self) -> None:
        """Mark the highlighted past evaluation as A or B for Compare (again to unmark)."""
        if self.query_one("#ev-tabs", TabbedContent).active != "ev-history":
            self.action_history()
            return
        run_id = self._highlighted_history_run()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = (self.marked + [run_id])[-2:]
        table = self.query_one("#ev-history-table", DataTable)
        for rid in table.rows:
            table.update_cell(rid, table.ordered_columns[0].key, self._mark_label(int(rid.value)))

    def action_compare(self, a: int | None = None, b: int | None = None) -> None:
        """Compare the two marked evaluations (A, then B) side by side."""
        if a is None or b is None:
            if len(self.marked) != 2:
                self.notify(
                    "Mark two evaluations with m in Past evaluations first.", severity="warning"
                )
                self.action_history()
                return
            a, b = self.marked
        self.compare(a, b)

    def compare(self, a: int, b: int) -> None:
        """B minus A by engine.evaluate.run.compare (read in a worker), in the Compare tab."""
        from engine.evaluate.run import compare

        a, b = int(a), int(b)

        def failed(exc: BaseException) -> None:
            self.notify(f"compare {a} with {b}: {error_message(exc)}", severity="error")

        self.read(lambda db: compare(db, a, b), self._show_compare, failed)

    def _show_compare(self, result: dict) -> None:
        fill_compare(self, result)
        self._navigate("ev-compare", "#ev-compare-schemas")


def fill_compare(pane, result: dict) -> None:
    """Lay out engine.evaluate.run.compare(db, a, b) (B minus A) in the Evaluate pane's Compare tab."""
    keys = (
        ("json_exact", "JSONExact"),
        ("field_f1", "field F1"),
        ("leaf_f1", "leaf F1"),
        ("schema_valid", "valid"),
    )
    summary = Text(
        f"A = evaluation {result.get('a')}   B = evaluation {result.get('b')}   "
        f"{result.get('n_common', 0)} examples in common\n",
        style="bold",
    )
    overall = result.get("overall") or {}
    for key, label in keys:
        cell = overall.get(key) or {}
        summary.append(f"{label} ", style="dim")
        summary.append(f"{fmt_ratio(cell.get('a'))} → {fmt_ratio(cell.get('b'))} ")
        summary.append_text(fmt_delta(key, cell.get("delta")))
        summary.append("   ")
    pane.query_one("#ev-compare-summary", Static).update(summary)

    schemas = pane.query_one("#ev-compare-schemas", DataTable)
    schemas.clear(columns=True)
    schemas.add_columns("schema", "n A/B", "JSONExact A", "B", "Δ", "field F1 Δ", "valid Δ")
    for name, row in (result.get("by_schema") or {}).items():
        exact = row.get("json_exact") or {}
        schemas.add_row(
            str(name),
            f"{row.get('n_a', 0)}/{row.get('n_b', 0)}",
            fmt_ratio(exact.get("a")),
            fmt_ratio(exact.get("b")),
            fmt_delta("json_exact", exact.get("delta")),
            fmt_delta("field_f1", (row.get("field_f1") or {}).get("delta")),
            fmt_delta("schema_valid", (row.get("schema_valid") or {}).get("delta")),
            key=str(name),
        )

    flips = pane.query_one("#ev-compare-flips", DataTable)
    flips.clear(columns=True)
    flips.add_columns("example", "schema", "A → B", "failure")
    for kind, label, style, failure_key in (
        ("fail_to_pass", "fixed", "green", "failure_a"),
        ("pass_to_fail", "broke", "red", "failure_b"),
    ):
        for row in result.get(kind) or []:
            flips.add_row(
                str(row.get("example_id")),
                str(row.get("schema_id", "")),
                Text(label, style=style),
                str(row.get(failure_key) or ""),
            )
