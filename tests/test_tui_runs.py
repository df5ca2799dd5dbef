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
        figures = {
            str(table.get_row_at(i)[0]): str(table.get_row_at(i)[5]) for i in range(table.row_count)
        }
        assert figures[str(best)] == "best JSONExact 41.2% @ step 40"
        assert figures["2"].startswith("val 0.920")  # no best in its summary: the losses


async def test_filter_by_kind_status_and_words_and_back(seeded_db):  # noqa: F811
    """`/` filters the table as you type (kind, status, words of name/model/data); escape leaves
    the box with the filter kept, escape again shows every run."""
    from textual.widgets import DataTable, Input

    from tui.runs import RunsPane

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunsPane)
        table = pane.query_one("#runs-table", DataTable)

        def ids() -> list[str]:
            return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]

        assert ids() == ["3", "2", "1"] and not pane.query_one("#runs-filter-row").display
        await pilot.press("slash")
        assert app.focused is pane.query_one("#runs-filter", Input)
        await pilot.press(*"train")
        await pilot.pause()
        assert ids() == ["3", "2"]
        assert "2 of 3" in str(pane.query_one("#runs-count").render())
        await pilot.press(*" completed")
        await pilot.pause()
        assert ids() == ["2"]
        pane.query_one("#runs-filter", Input).value = "still going"  # words of the name
        await pilot.pause()
        assert ids() == ["3"]
        pane.query_one("#runs-filter", Input).value = "broken"  # the validated file
        await pilot.pause()
        assert ids() == ["1"]
        pane.query_one("#runs-filter", Input).value = "failed"
        await pilot.pause()
        assert ids() == [] and "matches" in str(pane.query_one("#run-summary").render())

        await pilot.press("escape")  # leaves the box, keeps the filter
        await pilot.pause()
        assert app.focused is table and ids() == []
        await pilot.press("escape")  # clears it
        await pilot.pause()
        assert ids() == ["3", "2", "1"] and not pane.query_one("#runs-filter-row").display


async def test_runs_and_key_figures_take_one_query_however_many_runs(seeded_db, monkeypatch):  # noqa: F811
    """The pane read one key figure per run (a query or two each) every 5 s."""
    from engine import runlog
    from tui import runs as runs_module

    db = runlog.connect(seeded_db)
    for i in range(20):
        run_id = runlog.create_run(db, "train", {"model": "tiny"}, model="tiny", name=f"r{i}")
        runlog.log_metrics(db, run_id, 1, {"train_loss": 1.0 + i})
        runlog.finish_run(db, run_id, "completed", summary={})
    db.conn.close()

    statements: list[str] = []
    real_open = runs_module.open_db

    def counting_open(path):
        opened = real_open(path)
        opened.conn.set_trace_callback(
            lambda sql: (
                statements.append(sql) if sql.lstrip().upper().startswith("SELECT") else None
            )
        )
        return opened

    monkeypatch.setattr(runs_module, "open_db", counting_open)
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        statements.clear()
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(runs_module.RunsPane)
        assert len(pane.runs) == 23
        assert pane.runs[23]["key_figure"] == "loss 20.000"
        assert "err" in pane.runs[1]["key_figure"] and "val 0.920" in pane.runs[2]["key_figure"]
        assert 1 <= len(statements) <= 2, statements


async def test_delete_runs_in_a_worker(seeded_db, monkeypatch):  # noqa: F811
    import threading

    from engine import runlog

    threads = []
    real_delete = runlog.delete_run

    def delete(db, run_id):
        threads.append(threading.current_thread())
        real_delete(db, run_id)

    monkeypatch.setattr(runlog, "delete_run", delete)
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("down", "x")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert threads and threads[0] is not threading.main_thread()
        assert 2 not in app.query_one("RunsPane").runs


async def test_marked_training_runs_show_their_curves_on_one_chart(seeded_db):  # noqa: F811
    from pilot_helpers import wait_for
    from test_tui_train import seed_val_run

    from tui.overlay import CurvesScreen
    from tui.runs import RunsPane

    best = seed_val_run(seeded_db)  # id 4: validation JSONExact at three steps
    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunsPane)
        assert pane.selected_run_id() == best
        await pilot.press("space", "c")  # one run is not a comparison
        await pilot.pause()
        assert not isinstance(app.screen, CurvesScreen)
        await pilot.press("down", "down", "space")  # run 2
        await pilot.press("down", "space")  # run 1 is a validation: refused
        await pilot.pause()
        assert pane.marked == {best, 2}
        table = pane.query_one("#runs-table")
        assert str(table.get_row_at(0)[0]) == f"*{best}" and str(table.get_row_at(1)[0]) == "3"
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CurvesScreen) and app.screen.series)
        screen = app.screen
        assert screen.run_ids == [2, best]
        assert len(screen.series[2]["train_loss"]) == 40
        assert len(screen.series[best]["train_loss"]) == 60
        assert screen.query_one("#curves-exact").display  # run 4 logged JSONExact
        legend = str(screen.query_one("#curves-legend").render())
        assert "#2 tiny on sample" in legend and "best JSONExact 41.2% @ 40" in legend
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CurvesScreen)


async def test_evaluate_this_run_prefills_adapter_model_and_test_file(seeded_db):  # noqa: F811
    from pathlib import Path

    from pilot_helpers import wait_for
    from textual.widgets import Input, Select

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("down", "e")  # run 2: trained on datasets/sample/train.jsonl
        await wait_for(pilot, lambda: app.query_one("#panes").active == "evaluate")
        await wait_for(pilot, lambda: app.query_one("#ev-adapter", Input).value == "2")
        await settle(pilot)
        assert app.query_one("#ev-model", Input).value == "tiny"
        data = app.query_one("#ev-data", Select).value
        assert Path(str(data)).resolve() == Path("datasets/sample/test.jsonl").resolve()


def test_evaluation_rows_say_which_model_and_adapter_they_scored():
    from tui.runs import run_label

    run = {
        "kind": "eval",
        "name": "eval test.jsonl",
        "model": "smollm2-135m-instruct",
        "adapter": "/work/runs-outputs/run-3/checkpoints/step-000062/adapter",
    }
    assert run_label(run) == "eval test.jsonl · smollm2-135m-instruct + run-3/step-000062"
    assert (
        run_label({**run, "adapter": "3:best"})
        == "eval test.jsonl · smollm2-135m-instruct + 3:best"
    )
    assert run_label({**run, "adapter": None}) == "eval test.jsonl · smollm2-135m-instruct"
    assert (
        run_label({"kind": "train", "name": "tiny on sample", "model": "tiny"}) == "tiny on sample"
    )
