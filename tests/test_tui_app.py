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
    from engine.validate import record_validation, validate_files

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
