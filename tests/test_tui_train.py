"""The Train pane: the form (checked as you type, YAML in and out), launching and following a
short `tiny` training run to the end, cancel and resume, and re-attaching after a restart."""

from __future__ import annotations

import pytest
from pilot_helpers import wait_for
from test_tui_app import REPO, make_app, seeded_db, settle  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio



TINY_FORM = {
    "model": "tiny",
    "train_data": "datasets/sample/train.jsonl",
    "lora_r": 8,
    "lora_alpha": 16,
    "lr": 0.01,
    "epochs": 1,
    "batch_size": 4,
    "grad_accum": 1,
    "max_seq_len": 512,
    "log_every": 1,
    "eval_every": 4,
    "save_every": 1000,
    "val_fraction": 0.05,
}


async def test_form_checks_as_you_type_and_round_trips_yaml(
    db_path, tmp_path, monkeypatch, tiny_model_path
):
    from textual.widgets import Input

    from engine.train.config import load_config
    from tui.train import TrainPane

    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        pane = app.query_one(TrainPane)
        pane.fill_form(TINY_FORM)
        await settle(pilot)
        assert pane.problems == []

        # A bad value shows inline next to its field, and in the count.
        field = pane.query_one("#f-lora_r", Input)
        field.focus()
        field.value = ""
        await pilot.press("0")
        await pilot.pause()
        assert "lora_r" in str(pane.query_one("#p-lora_r").render())
        assert field.has_class("-problem")
        assert "1 problem" in str(pane.query_one("#form-problems").render())
        await pilot.press("backspace", "8")
        await settle(pilot)
        assert pane.problems == [] and not field.has_class("-problem")

        # The checks ran for the valid config: memory estimate and the too-long count.
        pane.run_checks()
        await settle(pilot)
        assert "GB" in str(pane.query_one("#form-memory").render())
        assert "examples" in str(pane.query_one("#form-lengths").render())

        # Save as YAML, then load the bundled sample config (its paths are relative to it).
        saved = tmp_path / "mine.yaml"
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one(Input).value = str(saved)
        await pilot.press("enter")
        await pilot.pause()
        cfg = load_config(saved)
        assert (cfg.model, cfg.lora_r, cfg.max_seq_len, cfg.log_every) == ("tiny", 8, 512, 1)

        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one(Input).value = "configs/sample-tiny.yaml"
        await pilot.press("enter")
        await settle(pilot)
        data = pane.form_data()
        assert data["lr"] == 0.01 and data["max_seq_len"] == 1024 and data["epochs"] == 3
        assert pane.problems == []


async def test_launch_and_follow_a_tiny_run_to_the_end(db_path, monkeypatch, tiny_model_path):
    from engine import runlog
    from tui.train import LiveView, TrainPane

    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        pane = app.query_one(TrainPane)
        live = app.query_one(LiveView)
        pane.fill_form({**TINY_FORM, "max_steps": 8, "eval_every": 4})
        await settle(pilot)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: live.run_id is not None)
        assert app.query_one("#train-view").current == "train-live"
        await wait_for(pilot, lambda: live.status == "completed", timeout=60)
        # Every logged step arrived, read a few rows at a time as the run wrote them.
        assert sorted(live.series["train_loss"]) == list(range(1, 9))
        assert live.series["total_steps"][0] == 8
        assert sorted(live.series["val_loss"]) == [4, 8]
        assert "step 8/8" in str(live.query_one("#live-stats").render())
        db = runlog.connect(db_path)
        assert runlog.get_run(db, live.run_id)["status"] == "completed"


async def test_cancel_and_resume_go_to_the_engine(seeded_db, monkeypatch):  # noqa: F811
    """The keys reach engine.train.process with the run on show (the engine's own tests run
    real processes; here the calls are recorded and their effect written to the run log)."""
    from engine import runlog
    from engine.train import process
    from tui.train import LiveView

    calls = []

    def fake_cancel(db_path, run_id, wait=0.0):
        calls.append(("cancel", run_id))
        runlog.finish_run(runlog.connect(db_path), run_id, "cancelled")

    def fake_resume(db_path, run_id):
        calls.append(("resume", run_id))
        runlog.update_run(runlog.connect(db_path), run_id, status="running", ended=None)
        return run_id

    monkeypatch.setattr(process, "cancel_run", fake_cancel)
    monkeypatch.setattr(process, "resume_detached", fake_resume)
    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        live = app.query_one(LiveView)
        assert live.run_id == 3 and live.status == "running"
        await pilot.press("u")  # resuming a running run is refused
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("n")  # asked first; "no" keeps it running
        await settle(pilot)
        assert calls == []
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: live.status == "cancelled", timeout=10)
        await pilot.press("u")
        await wait_for(pilot, lambda: live.status == "running", timeout=10)
        assert calls == [("cancel", 3), ("resume", 3)]


async def test_reattaches_to_a_running_run_after_a_restart(seeded_db):  # noqa: F811
    from textual.widgets import ProgressBar

    from tui.train import LiveView

    for _ in range(2):  # open, quit (the run goes on), open again
        app = make_app(seeded_db)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            live = app.query_one(LiveView)
            assert live.run_id == 3 and live.status == "running"
            assert app.query_one("#train-view").current == "train-live"
            bar = live.query_one("#live-progress", ProgressBar)
            assert (bar.total, bar.progress) == (100, 30)
            await pilot.press("q")
            await pilot.pause()
            await pilot.press("y")  # quitting asks, since a run is going; it is not stopped
            await pilot.pause()
        from engine import runlog

        assert runlog.get_run(runlog.connect(seeded_db), 3)["status"] == "running"
