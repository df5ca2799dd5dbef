"""The run log under faults: claims by several processes at once, a first open killed half way,
pure reads (no reaping, no WAL switch, no file created), pid reuse, and one-line errors for a
damaged, newer, missing or full run log."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import runlog
from engine.cli import main

REPO = Path(__file__).resolve().parent.parent


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def _claim(path: str, run_id: int, start, results) -> None:
    from engine import runlog as rl

    db = rl.connect(path)
    start.wait(30)
    results.put(rl.claim_run(db, run_id))


def test_several_processes_claiming_one_run_at_once_one_wins(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "train", {}, status="interrupted", pid=_dead_pid())
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claim, args=(str(db_path), run_id, start, results)) for _ in range(5)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every process connected and waiting
    start.set()
    for p in procs:
        p.join(60)
    won = sorted(results.get(timeout=5) for _ in procs)
    assert won == [False, False, False, False, True]
    status, pid = db.execute("SELECT status, pid FROM runs WHERE id = ?", [run_id]).fetchone()
    assert status == "running" and pid in {p.pid for p in procs}  # the winner's claim


def test_a_claimed_run_is_not_claimed_again_and_completed_runs_never(db_path):
    db = runlog.connect(db_path)
    stopped = runlog.create_run(db, "train", {}, status="cancelled")
    done = runlog.create_run(db, "train", {}, status="completed")
    assert runlog.claim_run(db, stopped)
    assert not runlog.claim_run(db, stopped)  # this live process holds it now
    assert not runlog.claim_run(db, done)


def _first_open_then_hang(path: str) -> None:
    """Open a new run log whose first migration step stops after creating its tables."""
    from engine import runlog as rl
    from engine.runlog.schema import _create_v1

    def half(db):
        _create_v1(db)
        Path(path + ".ready").write_text("x")
        time.sleep(600)

    rl.MIGRATIONS[0] = half
    rl.connect(path)


def test_a_first_open_killed_half_way_leaves_a_run_log_that_opens(tmp_path):
    path = tmp_path / "runs.db"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_first_open_then_hang, args=(str(path),))
    proc.start()
    deadline = time.monotonic() + 60
    while not Path(str(path) + ".ready").exists():
        assert time.monotonic() < deadline and proc.is_alive()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    db = runlog.connect(path)  # no "duplicate column" / "table already exists"
    assert runlog.schema_version(db) == runlog.SCHEMA_VERSION
    assert "pid_start" in db["runs"].columns_dict
    assert "is_best" in db["checkpoints"].columns_dict


def _open_and_write(path: str) -> None:
    from engine import runlog as rl

    db = rl.connect(path)
    rl.create_run(db, "validate", {"by": os.getpid()})


def test_new_run_log_opened_by_several_processes_at_once_keeps_every_run(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for i in range(3):
        path = tmp_path / f"r{i}.db"
        procs = [ctx.Process(target=_open_and_write, args=(str(path),)) for _ in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 5
        db = runlog.connect(path)
        assert runlog.schema_version(db) == runlog.SCHEMA_VERSION
        assert len(runlog.list_runs(db)) == 5


def test_reads_are_pure_a_dead_run_reads_interrupted_without_a_write(db_path):
    db = runlog.connect(db_path)
    dead = runlog.create_run(db, "train", {}, pid=_dead_pid())
    assert runlog.get_run(db, dead)["status"] == "interrupted"
    assert runlog.list_runs(db)[0]["status"] == "interrupted"
    raw = db.execute("SELECT status FROM runs WHERE id = ?", [dead]).fetchone()[0]
    assert raw == "running"  # nothing written by the reads
    assert runlog.reap_interrupted(db) == [dead]  # the explicit write
    assert db.execute("SELECT status FROM runs WHERE id = ?", [dead]).fetchone()[0] == "interrupted"


def test_a_reused_pid_is_not_the_run_s_process(db_path):
    db = runlog.connect(db_path)
    run_id = runlog.create_run(db, "train", {})  # this process, its real start time
    assert runlog.get_run(db, run_id)["status"] == "running"
    start = runlog.process_start_time(os.getpid())
    assert start is not None
    # The same pid with another start time: a later process that reused the pid.
    db.execute("UPDATE runs SET pid_start = ? WHERE id = ?", [start - 1, run_id])
    db.conn.commit()
    assert runlog.get_run(db, run_id)["status"] == "interrupted"
    assert runlog.reap_interrupted(db) == [run_id]


def test_cancel_never_signals_a_process_that_reused_the_pid(db_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db = runlog.connect(db_path)
        run_id = runlog.create_run(db, "train", {}, pid=sleeper.pid)
        # The recorded process started at another time: this sleeper only reuses its pid.
        db.execute("UPDATE runs SET pid_start = pid_start + 7 WHERE id = ?", [run_id])
        db.conn.commit()
        assert main(["cancel", str(run_id), "--db", str(db_path)]) == 1
        assert "not running" in capsys.readouterr().err
        time.sleep(0.5)
        assert sleeper.poll() is None  # not signalled
    finally:
        sleeper.kill()
        sleeper.wait()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_commands_never_write_the_run_log(tmp_path, capsys):
    path = tmp_path / "runs.db"
    db = runlog.connect(path)
    dead = runlog.create_run(db, "train", {}, pid=_dead_pid())
    ev = runlog.create_run(db, "eval", {}, status="completed")
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.execute("PRAGMA journal_mode = DELETE")  # as on media copied from elsewhere
    db.conn.close()
    before = _digest(path)
    assert main(["runs", "--db", str(path), "--format", "json"]) == 0
    assert '"interrupted"' in capsys.readouterr().out
    assert main(["show", str(dead), "--db", str(path), "--format", "json"]) == 0
    main(["show", str(ev), "--db", str(path)])
    main(["compare", str(ev), str(ev), "--db", str(path)])
    capsys.readouterr()
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]  # no -wal/-shm made


def test_read_commands_never_create_the_db_path(tmp_path, capsys):
    path = tmp_path / "missing" / "runs.db"
    for argv in (["runs"], ["show", "1"], ["compare", "1", "2"]):
        code = main([*argv, "--db", str(path)])
        err = capsys.readouterr().err
        assert argv == ["runs"] and code == 0 or code != 0 and str(path) in err, (argv, err)
    assert not path.parent.exists()


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [["runs"], ["show", "1"], ["compare", "1", "2"], ["cancel", "1"], ["train", "--resume", "1"]],
)
def test_a_damaged_run_log_is_one_line_naming_the_file(tmp_path, capsys, command):
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    assert main([*command, "--db", str(path)]) != 0
    line = _one_line(capsys.readouterr().err)
    assert str(path) in line and "damaged" in line


@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["cancel", "1"]])
def test_a_newer_run_log_names_the_file(db_path, capsys, command):
    runlog.connect(db_path).conn.close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert main([*command, "--db", str(db_path)]) != 0
    line = _one_line(capsys.readouterr().err)
    assert str(db_path) in line and "newer" in line and "Connection" not in line


def test_a_full_disk_while_recording_is_one_line(db_path, capsys, monkeypatch, sample_dir):
    def full(*a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(runlog, "create_run", full)
    code = main(["validate", str(sample_dir / "train.jsonl"), "--db", str(db_path)])
    assert code != 0
    line = _one_line(capsys.readouterr().err)
    assert str(db_path) in line and "full" in line and "free" in line


def test_read_commands_work_on_a_read_only_file_system(small_fs, capsys):
    media = small_fs("8m")
    path = media / "runs.db"
    db = runlog.connect(path)
    runlog.create_run(db, "train", {}, status="completed", name="on read-only media")
    db.conn.close()
    subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
    assert main(["runs", "--db", str(path)]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["show", "1", "--db", str(path), "--format", "json"]) == 0
    assert '"on read-only media"' in capsys.readouterr().out
    # A writer gets one line saying what is wrong.
    code = main(["validate", str(REPO / "datasets" / "sample" / "train.jsonl"), "--db", str(path)])
    assert code != 0
    line = _one_line(capsys.readouterr().err)
    assert str(path) in line and "read-only" in line


def _fill(folder: Path) -> None:
    """Write a file until the file system is full."""
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    try:
        with open(folder / "filler2", "wb") as fh:
            while True:
                fh.write(b"\0" * 512)
                fh.flush()
    except OSError:
        pass


def test_a_full_disk_never_crashes_reads_and_a_validation_does_not_stay_running(small_fs, capsys):
    media = small_fs("1m")
    path = media / "runs.db"
    db = runlog.connect(path)
    runlog.create_run(db, "train", {}, status="completed", name="before the disk filled")
    runlog.create_run(db, "train", {}, pid=_dead_pid())  # reads must not write it
    db.conn.close()
    _fill(media)
    assert main(["runs", "--db", str(path)]) == 0
    assert main(["show", "1", "--db", str(path), "--format", "json"]) == 0
    assert "before the disk filled" in capsys.readouterr().out
    code = main(["validate", str(REPO / "datasets" / "sample" / "train.jsonl"), "--db", str(path)])
    assert code != 0
    line = _one_line(capsys.readouterr().err)
    assert str(path) in line and "full" in line
    statuses = [r["status"] for r in runlog.list_runs(runlog.connect_readonly(path))]
    assert "running" not in statuses


def test_a_run_log_left_empty_by_a_killed_first_open_reads_as_no_runs(tmp_path, capsys):
    path = tmp_path / "runs.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").fetchone()  # no tables yet
    assert main(["runs", "--db", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []
    assert main(["show", "1", "--db", str(path)]) != 0
    assert "no run 1" in _one_line(capsys.readouterr().err)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    assert main(["runs", "--db", str(other)]) != 0
    assert "not a SchemaLab run log" in _one_line(capsys.readouterr().err)
