"""Nothing reads or writes the run log on the UI thread: every SQLite statement any connection
runs is traced while the panes are driven with Pilot, and a statement run on the main thread (the
one Textual's event loop runs on) is an offender, named by the innermost tui/ function on the
stack. Workers run in threads of their own, so their statements never count."""

from __future__ import annotations

import sqlite3
import threading
import traceback
from pathlib import Path

import pytest
from pilot_helpers import PaneApp, wait_for
from test_tui_app import make_app, seed_runs_db, settle
from test_tui_evaluate import seed_evaluation

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parent.parent
TUI = REPO / "tui"
TESTS = REPO / "tests"

# UI-thread run-log work that panes still do, as `file:function`. An entry here is a defect to
# fix (move the call into a worker), not a permission; the test says when one is gone.
KNOWN: set[str] = set()


class UiThreadSql:
    """Traces every statement of every SQLite connection opened while installed."""

    def __init__(self) -> None:
        self.offenders: dict[str, str] = {}  # where -> the first statement seen there
        self.statements = 0
        self.watching = False  # set while the app runs (test set-up may use the run log)

    def trace(self, statement: str) -> None:
        if not self.watching:
            return
        self.statements += 1
        if threading.current_thread() is not threading.main_thread():
            return
        # Named by the innermost tui/ function on the stack, else the innermost test function.
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if TUI in Path(f.filename).parents or TESTS in Path(f.filename).parents
        ]
        frame = next(
            (f for f in reversed(frames) if TUI in Path(f.filename).parents),
            frames[-1] if frames else None,
        )
        where = "?" if frame is None else f"{Path(frame.filename).relative_to(REPO)}:{frame.name}"
        self.offenders.setdefault(where, statement.strip().splitlines()[0][:80])


@pytest.fixture
def ui_thread_sql(monkeypatch) -> UiThreadSql:
    tracer = UiThreadSql()
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(tracer.trace)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return tracer


def check(tracer: UiThreadSql) -> None:
    assert tracer.statements > 0, "nothing read the run log: the trace is not installed"
    new = {w: s for w, s in tracer.offenders.items() if w not in KNOWN}
    assert not new, f"run-log statements on the UI thread: {new}"


def test_the_tracer_sees_ui_thread_sql(db_path, ui_thread_sql):
    """The check can fail: a statement run on this (the main) thread is an offender."""
    from engine import runlog
    from tui.adapters import adapter_choices

    ui_thread_sql.watching = True
    runlog.list_runs(runlog.connect(db_path))
    adapter_choices(str(db_path))  # a tui/ function reading on this thread is named as such
    assert list(ui_thread_sql.offenders) == [
        "tests/test_tui_ui_thread.py:test_the_tracer_sees_ui_thread_sql",
        "tui/widgets.py:open_db",  # connecting (creating and migrating) runs statements too
        "tui/adapters.py:adapter_choices",
    ]
    done = threading.Event()

    def worker() -> None:
        runlog.list_runs(runlog.connect(db_path))
        done.set()

    before = dict(ui_thread_sql.offenders)
    threading.Thread(target=worker).start()
    done.wait(10)
    assert ui_thread_sql.offenders == before


async def test_evaluate_pane_reads_off_the_ui_thread(db_path, sample_dir, ui_thread_sql):
    a = seed_evaluation(db_path, sample_dir)
    b = seed_evaluation(db_path, sample_dir, shift=1)
    from tui.evaluate import EvaluatePane

    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        ui_thread_sql.watching = True
        pane = app.query_one("#pane")
        await settle(pilot)
        pane.query_one("#ev-run").focus()
        await pilot.press("h")
        await settle(pilot)
        await pilot.press("enter")  # opens the newest evaluation
        await wait_for(pilot, lambda: pane.run_id == b)
        await pilot.press("s", "enter")  # sort, then drill into a schema
        await wait_for(pilot, lambda: pane.predictions)
        await pilot.press("down", "b")
        pane.marked = [a, b]
        await pilot.press("x")
        await wait_for(pilot, lambda: pane.query_one("#ev-tabs").active == "ev-compare")
        pane.show_run(999)  # an error, read in a worker too
        await settle(pilot)
        ui_thread_sql.watching = False
    check(ui_thread_sql)


async def test_a_busy_run_log_says_busy_instead_of_freezing(db_path, sample_dir):
    """Another process holding the run log's lock: the pane's read gives up within about a
    second and says the run log is busy; the UI keeps running meanwhile."""
    import time

    from tui.evaluate import EvaluatePane

    run_id = seed_evaluation(db_path, sample_dir)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        await settle(pilot)
        pane.close_reads()  # the next read opens a connection, which needs the lock
        await settle(pilot)
        holder = sqlite3.connect(str(db_path))
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("SELECT COUNT(*) FROM runs").fetchone()
        try:
            started = time.monotonic()
            pane.show_run(run_id)
            await wait_for(
                pilot,
                lambda: any(n.title == "Run log busy" for n in app._notifications),
                timeout=20,
            )
            assert time.monotonic() - started < 10
            assert pane.run_id is None
        finally:
            holder.rollback()
            holder.close()
        pane.show_run(run_id)  # the lock released: the same read now works
        await wait_for(pilot, lambda: pane.run_id == run_id)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the Train form's model check converts the default model once
async def test_no_pane_touches_the_run_log_on_the_ui_thread(db_path, ui_thread_sql, monkeypatch):
    """Every pane of the workbench, shown and used, leaves the run log to its workers."""
    monkeypatch.chdir(REPO)  # the seeded runs name data sets relative to the repository
    seed_runs_db(db_path)
    seed_evaluation(db_path, REPO / "datasets" / "sample")
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        ui_thread_sql.watching = True
        await settle(pilot)
        await pilot.press("enter")  # Datasets: open the highlighted data set
        await settle(pilot)
        await pilot.press("down", "down")
        await settle(pilot)
        for key in ("f3", "f4", "f5", "f6"):  # Train, Playground, Evaluate, Runs
            await pilot.press(key)
            await settle(pilot)
        # Evaluate: past evaluations, open one, drill down.
        await pilot.press("f5")
        await settle(pilot)
        app.pane_widget("evaluate").query_one("#ev-run").focus()  # off the form's fields
        await pilot.press("h")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        # Runs: move through the list, open a run, delete one (confirmed).
        await pilot.press("f6")
        await settle(pilot)
        await pilot.press("down", "o")
        await settle(pilot)
        await pilot.press("f6", "x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        # Train: the form, then the live view of the running run.
        await pilot.press("f3", "ctrl+t")
        await settle(pilot)
        ui_thread_sql.watching = False
        assert all(
            app.pane_widget(p) is not None
            for p in ("datasets", "train", "playground", "evaluate", "runs")
        )
        assert app.pane_widget("evaluate").run_id is not None
    check(ui_thread_sql)
