"""The workbench shell: pane switching by key, help screen, command palette entries, quitting with
work in progress, and a run log seeded for every TUI test (see `seed_runs_db`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.anyio
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed times keep rendered tables stable


def seed_runs_db(path: Path) -> dict[str, int]:
    """A run log with a validate run (with findings), a completed training run with metrics and
    a training run that is still running (its pid is this test process)."""
    from engine import runlog
    from engine.data.validate import record_validation, validate_files

    db = runlog.connect(path)
    broken = "datasets/sample/broken.jsonl"
    report = validate_files([REPO / broken])
    report.files = [broken]
    for i, f in enumerate(report.findings):
        if f.file and Path(f.file).resolve() == (REPO / broken).resolve():
            report.findings[i] = type(f)(**{**f.to_dict(), "file": broken})
    validate_id = record_validation(db, report, {"paths": [broken]})
    runlog.update_run(db, validate_id, started=T0, ended=T0 + 2.5, heartbeat=T0 + 2.5)

    config = {
        "model": "tiny",
        "train_data": "datasets/sample/train.jsonl",
        "lora_r": 8,
        "lora_alpha": 16,
        "lr": 0.001,
        "batch_size": 4,
        "grad_accum": 1,
        "epochs": 2,
        "max_seq_len": 512,
    }
    done_id = runlog.create_run(
        db,
        "train",
        config,
        model="tiny",
        name="tiny on sample",
        data_path=config["train_data"],
        started=T0 + 60,
    )
    runlog.log_metrics(db, done_id, 0, {"total_steps": 40})
    for step in range(1, 41):
        values = {
            "train_loss": 3.0 * 0.95**step + 0.4,
            "lr": 0.001 * (1 - step / 40),
            "epoch": step / 20,
            "tokens_per_s": 1500.0,
            "eta_s": (40 - step) * 0.5,
        }
        if step % 10 == 0:
            values["val_loss"] = 3.1 * 0.95**step + 0.5
        runlog.log_metrics(db, done_id, step, values)
    runlog.finish_run(
        db,
        done_id,
        "completed",
        summary={"final_train_loss": 0.78, "final_val_loss": 0.92, "steps": 40},
    )
    runlog.update_run(db, done_id, ended=T0 + 60 + 125, heartbeat=T0 + 60 + 125)

    running_id = runlog.create_run(
        db,
        "train",
        {**config, "epochs": 5},
        model="tiny",
        name="tiny, still going",
        data_path=config["train_data"],
        started=T0 + 300,
        pid=os.getpid(),
    )
    runlog.log_metrics(db, running_id, 0, {"total_steps": 100})
    for step in range(1, 31):
        runlog.log_metrics(
            db,
            running_id,
            step,
            {
                "train_loss": 2.8 * 0.97**step + 0.5,
                "epoch": step / 20,
                "lr": 0.001,
                "tokens_per_s": 1800.0,
                "eta_s": (100 - step) * 0.4,
            },
        )
    runlog.update_run(db, running_id, heartbeat=T0 + 300 + 42)
    db.conn.close()
    return {"validate": validate_id, "done": done_id, "running": running_id}


@pytest.fixture
def seeded_db(db_path, monkeypatch) -> Path:
    """The seeded run log, with stored times rendered in UTC whatever the machine's zone."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    seed_runs_db(db_path)
    yield db_path
    monkeypatch.undo()
    time.tzset()


def make_app(db_path: Path):
    from tui.app import SchemaLabApp

    return SchemaLabApp(db_path=str(db_path), dataset_paths=["datasets/sample"])


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and their messages land."""
    from textual.worker import WorkerCancelled, WorkerFailed

    for _ in range(rounds):
        await pilot.pause(0.05)
        try:
            await pilot.app.workers.wait_for_complete()
        except (WorkerCancelled, WorkerFailed):  # a newer exclusive worker replaced it
            pass
    await pilot.pause()


def test_tui_imports_no_heavy_library():
    code = (
        "import sys, tui.app\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'xgrammar') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


async def test_keys_switch_panes_and_focus_follows(seeded_db):
    from textual.widgets import TabbedContent

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tabs = app.query_one("#panes", TabbedContent)
        for key, pane in (("2", "train"), ("5", "runs"), ("d", "datasets"), ("r", "runs")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == pane
            # Focus lands inside the pane, so its bindings work and show in the footer.
            assert app.focused is not None and pane in [n.id for n in app.focused.ancestors]


async def test_help_lists_every_pane_action(seeded_db):
    from textual.widgets import DataTable

    from tui.help import HelpScreen

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        actions = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert {"Validate", "Launch", "Delete", "Help", "Quit"} <= actions
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_has_an_entry_per_action(seeded_db):
    from tui.app import SchemaLabCommands

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        entries = app.action_entries()
        provider = SchemaLabCommands(app.screen)
        titles = [str(hit.display) for hit in [h async for h in provider.discover()]]
        assert len(titles) == len(entries)
        assert "Runs: Delete" in titles and "Datasets: Validate" in titles
        hits = [h async for h in provider.search("stats")]
        assert hits and "Datasets: Stats" in str(hits[0].text)
        await hits[0].command()  # runs the action in its pane
        await pilot.pause()
        assert app.query_one("#dataset-view").current == "stats-view"

        # Scoring an external predictions file and picking an adapter are palette entries too.
        assert "Playground: Adapter" in titles and "Evaluate: Adapter" in titles
        hits = [h async for h in provider.search("score file")]
        assert hits and "Evaluate: Score file" in str(hits[0].text)
        await hits[0].command()
        await pilot.pause()
        assert app.query_one("#panes").active == "evaluate"
        assert type(app.screen).__name__ == "ScoreScreen"


async def test_quit_asks_while_a_training_run_is_going(seeded_db):
    from tui.widgets import ConfirmScreen

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "training run #3" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)


async def test_quit_without_work_exits_at_once(db_path, monkeypatch):
    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


def test_run_app_reports_an_unreadable_run_log(tmp_path, capsys):
    from tui.app import run_app

    bad = tmp_path / "runs.db"
    bad.write_text("this is not sqlite")
    assert run_app(str(bad), ["datasets"]) == 2
    assert "cannot open run log" in capsys.readouterr().err


async def test_pane_keys_work_from_a_text_field_and_escape_leaves_it(seeded_db):
    """Digits and letters are text in a field: alt+N and F1 work from any focus, escape leaves
    the field, and opening a pane never selects a field's text for overwriting."""
    from textual.widgets import Input, TabbedContent

    from tui.help import HelpScreen
    from tui.widgets import is_text_field

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tabs = app.query_one("#panes", TabbedContent)
        for key, pane in (("alt+4", "evaluate"), ("alt+2", "train"), ("alt+3", "playground")):
            await pilot.press(key)
            await settle(pilot, rounds=1)
            assert tabs.active == pane
        # Put focus into a text field, with text in it: nothing is selected.
        field = app.query_one("#model-a", Input)
        field.focus()
        await pilot.pause()
        assert field.selection.is_empty
        await pilot.press("q", "question_mark", "1")
        await pilot.pause()
        assert field.value == "tinyq?1" and app.is_running and tabs.active == "playground"
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is field
        await pilot.press("alt+1")
        await settle(pilot, rounds=1)
        assert tabs.active == "datasets"
        await pilot.press("alt+3")
        await pilot.pause()
        await pilot.pause()
        # Escape leaves the field for the pane's main widget; then single keys are pane keys.
        app.query_one("#model-a", Input).focus()
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not is_text_field(app.focused)
        assert "playground" in [n.id for n in app.focused.ancestors]
        await pilot.press("5")
        await settle(pilot, rounds=1)
        assert tabs.active == "runs"
        # Every text field of every pane keeps its text when focused.
        for pane in ("train", "playground", "evaluate"):
            for inp in app.query_one(f"#{pane}").query(Input):
                assert not inp.select_on_focus, inp.id


async def test_footer_and_help_tell_which_keys_work_in_text_fields(seeded_db):
    from textual.widgets import DataTable

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        assert {"f2", "f1"} <= shown
        await pilot.press("f1")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        datasets = next(r for r in rows if r[0] == "app" and r[2] == "Datasets")
        assert datasets[1].startswith("F2 / alt+1") and "outside text fields" in datasets[1]
        assert not any("everywhere" in cell for row in rows for cell in row)


def running_timers(app, skip: tuple[str, ...] = ()) -> list[str]:
    """`Owner.timer` for every timer of the app's widgets that is running (not paused), leaving
    out widgets inside the panes of type names `skip`."""
    nodes = [app]
    for screen in app.screen_stack:
        nodes.extend(screen.walk_children(with_self=True))
    out = []
    for node in nodes:
        if any(type(a).__name__ in skip for a in node.ancestors_with_self):
            continue
        for timer in list(getattr(node, "_timers", ())):
            task = timer._task
            if task is not None and not task.done() and timer._active.is_set():
                out.append(f"{type(node).__name__}.{timer.name}")
    return out


async def test_nothing_keeps_running_after_leaving_a_pane(seeded_db):
    """An idle app must not redraw or poll: hidden progress bars never animate, and the Runs
    pane polls the run log only while it is on screen (a session once idled at 68-97% CPU)."""
    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for key in ("alt+2", "alt+3", "alt+4", "alt+5", "alt+1"):
            await pilot.press(key)
            await settle(pilot, rounds=1)
        await pilot.press("v")  # a validation shows, then hides, the progress bar
        await settle(pilot)
        await pilot.pause(0.3)
        timers = running_timers(app)  # the live view follows its run only while on screen
        assert not [t for t in timers if t.startswith(("Bar.", "ProgressBar."))], timers
        assert not [t for t in timers if t.startswith(("RunsPane.", "LiveView."))], timers
        await pilot.press("alt+5")
        await settle(pilot, rounds=1)
        assert [t for t in running_timers(app) if t.startswith("RunsPane.")]


async def test_too_small_a_terminal_says_so(db_path, monkeypatch):
    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot)
        note = app.query_one("#too-small")
        assert note.display and "too small" in str(note.render())
        assert not app.query_one("#panes").region  # nothing half-drawn behind it
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.query_one("#panes").region and not app.query_one("#too-small").region


async def test_focused_dropdown_is_visible_without_colour(db_path, monkeypatch):
    """A focused Select is drawn reversed and bold: visible with NO_COLOR too."""
    from textual.widgets import Select
    from textual.widgets._select import SelectCurrent

    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        select = app.query_one("#filter-schema", Select)
        current = select.query_one(SelectCurrent)
        assert not current.styles.text_style.reverse
        select.focus()
        await pilot.pause()
        assert current.styles.text_style.reverse and current.styles.text_style.bold


async def test_footer_does_not_pile_up_watchers(seeded_db):
    """Each footer recompose (every focus change, every refresh_bindings of a live view's tick)
    used to leave watchers behind that every later recompose scanned: an idle session crept up
    to most of a core and tab switches took seconds."""
    from pilot_helpers import wait_for

    from tui.widgets import AppKeysFirstFooter

    app = make_app(seeded_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        footer = app.query_one(AppKeysFirstFooter)
        for _ in range(3):
            for key in ("alt+2", "alt+3", "alt+4", "alt+5", "alt+1"):
                await pilot.press(key)
                await pilot.pause(0.05)
        for _ in range(20):
            app.screen.refresh_bindings()
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        watchers = getattr(footer, "__watchers", {}).get("compact", [])
        assert len(watchers) <= 2, len(watchers)
        await wait_for(pilot, lambda: [k for k in footer.children if getattr(k, "key", None)])
        keys = [k for k in footer.children if getattr(k, "key", None)]
        assert all(k.compact and k.has_class("-compact") for k in keys)


async def test_quick_pane_switches_leave_an_idle_app_still(seeded_db, monkeypatch):
    """After quick pane switches, focus calls queued for panes no longer on show used to
    re-activate their tabs, each activation queueing another: tabs and focus swapped for ever
    and the footer was rebuilt many times a second while idle. A hidden live view following a
    running run rebuilt it once a second too."""
    import asyncio

    from tui.widgets import AppKeysFirstFooter

    rebuilt = []
    recompose = AppKeysFirstFooter.recompose

    async def counting(self):
        rebuilt.append(time.monotonic())
        return await recompose(self)

    monkeypatch.setattr(AppKeysFirstFooter, "recompose", counting)
    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for pane_id in ("train", "playground", "evaluate", "runs", "datasets"):
            await app.action_show_pane(pane_id)  # build every pane first
            await settle(pilot, rounds=1)
        for _ in range(5):
            for pane_id in ("datasets", "train", "playground", "evaluate", "runs"):
                await app.action_show_pane(pane_id)
            await app.action_show_pane("datasets")
        await settle(pilot)
        await pilot.pause(0.5)
        focus_changes = []
        app.screen.watch(app.screen, "focused", lambda w: focus_changes.append(w), init=False)
        rebuilt.clear()
        await asyncio.sleep(2.5)
        assert app.query_one("#panes").active == "datasets"
        assert not focus_changes, focus_changes
        assert len(rebuilt) == 0, f"footer rebuilt {len(rebuilt)} times in 2.5 s of idle"
