"""The Runs pane on a seeded run log: listing with key figures, opening a run in its own pane,
deleting after confirmation (and refusing to delete a running run)."""

from __future__ import annotations

import pytest
from test_tui_app import make_app, seeded_db, settle  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio



async def test_lists_runs_and_opens_each_in_its_pane(seeded_db):  # noqa: F811
    from textual.widgets import DataTable

    from tui.runs import RunsPane

    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunsPane)
        table = pane.query_one("#runs-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["3", "2", "1"]
        assert rows[0][2].endswith("running]") or "running" in rows[0][2]
        assert rows[1][4] == "2m05s" and "val 0.920" in rows[1][5]
        assert "err" in rows[2][5]

        # Open the completed training run: the Train pane follows it.
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.query_one("#panes").active == "train"
        live = app.query_one("LiveView")
        assert live.run_id == 2 and live.status == "completed"
        assert len(live.series["train_loss"]) == 40

        # Open the validate run: the Datasets pane shows broken.jsonl with that run's findings.
        await pilot.press("5", "down", "down", "o")
        await settle(pilot)
        assert app.query_one("#panes").active == "datasets"
        datasets = app.query_one("DatasetsPane")
        assert datasets.path.endswith("broken.jsonl") and datasets.pinned_run == 1
        assert any(f["kind"] == "arithmetic" for f in datasets.findings)


async def test_delete_asks_first_and_spares_running_runs(seeded_db):  # noqa: F811
    from engine import runlog
    from tui.runs import RunsPane
    from tui.widgets import ConfirmScreen

    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunsPane)
        assert pane.selected_run_id() == 3
        await pilot.press("x")  # running: refused, nothing asked
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)

        await pilot.press("down", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # said no: still there
        await settle(pilot)
        assert 2 in pane.runs

        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert 2 not in pane.runs
        db = runlog.connect(seeded_db)
        assert runlog.get_run(db, 2) is None
        assert runlog.metrics(db, 2) == []
        assert runlog.get_run(db, 3)["status"] == "running"


async def test_an_eval_run_opens_in_the_evaluate_pane(seeded_db, monkeypatch):  # noqa: F811
    from engine import runlog
    from tui import evaluate
    shown = []
    monkeypatch.setattr(
        evaluate.EvaluatePane, "show_run", lambda self, run_id: shown.append(run_id)
    )
    db = runlog.connect(seeded_db)
    eval_id = runlog.create_run(db, "eval", {"model": "tiny"}, status="completed", model="tiny")
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert app.query_one("RunsPane").selected_run_id() == eval_id
        await pilot.press("o")
        await settle(pilot)
        assert app.query_one("#panes").active == "evaluate"
        assert shown == [eval_id]


async def test_a_training_runs_key_figure_is_its_best_checkpoint(seeded_db):  # noqa: F811
    from test_tui_train import seed_val_run
    from textual.widgets import DataTable

    from tui.runs import RunsPane

    best = seed_val_run(seeded_db)
    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        table = app.query_one(RunsPane).query_one("#runs-table", DataTable)
        figures = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[5])
                   for i in range(table.row_count)}
        assert figures[str(best)] == "best JSONExact 41.2% @ step 40"
        assert figures["2"].startswith("val 0.920")  # no best in its summary: the losses
