"""Snapshots (pytest-textual-snapshot) of the Playground and Evaluate panes at 120x40: the empty
playground, an evaluation's results, a drilldown to one example's diff, and a comparison.
Evaluations are seeded straight into the run log, so every figure on screen is fixed.
Regenerate with `pytest tests/test_tui_pane_snapshots.py --snapshot-update` after a deliberate
change, and look at the report before committing."""

from __future__ import annotations

from pilot_helpers import PaneApp, settle_screen, wait_for
from test_tui_evaluate import seed_evaluation
from textual.widgets import DataTable, Select

from tui.evaluate import EvaluatePane
from tui.playground import PlaygroundPane

SIZE = (120, 40)


async def settle(pilot) -> None:
    """Wait for the pane's start-up workers (data set discovery) so the form is filled."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    pane = pilot.app.query_one("#pane")
    if isinstance(pane, EvaluatePane):
        assert pane.query_one("#ev-data", Select).value is not Select.NULL
    await settle_screen(pilot)


def test_playground_empty(snap_compare, db_path, sample_dir):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_evaluate_results(snap_compare, db_path, sample_dir):
    run_id = seed_evaluation(db_path, sample_dir)

    async def before(pilot):
        await settle(pilot)
        pilot.app.query_one(EvaluatePane).show_run(run_id)
        await settle_screen(pilot)

    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_evaluate_drilldown(snap_compare, db_path, sample_dir):
    run_id = seed_evaluation(db_path, sample_dir)

    async def before(pilot):
        await settle(pilot)
        pane = pilot.app.query_one(EvaluatePane)
        pane.show_run(run_id)
        pane.show_schema("purchase_order")
        examples = pane.query_one("#ev-example-table", DataTable)
        await wait_for(pilot, lambda: examples.row_count > 1)
        examples.move_cursor(row=1)
        pane.query_one("#ev-detail").focus()  # reading the diff: focus on the detail
        await settle_screen(pilot)

    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_evaluate_compare(snap_compare, db_path, sample_dir):
    a = seed_evaluation(db_path, sample_dir)
    b = seed_evaluation(db_path, sample_dir, shift=1)

    async def before(pilot):
        await settle(pilot)
        pilot.app.query_one(EvaluatePane).compare(a, b)
        await settle_screen(pilot)

    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    assert snap_compare(app, terminal_size=SIZE, run_before=before)
