"""Snapshots of the Datasets, Train and Runs panes at 120x40 and of the main screen at 80x24, on
the seeded run log (fixed times, rendered in UTC). Update with `pytest --snapshot-update`."""

from __future__ import annotations

from pilot_helpers import settle_screen
from test_tui_app import REPO, make_app, seeded_db, settle  # noqa: F401 - fixtures
from test_tui_train import TINY_FORM

WIDE = (120, 40)


def _before(*keys: str, then=None):
    """A run_before that lets the app settle, presses `keys`, runs `then(app)` and settles."""

    async def run_before(pilot) -> None:
        await settle_screen(pilot)
        if keys:
            await pilot.press(*keys)
            await settle_screen(pilot)
        if then is not None:
            then(pilot.app)
            await settle_screen(pilot)
        pilot.app.clear_notifications()
        await settle_screen(pilot)

    return run_before


def test_main_screen_80x24(snap_compare, seeded_db):  # noqa: F811
    assert snap_compare(make_app(seeded_db), terminal_size=(80, 24), run_before=_before())


def test_datasets_examples_with_a_finding(snap_compare, seeded_db):  # noqa: F811
    def pick(app):
        app.query_one("#filter-finding").value = "arithmetic"

    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, run_before=_before(then=pick))


def test_datasets_stats(snap_compare, seeded_db, tiny_model_path):  # noqa: F811
    def stats(app):
        # The stats count tokens with the Train form's model against its max_seq_len.
        train = app.query_one("TrainPane")
        train.fill_form({**TINY_FORM, "max_seq_len": 256})
        train.run_checks()
        app.query_one("DatasetsPane").action_toggle_stats()

    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, run_before=_before(then=stats))


def test_train_live_view_of_a_running_run(snap_compare, seeded_db):  # noqa: F811
    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, run_before=_before("2"))


def test_train_form(snap_compare, seeded_db, tiny_model_path, monkeypatch):  # noqa: F811
    # The memory line checks against this machine's free memory: fix it for a stable picture.
    monkeypatch.setattr("engine.models.memory.host_memory", lambda: (24.0, 16.0))

    def form(app):
        pane = app.query_one("TrainPane")
        pane.action_toggle_view()
        pane.fill_form(TINY_FORM)
        pane.run_checks()
        pane.query_one("#f-train_data").focus()  # an Input's blinking cursor is not stable

    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, run_before=_before("2", then=form))


def test_runs(snap_compare, seeded_db):  # noqa: F811
    assert snap_compare(make_app(seeded_db), terminal_size=WIDE, run_before=_before("5"))


def test_train_live_view_with_val_metrics_80x24(snap_compare, seeded_db):  # noqa: F811
    """A finished run with validation schema metrics: the second chart, the last evaluation and
    the best checkpoint, at the smallest supported size."""
    from test_tui_train import seed_val_run

    run_id = seed_val_run(seeded_db)

    def attach(app):
        app.query_one("TrainPane").attach(run_id)

    assert snap_compare(
        make_app(seeded_db), terminal_size=(80, 24), run_before=_before("2", then=attach)
    )


def test_datasets_80x24(snap_compare, seeded_db):  # noqa: F811
    """The smallest supported size: Split and Findings stay on screen beside long ids, and
    the findings of the example on show are readable."""

    def pick(app):
        app.query_one("#filter-finding").value = "arithmetic"

    assert snap_compare(make_app(seeded_db), terminal_size=(80, 24), run_before=_before(then=pick))


def test_evaluate_results_80x24(snap_compare, seeded_db):  # noqa: F811
    """Evaluate at 80x24: how it decoded in the header, failures abbreviated with a legend."""
    from test_tui_evaluate import seed_evaluation

    run_id = seed_evaluation(seeded_db, REPO / "datasets" / "sample")

    def show(app):
        app.query_one("EvaluatePane").show_run(run_id)

    assert snap_compare(
        make_app(seeded_db), terminal_size=(80, 24), run_before=_before("alt+4", then=show)
    )


def test_too_small(snap_compare, seeded_db):  # noqa: F811
    assert snap_compare(make_app(seeded_db), terminal_size=(50, 14), run_before=_before())


def test_playground_80x24(snap_compare, seeded_db):  # noqa: F811
    """Playground at 80x24: the top row's controls whole, the prompt's origin on its own row."""

    def focus(app):
        app.query_one("#pg-generate").focus()  # an Input's blinking cursor is not stable

    assert snap_compare(
        make_app(seeded_db), terminal_size=(80, 24), run_before=_before("f4", then=focus)
    )
