import os
import sqlite3
import subprocess
import sys

from engine import runlog


def test_creates_schema_in_wal_mode(db_path):
    db = runlog.connect(db_path)
    assert runlog.schema_version(db) == runlog.SCHEMA_VERSION
    assert db.journal_mode == "wal"
    for table in ("runs", "metrics", "checkpoints", "datasets", "validation_issues",
                  "evaluations", "predictions"):
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
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)
    dead = runlog.create_run(db, "train", {}, pid=dead_pid)
    alive = runlog.create_run(db, "train", {}, pid=os.getpid())
    runs = {r["id"]: r for r in runlog.list_runs(db)}
    assert runs[dead]["status"] == "interrupted"
    assert runs[alive]["status"] == "running"


def test_delete_run_removes_its_rows(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "validate", {})
    runlog.insert_rows(db, "validation_issues", [
        {"run_id": run_id, "kind": "parse", "severity": "error", "message": "m"}])
    runlog.delete_run(db, run_id)
    assert runlog.get_run(db, run_id) is None
    assert db["validation_issues"].count == 0
