import os
import sqlite3
import subprocess
import sys

from engine import runlog


def test_creates_schema_in_wal_mode(db_path):
    db = runlog.connect(db_path)
    assert runlog.schema_version(db) == runlog.SCHEMA_VERSION
    assert db.journal_mode == "wal"
    for table in (
        "runs",
        "metrics",
        "checkpoints",
        "datasets",
        "validation_issues",
        "evaluations",
        "predictions",
    ):
        assert db[table].exists(), table


def test_reopen_does_not_migrate_again(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "validate", {"a": 1})
    db.conn.close()
    db = runlog.connect(db_path)
    assert runlog.get_run(db, run_id)["config"] == {"a": 1}


def test_newer_schema_is_refused(db_path):
    runlog.connect(db_path).conn.close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    try:
        runlog.connect(db_path)
    except RuntimeError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("expected a RuntimeError")


def test_metrics_are_visible_to_another_connection(db_path):
    writer = runlog.connect(db_path)
    reader = runlog.connect(db_path)
    run_id = runlog.create_run(writer, "train", {})
    runlog.log_metrics(writer, run_id, 1, {"loss": 2.5, "lr": 1e-4})
    runlog.log_metrics(writer, run_id, 2, {"loss": 2.0})
    rows = runlog.metrics(reader, run_id, "loss")
    assert [(r["step"], r["value"]) for r in rows] == [(1, 2.5), (2, 2.0)]
    assert runlog.metrics(reader, run_id, after_step=1)[0]["step"] == 2


def test_dead_process_shows_as_interrupted(db_path):
    db = runlog.connect(db_path)
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(proc.stdout)
    dead = runlog.create_run(db, "train", {}, pid=dead_pid)
    alive = runlog.create_run(db, "train", {}, pid=os.getpid())
    runs = {r["id"]: r for r in runlog.list_runs(db)}
    assert runs[dead]["status"] == "interrupted"
    assert runs[alive]["status"] == "running"


def test_delete_run_removes_its_rows(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "validate", {})
    runlog.insert_rows(
        db,
        "validation_issues",
        [{"run_id": run_id, "kind": "parse", "severity": "error", "message": "m"}],
    )
    runlog.delete_run(db, run_id)
    assert runlog.get_run(db, run_id) is None
    assert db["validation_issues"].count == 0


def test_v1_run_log_migrates_to_v2_keeping_its_data(db_path):
    import sqlite_utils

    conn = sqlite3.connect(db_path)
    old = sqlite_utils.Database(conn)
    from engine.runlog.schema import _create_v1

    _create_v1(old)  # a run log written by the first release
    conn.execute("PRAGMA user_version = 1")
    run_id = old["runs"].insert({"kind": "train", "status": "completed", "config": "{}"}).last_pk
    old["checkpoints"].insert(
        {
            "run_id": run_id,
            "step": 50,
            "epoch": 0.5,
            "path": "/x/step-50",
            "is_final": 0,
            "time": 1.0,
        }
    )
    old["metrics"].insert(
        {"run_id": run_id, "step": 50, "name": "val_loss", "value": 1.5, "time": 1.0}
    )
    conn.commit()
    conn.close()

    db = runlog.connect(db_path)
    assert runlog.schema_version(db) == runlog.SCHEMA_VERSION == 3
    (ckpt,) = runlog.checkpoints(db, run_id)
    assert (ckpt["step"], ckpt["epoch"], ckpt["path"]) == (50, 0.5, "/x/step-50")
    assert ckpt["metrics"] == {} and ckpt["is_best"] == 0
    assert runlog.metrics(db, run_id, "val_loss")[0]["value"] == 1.5
    assert runlog.best_checkpoint(db, run_id) is None
    db.conn.close()
    assert runlog.schema_version(runlog.connect(db_path)) == 3  # reopening migrates nothing


def test_checkpoint_metrics_best_mark_and_deletion(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "train", {})
    other = runlog.create_run(db, "train", {})
    for step in (10, 20, 30):
        runlog.add_checkpoint(
            db, run_id, step, f"/p/{step}", epoch=step / 10, metrics={"val_json_exact": step / 100}
        )
    runlog.add_checkpoint(db, other, 10, "/q/10", metrics={"val_json_exact": 1.0})
    runlog.set_best_checkpoint(db, other, 10)
    runlog.set_best_checkpoint(db, run_id, 20)
    best = runlog.best_checkpoint(db, run_id)
    assert best["step"] == 20 and best["metrics"] == {"val_json_exact": 0.2}
    runlog.set_best_checkpoint(db, run_id, 30)  # moving the mark leaves one best
    assert [c["is_best"] for c in runlog.checkpoints(db, run_id)] == [0, 0, 1]
    assert runlog.best_checkpoint(db, other)["step"] == 10  # another run's mark is untouched
    runlog.add_checkpoint(db, run_id, 30, "/p/30b", is_final=True, metrics={"val_loss": 1.0})
    assert [(c["step"], c["path"]) for c in runlog.checkpoints(db, run_id)][-1] == (30, "/p/30b")
    runlog.delete_checkpoint(db, run_id, 10)
    assert [c["step"] for c in runlog.checkpoints(db, run_id)] == [20, 30]
    assert runlog.checkpoint(db, run_id, 20)["metrics"] == {"val_json_exact": 0.2}


def _open_run_log(path):
    from engine import runlog as rl

    rl.connect(path).conn.close()


def test_run_log_opened_by_several_processes_at_once_migrates_once(tmp_path):
    import multiprocessing

    from engine import runlog as rl

    ctx = multiprocessing.get_context("spawn")
    for i in range(3):
        path = tmp_path / f"r{i}.db"
        procs = [ctx.Process(target=_open_run_log, args=(str(path),)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        assert rl.schema_version(rl.connect(path)) == rl.SCHEMA_VERSION
