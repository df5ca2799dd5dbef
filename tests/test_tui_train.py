"""The Train pane: the form (checked as you type, YAML in and out), launching and following a
short `tiny` training run to the end, cancel and resume, and re-attaching after a restart."""

from __future__ import annotations

import os

import pytest
from pilot_helpers import PaneApp, wait_for
from test_tui_app import REPO, make_app, seeded_db, settle  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio

T0 = 1_767_225_600.0
CHECK_WAIT = 0.7  # past the form's check delay, so its workers have started
VAL_EXACT = {20: 0.125, 40: 0.4125, 60: 0.375}  # the best is step 40, not the last


def seed_val_run(db_path, *, finish: bool = True) -> int:
    """A training run with validation schema metrics at steps 20/40/60 and a checkpoint at each,
    step 40 marked best, written through engine.runlog as the training loop writes them.
    Unfinished, it is `running` (its pid is this test process) and has no summary yet."""
    from engine import runlog

    db = runlog.connect(db_path)
    config = {
        "model": "tiny",
        "train_data": "datasets/sample/train.jsonl",
        "lora_r": 8,
        "lora_alpha": 16,
        "lr": 0.001,
        "batch_size": 4,
        "grad_accum": 2,
        "select_by": "json_exact",
        "prompt_template": "edgejson",
    }
    run_id = runlog.create_run(
        db,
        "train",
        config,
        model="tiny",
        name="val metrics",
        data_path=config["train_data"],
        started=T0,
        pid=None if finish else os.getpid(),
    )
    runlog.log_metrics(db, run_id, 0, {"total_steps": 60})
    for step in range(1, 61):
        values = {
            "train_loss": 2.0 * 0.96**step + 0.3,
            "epoch": step / 30,
            "lr": 0.001,
            "tokens_per_s": 1200.0,
        }
        if step in VAL_EXACT:
            exact = VAL_EXACT[step]
            values.update(
                val_loss=0.97**step + 0.3,
                val_json_exact=exact,
                val_field_f1=exact + 0.3,
                val_leaf_f1=exact + 0.35,
                val_schema_valid=0.9,
                val_parse_rate=1.0,
                val_truncated=0.05,
                val_eval_s=12.4,
            )
        runlog.log_metrics(db, run_id, step, values)
    for step, exact in VAL_EXACT.items():
        runlog.add_checkpoint(
            db,
            run_id,
            step,
            f"/nowhere/run/checkpoint-{step}",
            metrics={"val_json_exact": exact, "val_field_f1": exact + 0.3},
        )
    runlog.set_best_checkpoint(db, run_id, 40)
    if finish:
        runlog.finish_run(
            db,
            run_id,
            "completed",
            summary={
                "final_train_loss": 0.47,
                "best_step": 40,
                "best_metric": 0.4125,
                "stopped_early": True,
                "val_eval_share": 0.08,
            },
        )
        runlog.update_run(db, run_id, ended=T0 + 300, heartbeat=T0 + 300)
    else:
        runlog.update_run(db, run_id, heartbeat=T0 + 200)
    db.conn.close()
    return run_id


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
        pane.fill_form(
            {
                **TINY_FORM,
                "max_steps": 8,
                "eval_every": 4,
                "val_eval_limit": 4,
                "val_max_new_tokens": 24,
            }
        )
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
        # The in-training evaluation's schema metrics arrived with the validation loss.
        assert sorted(live.series["val_json_exact"]) == [4, 8]
        assert live.query_one("#live-schema-chart").display
        assert "val @ 8: JSONExact" in str(live.query_one("#live-val").render())
        db = runlog.connect(db_path)
        assert runlog.get_run(db, live.run_id)["status"] == "completed"


async def test_cancel_and_resume_go_to_the_engine(seeded_db, monkeypatch, tmp_path):  # noqa: F811
    """The keys reach engine.train.process with the run on show (the engine's own tests run
    real processes; here the calls are recorded and their effect written to the run log)."""
    from engine import runlog
    from engine.train import process
    from tui.train import LiveView

    (tmp_path / "ckpt").mkdir()
    runlog.add_checkpoint(runlog.connect(seeded_db), 3, 10, str(tmp_path / "ckpt"))
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


async def test_form_offers_the_in_training_evaluation_keys(db_path, tmp_path, monkeypatch):
    from textual.widgets import Select

    from engine.decode.prompt import TEMPLATES
    from engine.train.config import SELECT_BY, load_config
    from tui.train import TrainPane

    monkeypatch.chdir(REPO)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        await pilot.pause()
        # The choices are the engine's own lists, and the defaults are the config's.
        template = pane.query_one("#f-prompt_template", Select)
        assert [v for _, v in template._options if v != Select.NULL] == list(TEMPLATES)
        assert template.value == "schemalab"
        select_by = pane.query_one("#f-select_by", Select)
        assert [v for _, v in select_by._options if v != Select.NULL] == list(SELECT_BY)
        for key in (
            "val_eval_limit",
            "val_max_new_tokens",
            "val_eval_batch",
            "patience",
            "keep_last",
            "eval_every",
            "val_constrained",
        ):
            assert pane.query(f"#f-{key}"), key

        pane.fill_form(
            {
                **TINY_FORM,
                "prompt_template": "chat",
                "select_by": "field_f1",
                "val_eval_limit": 16,
                "val_constrained": False,
                "patience": 3,
                "keep_last": 2,
            }
        )
        await settle(pilot)
        assert pane.problems == []
        data = pane.form_data()
        assert (data["prompt_template"], data["select_by"], data["val_constrained"]) == (
            "chat",
            "field_f1",
            False,
        )
        assert (data["val_eval_limit"], data["patience"], data["keep_last"]) == (16, 3, 2)
        pane.query_one("#f-patience").value = ""  # empty means null: no early stopping
        await pilot.pause()
        assert pane.form_data()["patience"] is None and pane.problems == []

        # Saved YAML carries them; a template the engine does not know is a problem, not a crash.
        saved = tmp_path / "val.yaml"
        pane.action_save_yaml()
        await pilot.pause()
        from textual.widgets import Input

        app.screen.query_one(Input).value = str(saved)
        await pilot.press("enter")
        await pilot.pause()
        cfg = load_config(saved)
        assert (cfg.prompt_template, cfg.select_by, cfg.keep_last, cfg.patience) == (
            "chat",
            "field_f1",
            2,
            None,
        )
        pane.fill_form({"prompt_template": "bogus"})
        await settle(pilot)
        assert any("prompt_template" in p for p in pane.problems)
        assert "prompt_template" in str(pane.query_one("#p-prompt_template").render())


async def test_live_view_shows_val_schema_metrics_and_the_best_checkpoint(db_path, monkeypatch):
    from textual_plotext import PlotextPlot

    from tui.train import LiveView, TrainPane

    monkeypatch.chdir(REPO)
    done = seed_val_run(db_path)
    running = seed_val_run(db_path, finish=False)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        live = app.query_one(LiveView)
        await wait_for(pilot, lambda: live.run_id == running)  # re-attached to the running one
        await wait_for(pilot, lambda: live.best is not None)
        val = str(live.query_one("#live-val").render())
        # During the run the best comes from the run log's checkpoint mark.
        assert "val @ 60: JSONExact 37.5%" in val and "field F1 0.675" in val
        assert "truncated 5.0%" in val and "eval took 12s" in val
        assert "best: step 40 · JSONExact 41.2%" in val and "stopped early" not in val

        pane.attach(done)
        await wait_for(pilot, lambda: live.status == "completed")
        assert sorted(live.series["val_json_exact"]) == [20, 40, 60]
        val = str(live.query_one("#live-val").render())
        assert "best: step 40 · JSONExact 41.2%" in val
        assert "stopped early" in val and "evals 8% of run time" in val
        assert live.best_step() == 40
        # A second chart beside the loss, both readable at 80 columns.
        loss = live.query_one("#live-chart", PlotextPlot)
        schema = live.query_one("#live-schema-chart", PlotextPlot)
        assert schema.display and loss.region.width >= 30 and schema.region.width >= 30
        assert schema.region.y == loss.region.y and schema.region.height >= 8


async def test_live_view_without_val_metrics_keeps_one_chart(seeded_db):  # noqa: F811
    from tui.train import LiveView

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        live = app.query_one(LiveView)
        live.attach(2)  # the seeded completed run logged only losses
        await wait_for(pilot, lambda: live.status == "completed")
        assert not live.query_one("#live-schema-chart").display
        assert not live.query_one("#live-val").display
        assert live.query_one("#live-chart").region.width > 70


async def test_cancel_works_at_once_after_re_attaching(seeded_db, monkeypatch):  # noqa: F811
    """`c` then `y` right after the pane re-attached (before the run's row was first read)
    reaches the engine, and the live view says the cancel is under way."""
    from engine.train import process
    from tui.train import LiveView, TrainPane

    calls = []

    def fake_cancel(db_path, run_id, wait=0.0):
        calls.append(run_id)
        return "sent"

    monkeypatch.setattr(process, "cancel_run", fake_cancel)
    app = PaneApp(TrainPane, seeded_db, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane, live = app.query_one(TrainPane), app.query_one(LiveView)
        await wait_for(pilot, lambda: live.run_id == 3)
        live.status = None  # as just after attach, before the first read lands
        live.focus()
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: calls == [3], timeout=10)
        await wait_for(pilot, lambda: live.cancel_sent_for == 3, timeout=10)
        await wait_for(pilot, lambda: live.status == "running", timeout=10)
        assert "cancelling" in str(live.query_one("#live-title").render())
        assert pane.check_action("cancel_run", ()) is True


async def test_failed_run_without_checkpoint_is_still_and_not_resumable(db_path, monkeypatch):
    from textual.widgets import ProgressBar

    from engine import runlog
    from engine.train import process
    from tui.train import LiveView, TrainPane

    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "train", {"model": "tiny"}, model="tiny", pid=None)
    runlog.log_metrics(db, run_id, 1, {"train_loss": 2.0})
    runlog.finish_run(db, run_id, "failed", error="Traceback ...\nValueError: boom")
    resumed = []
    monkeypatch.setattr(process, "resume_detached", lambda d, r: resumed.append(r) or r)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane, live = app.query_one(TrainPane), app.query_one(LiveView)
        pane.attach(run_id)
        await wait_for(pilot, lambda: live.status == "failed")
        bar = live.query_one("#live-progress", ProgressBar)
        assert bar.total is not None  # an unknown total animates for ever
        assert pane.check_action("resume_run", ()) is None
        live.focus()
        await pilot.press("u")  # dimmed in the footer: the key does nothing
        await settle(pilot)
        said = []
        monkeypatch.setattr(pane, "notify", lambda message, **kw: said.append(message))
        pane.action_resume_run()  # from the command palette: refused with the reason
        await settle(pilot)
        assert resumed == [] and "no checkpoint" in said[0]


async def test_form_checks_the_model_and_its_modules(db_path, monkeypatch, tiny_model_path):
    """What the config check cannot see: a model spec that does not resolve here, target
    modules the model lacks, and the default Hub model offline. "valid" waits for them."""
    from tui.train import TrainPane

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(REPO)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        await settle(pilot)
        # Offline, the default Hub model is not here: the form starts on one that is.
        assert pane.form_data()["model"] in ("smollm2-135m-instruct", "tiny")
        pane.fill_form({**TINY_FORM, "target_modules": ["q_proj", "abc"]})
        await pilot.pause(CHECK_WAIT)
        await settle(pilot)
        assert any("abc not in tiny" in p for p in pane.problems)
        assert "abc not in tiny" in str(pane.query_one("#p-target_modules").render())
        assert "config is valid" not in str(pane.query_one("#form-problems").render())
        pane.fill_form({**TINY_FORM, "model": "tiny1"})
        await pilot.pause(CHECK_WAIT)
        await settle(pilot)
        assert any("did you mean 'tiny'" in p for p in pane.problems)
        pane.fill_form({**TINY_FORM, "model": "HuggingFaceTB/SmolLM2-135M"})
        await pilot.pause(CHECK_WAIT)
        await settle(pilot)
        assert any("not in the local Hugging Face cache" in p for p in pane.problems)
        pane.fill_form({**TINY_FORM, "target_modules": ["q_proj", "v_proj"]})
        await pilot.pause(CHECK_WAIT)
        await settle(pilot)
        assert pane.problems == []
        assert "config is valid" in str(pane.query_one("#form-problems").render())


async def test_form_remembers_its_config_across_restarts(db_path, monkeypatch):
    from tui.train import TrainPane

    monkeypatch.chdir(REPO)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        pane.fill_form({**TINY_FORM, "lora_r": 12, "lr": 0.003})
        await pilot.pause(CHECK_WAIT)
        await settle(pilot)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        data = app.query_one(TrainPane).form_data()
        assert (data["model"], data["lora_r"], data["lr"]) == ("tiny", 12, 0.003)
        assert data["val_fraction"] == 0.05


async def test_form_is_readable_at_80x24(db_path, monkeypatch, tmp_path):
    """Field problems in full under their field, labels apart from values, every problem in the
    side panel; the validation slice said instead of "(none)"; ctrl+s asks before overwriting;
    opening the form does not select a field's text."""
    from textual.widgets import Input, Select

    from tui.train import TrainPane

    monkeypatch.chdir(REPO)
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        pane.fill_form({**TINY_FORM, "lora_r": 0, "lr": -1})
        await settle(pilot)
        note = pane.query_one("#p-lora_r")
        text = str(note.render())
        assert "lora_r must be > 0" in text
        assert note.region.width >= len(text.strip()) or note.region.height > 1
        label = pane.query_one("#row-target_modules .form-label")
        field = pane.query_one("#f-target_modules")
        assert field.region.x > label.region.x + len("Target modules")
        side = str(pane.query_one("#form-problems").render())
        assert "2 problems" in side and "lora_r must be > 0" in side and "lr" in side
        assert pane.query_one("#f-val_data", Select).prompt == "5% of train_data"
        assert all(not i.select_on_focus for i in pane.query(Input))

        pane.fill_form(TINY_FORM)
        await settle(pilot)
        saved = tmp_path / "kept.yaml"
        saved.write_text("keep: me\n")
        pane.action_save_yaml()
        await pilot.pause()
        app.screen.query_one(Input).value = str(saved)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("n")  # asked; "no" keeps the file
        await pilot.pause()
        assert saved.read_text() == "keep: me\n"
        pane.action_save_yaml()
        await pilot.pause()
        app.screen.query_one(Input).value = str(saved)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert "model: tiny" in saved.read_text()


async def test_train_log_shows_its_tail_and_follows_a_running_run(db_path, monkeypatch, tmp_path):
    """`l` in the live view shows the run's train.log: the tail of a long one, then each line
    the run writes while it runs (read in a worker), until it ends."""
    from engine import runlog
    from tui.log_view import TAIL_BYTES, TrainLogScreen
    from tui.train import LiveView, TrainPane

    monkeypatch.chdir(REPO)
    run_id = seed_val_run(db_path, finish=False)
    out = tmp_path / "run-out"
    out.mkdir()
    db = runlog.connect(db_path)
    runlog.update_run(db, run_id, out_dir=str(out))
    log = out / "train.log"
    n_old = TAIL_BYTES // 20 + 2000  # longer than the tail shown
    log.write_text("".join(f"old line {i:08d}\n" for i in range(n_old)))
    app = PaneApp(TrainPane, db_path, ["datasets/sample"])
    async with app.run_test(size=(80, 24)) as pilot:
        live = app.query_one(LiveView)
        await wait_for(pilot, lambda: live.run_id == run_id and live.status == "running")
        live.focus()
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainLogScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.lines())
        lines = screen.lines()
        assert lines[-1] == f"old line {n_old - 1:08d}"
        assert lines[0].startswith("old line ") and lines[0] != "old line 00000000"
        assert len(lines) < n_old

        with open(log, "a", encoding="utf-8") as f:
            f.write("step 61 · loss 0.31 ✓\nprogress 10%\rprogress 100%\nhalf a li")
        await wait_for(pilot, lambda: screen.lines()[-1] == "progress 100%")
        assert screen.lines()[-2] == "step 61 · loss 0.31 ✓"
        assert screen.running
        with open(log, "a", encoding="utf-8") as f:
            f.write("ne\nrun finished\n")
        runlog.finish_run(db, run_id, "completed", summary={})
        await wait_for(pilot, lambda: not screen.running)
        assert screen.lines()[-2:] == ["half a line", "run finished"]
        assert "ended" in str(screen.query_one("#log-status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TrainLogScreen)


async def test_evaluate_a_completed_run_from_the_live_view(seeded_db):  # noqa: F811
    from pathlib import Path

    from textual.widgets import Input, Select

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        train = app.query_one("TrainPane")
        live = app.query_one("LiveView")
        await wait_for(pilot, lambda: live.run_id == 3)  # re-attached to the running run
        await pilot.press("f3")
        await settle(pilot)
        await pilot.press("e")  # a running run: not yet
        await settle(pilot)
        assert app.query_one("#panes").active == "train"
        train.attach(2)
        await wait_for(pilot, lambda: live.status == "completed")
        await pilot.press("e")
        await wait_for(pilot, lambda: app.query_one("#panes").active == "evaluate")
        await wait_for(pilot, lambda: app.query_one("#ev-adapter", Input).value == "2")
        await settle(pilot)
        data = app.query_one("#ev-data", Select).value
        assert Path(str(data)).resolve() == (REPO / "datasets/sample/test.jsonl").resolve()
