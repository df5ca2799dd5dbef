"""The Evaluate pane's examples tab: one schema's examples with their failure categories, and
one example's prompt, expected, output and path-level diff. Predictions are read in a worker."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.results import ExampleDetail, fmt_ratio, yes_no
from tui.widgets import middle_cut


class Drilldown:
    """Mixin for EvaluatePane: the examples tab."""

    def show_schema(self, schema_id: str) -> None:
        """Drill down to one schema's examples with their failure categories (of the evaluation
        shown, or being opened)."""
        from engine.evaluate.run import predictions

        run_id = self._requested_run
        if run_id is None:
            return
        self.read(
            lambda db: predictions(db, run_id, schema=schema_id),
            lambda rows: self._apply_schema(schema_id, rows),
        )

    def _apply_schema(self, schema_id: str, rows: list[dict]) -> None:
        self.predictions = rows
        table = self.query_one("#ev-example-table", DataTable)
        table.clear(columns=True)
        table.add_columns("example", "exact", "field F1", "valid", "failure")
        for index, pred in enumerate(self.predictions):
            table.add_row(
                middle_cut(str(pred.get("example_id")), 18),
                yes_no(pred.get("json_exact")),
                fmt_ratio(pred.get("field_f1")),
                yes_no(pred.get("schema_valid")),
                Text(
                    str(pred.get("failure") or "—"),
                    style="magenta" if pred.get("failure") else "green",
                ),
                key=str(index),
            )
        table.border_title = f"{schema_id}: {len(self.predictions)} examples"
        self._navigate("ev-examples", "#ev-example-table")
        if self.predictions:
            self.show_prediction(0)

    def show_prediction(self, index: int) -> None:
        """Show one example's prompt, expected, got and path-level diff."""
        if 0 <= index < len(self.predictions):
            self.query_one("#ev-detail", ExampleDetail).show(self.predictions[index])

    def action_back(self) -> None:
        """From an example back to the per-schema results."""
        self._navigate("ev-results", "#ev-schemas")
