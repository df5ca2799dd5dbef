"""The run log: one SQLite file (`runs.db`) holding every run, metric, checkpoint, evaluation,
prediction and validation finding. This module is the only code that writes it.

WAL mode lets a training process write while the TUI and the CLI read. The schema is versioned
with `PRAGMA user_version`; `connect` creates and migrates it, `connect_readonly` opens an existing
run log for reading only (never creating, migrating or writing it).

Reads are pure: `get_run` and `list_runs` show a `running` run whose process is gone as
`interrupted` without writing it; `reap_interrupted` (called by writers) records that.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

DEFAULT_DB = "runs.db"
SCHEMA_VERSION = 3

# A run whose heartbeat is older than this, and whose process cannot be seen, is interrupted.
STALE_AFTER_S = 120.0

RUN_KINDS = ("validate", "train", "eval")
RUN_STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")
# A stopped training run may be resumed from these.
RESUMABLE = ("cancelled", "failed", "interrupted")


class RunLogError(RuntimeError):
    """A run log that cannot be opened or written as asked; the message names the file and says
    what to do."""


def _create_v1(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "kind": str,  # validate / train / eval
            "name": str,
            "status": str,  # running / completed / failed / cancelled / interrupted
            "config": str,  # the resolved config, JSON
            "model": str,
            "adapter": str,
            "data_path": str,
            "dataset_id": int,
            "parent_run_id": int,  # e.g. the training run an evaluation's adapter came from
            "out_dir": str,
            "pid": int,
            "host": str,
            "started": float,
            "ended": float,
            "heartbeat": float,
            "error": str,  # message or traceback of a failed run
            "summary": str,  # key figures, JSON
        },
        pk="id",
    )
    db["runs"].create_index(["kind"])
    db["runs"].create_index(["status"])
    db["metrics"].create(
        {"run_id": int, "step": int, "name": str, "value": float, "time": float},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id", "name", "step"])
    db["checkpoints"].create(
        {
            "id": int,
            "run_id": int,
            "step": int,
            "epoch": float,
            "path": str,
            "is_final": int,
            "time": float,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["checkpoints"].create_index(["run_id", "step"])
    db["datasets"].create(
        {
            "id": int,
            "path": str,
            "sha256": str,
            "n_examples": int,
            "n_schemas": int,
            "complexity_mix": str,  # JSON {"simple": n, ...}
            "time": float,
        },
        pk="id",
    )
    db["datasets"].create_index(["path", "sha256"], unique=True)
    db["validation_issues"].create(
        {
            "id": int,
            "run_id": int,
            "file": str,
            "kind": str,
            "severity": str,
            "example_id": str,
            "line": int,
            "path": str,
            "message": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["validation_issues"].create_index(["run_id", "kind"])
    db["evaluations"].create(
        {
            "run_id": int,
            "model": str,
            "adapter": str,
            "data_path": str,
            "decoding": str,  # JSON
            "constrained": int,
            "n_examples": int,
            "json_exact": float,
            "field_f1": float,
            "leaf_f1": float,
            "schema_valid": float,
            "parse_rate": float,
            "tokens_per_s": float,
            "report": str,  # the full aggregate report, JSON
        },
        pk="run_id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["predictions"].create(
        {
            "id": int,
            "run_id": int,
            "example_id": str,
            "schema_id": str,
            "complexity": str,
            "complexity_inferred": int,
            "prompt": str,
            "expected": str,  # JSON
            "output_text": str,
            "parsed": str,  # JSON, or null when unparseable
            "parse_error": str,
            "json_exact": int,
            "field_precision": float,
            "field_recall": float,
            "field_f1": float,
            "leaf_precision": float,
            "leaf_recall": float,
            "leaf_f1": float,
            "schema_valid": int,
            "compliance": int,
            "n_tokens": int,
            "latency_s": float,
            "truncated": int,
            "failure": str,  # failure category, null when exact
            "diff": str,  # JSON list of {path, expected, got, kind, ungrounded}
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["predictions"].create_index(["run_id", "schema_id"])
    db["predictions"].create_index(["run_id", "failure"])


def _v2_checkpoint_metrics(db: sqlite_utils.Database) -> None:
    """Checkpoints record the validation metrics at their step (JSON) and which one is best;
    predictions record how often the loop guard had to close a runaway array or string."""
    db.execute("ALTER TABLE checkpoints ADD COLUMN metrics TEXT")
    db.execute("ALTER TABLE checkpoints ADD COLUMN is_best INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE predictions ADD COLUMN loop_guard INTEGER NOT NULL DEFAULT 0")


def _v3_process_start(db: sqlite_utils.Database) -> None:
    """Runs record their process's start time beside the pid, so a reused pid is not taken for
    the run's process (by `cancel` or the interrupted check)."""
    db.execute("ALTER TABLE runs ADD COLUMN pid_start INTEGER")


# Each entry migrates from version i to i + 1.
MIGRATIONS = [_create_v1, _v2_checkpoint_metrics, _v3_process_start]


def connect(path: str | os.PathLike | None = None, *,
            busy_timeout_s: float = 30.0) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) the run log at `path` (default ./runs.db).
    `busy_timeout_s` is how long a statement waits on another process's lock before failing
    with "database is locked" (the TUI's reads wait briefly and say the run log is busy)."""
    path = Path(path or DEFAULT_DB)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    db = sqlite_utils.Database(conn)
    if db.journal_mode != "wal":
        db.enable_wal()
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def connect_readonly(path: str | os.PathLike | None = None) -> sqlite_utils.Database:
    """Open an existing run log for reading only: it is never created, migrated or written
    (read-only media work). Raises RunLogError when there is no run log at `path`, when it is
    newer than this SchemaLab, or when it is not a run log at all."""
    path = Path(path or DEFAULT_DB)
    if not path.is_file():
        raise RunLogError(
            f"{path}: no run log here; check --db, or run a command that records runs "
            "(validate, train, eval) to create one"
        )
    uri = path.resolve().as_uri()
    db = None
    for suffix in ("?mode=ro", "?immutable=1"):
        conn = sqlite3.connect(uri + suffix, uri=True, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL run log on media we cannot write: read the file as it is.
            conn.close()
            if suffix == "?immutable=1":
                raise
            continue
        db = sqlite_utils.Database(conn)
        break
    assert db is not None
    if version > len(MIGRATIONS):
        db.conn.close()
        raise RunLogError(_newer_message(path, version))
    if version < 2:
        tables = {r[0] for r in db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        db.conn.close()
        if version == 0 and tables and "runs" not in tables:
            raise RunLogError(f"{path}: not a SchemaLab run log (no runs table); check --db")
        # An old run log, or an empty one (its first open was killed before it committed):
        # upgrading or creating it is the one write a read makes, once.
        try:
            return connect(path)
        except sqlite3.Error as exc:
            raise RunLogError(
                f"{path}: an {'empty' if not tables else 'old'} run log that cannot be "
                f"{'created' if not tables else 'upgraded'} here ({exc}); open it once where "
                "it can be written"
            ) from exc
    return db


def _newer_message(path: Any, version: int) -> str:
    return (
        f"{path}: run log schema version {version} is newer than this SchemaLab understands "
        f"({len(MIGRATIONS)}); upgrade SchemaLab or use another --db."
    )


def db_file(db: sqlite_utils.Database) -> str:
    """The file a connection has open."""
    for row in db.conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return row[2] or ":memory:"
    return "?"


def describe_error(path: Any, exc: BaseException) -> str | None:
    """One line for a run log that cannot be used (corrupt, newer, read-only, full, locked):
    the file, what is wrong and what to do; None when `exc` is not such a problem."""
    if isinstance(exc, RunLogError):
        return str(exc)
    text = str(exc)
    low = text.lower()
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "disk is full" in low:
        return (f"{path}: the disk holding the run log is full ({text}); free some space "
                "and run the command again")
    if not isinstance(exc, sqlite3.Error):
        return None
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"{path}: the run log is damaged ({text}); restore a backup, or move it "
                "aside and use another --db")
    target = Path(str(path))
    on_read_only = target.exists() and not (
        os.access(target, os.W_OK) and os.access(target.parent, os.W_OK))
    if "readonly" in low or "read-only" in low or ("unable to open" in low and on_read_only):
        return (f"{path}: the run log is read-only ({text}); make it writable, or use another "
                "--db for commands that record runs")
    if "locked" in low or "busy" in low:
        return (f"{path}: the run log stayed locked by another process ({text}); try again "
                "when it is done")
    if "unable to open" in low:
        return (f"{path}: cannot open the run log ({text}); check the path and its "
                "permissions")
    return f"{path}: run log error: {text}"


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> None:
    version = schema_version(db)
    if version > len(MIGRATIONS):
        raise RunLogError(_newer_message(db_file(db), version))
    # Several processes may open a new or old run log at once (the workbench's first-open
    # validation and its panes, a CLI beside them): each step runs under the write lock and
    # re-reads the version there, so a step is applied exactly once; a process killed in the
    # middle of a step leaves nothing of it behind (the transaction rolls back).
    while version < len(MIGRATIONS):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)
            if version < len(MIGRATIONS):
                MIGRATIONS[version](db)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
            db.conn.commit()
        except BaseException:
            db.conn.rollback()
            raise


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def create_run(
    db: sqlite_utils.Database,
    kind: str,
    config: dict | None = None,
    *,
    status: str = "running",
    pid: int | None = None,
    **fields: Any,
) -> int:
    """Insert a run and return its id. `fields` are other columns of `runs` (model, name, ...)."""
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}; expected one of {RUN_KINDS}")
    reap_interrupted(db)
    now = time.time()
    pid = os.getpid() if pid is None else pid
    row = {
        "kind": kind,
        "status": status,
        "config": _dumps(config or {}),
        "pid": pid,
        "pid_start": process_start_time(pid),
        "host": socket.gethostname(),
        "started": now,
        "heartbeat": now,
        **fields,
    }
    if isinstance(row.get("summary"), (dict, list)):
        row["summary"] = _dumps(row["summary"])
    with db.conn:
        return db["runs"].insert(row).last_pk


def update_run(db: sqlite_utils.Database, run_id: int, **fields: Any) -> None:
    for key in ("config", "summary"):
        if isinstance(fields.get(key), (dict, list)):
            fields[key] = _dumps(fields[key])
    with db.conn:
        db["runs"].update(run_id, fields)


def heartbeat(db: sqlite_utils.Database, run_id: int) -> None:
    with db.conn:
        db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", [time.time(), run_id])


def finish_run(
    db: sqlite_utils.Database,
    run_id: int,
    status: str = "completed",
    *,
    error: str | None = None,
    summary: dict | None = None,
) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    fields: dict[str, Any] = {"status": status, "ended": time.time(), "heartbeat": time.time()}
    if error is not None:
        fields["error"] = error
    if summary is not None:
        fields["summary"] = _dumps(summary)
    with db.conn:
        db["runs"].update(run_id, fields)


def log_metrics(
    db: sqlite_utils.Database, run_id: int, step: int, values: dict[str, float]
) -> None:
    """Record one logging step's metrics and refresh the run's heartbeat, in one transaction."""
    now = time.time()
    rows = [
        {"run_id": run_id, "step": step, "name": k, "value": float(v), "time": now}
        for k, v in values.items()
        if v is not None
    ]
    with db.conn:
        db["metrics"].insert_all(rows)
        db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", [now, run_id])


def metrics(
    db: sqlite_utils.Database, run_id: int, name: str | None = None, after_step: int = -1
) -> list[dict]:
    """Metric rows of a run in step order; `after_step` lets a reader tail new rows only."""
    sql = "SELECT step, name, value, time FROM metrics WHERE run_id = ? AND step > ?"
    params: list[Any] = [run_id, after_step]
    if name is not None:
        sql += " AND name = ?"
        params.append(name)
    sql += " ORDER BY step, rowid"
    return [dict(r) for r in db.query(sql, params)]


def delete_metrics_after(db: sqlite_utils.Database, run_id: int, step: int) -> None:
    """Drop a run's metric rows past `step`: a resumed run redoes those steps from a checkpoint."""
    with db.conn:
        db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", [run_id, step])


def add_checkpoint(
    db: sqlite_utils.Database,
    run_id: int,
    step: int,
    path: str,
    *,
    epoch: float | None = None,
    is_final: bool = False,
    metrics: dict | None = None,
) -> int:
    """Record a checkpoint (replacing a row of the same run and step: a step saved again)."""
    with db.conn:
        db.execute("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", [run_id, step])
        return db["checkpoints"].insert(
            {
                "run_id": run_id,
                "step": step,
                "epoch": epoch,
                "path": str(path),
                "is_final": int(is_final),
                "time": time.time(),
                "metrics": _dumps(metrics or {}),
                "is_best": 0,
            }
        ).last_pk


def _checkpoint_row(row: dict) -> dict:
    row = dict(row)
    try:
        row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    except ValueError:
        row["metrics"] = {}
    row["is_best"] = int(row.get("is_best") or 0)
    return row


def checkpoints(db: sqlite_utils.Database, run_id: int) -> list[dict]:
    """A run's checkpoints in step order; `metrics` decoded to a dict, `is_best` 0 or 1."""
    rows = db.query("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step", [run_id])
    return [_checkpoint_row(r) for r in rows]


def checkpoint(db: sqlite_utils.Database, run_id: int, step: int) -> dict | None:
    rows = list(
        db.query("SELECT * FROM checkpoints WHERE run_id = ? AND step = ?", [run_id, step])
    )
    return _checkpoint_row(rows[0]) if rows else None


def set_best_checkpoint(db: sqlite_utils.Database, run_id: int, step: int | None) -> None:
    """Mark the checkpoint at `step` as the run's best (and no other); None clears the mark."""
    with db.conn:
        db.execute(
            "UPDATE checkpoints SET is_best = CASE WHEN step = ? THEN 1 ELSE 0 END"
            " WHERE run_id = ?",
            [step, run_id],
        )


def best_checkpoint(db: sqlite_utils.Database, run_id: int) -> dict | None:
    """The checkpoint marked best for a run, or None when none is marked."""
    rows = list(
        db.query(
            "SELECT * FROM checkpoints WHERE run_id = ? AND is_best = 1 ORDER BY step DESC LIMIT 1",
            [run_id],
        )
    )
    return _checkpoint_row(rows[0]) if rows else None


def delete_checkpoint(db: sqlite_utils.Database, run_id: int, step: int) -> None:
    """Forget a checkpoint whose folder retention removed (the best is never passed here)."""
    with db.conn:
        db.execute("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", [run_id, step])


def process_start_time(pid: int | None) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22), or None
    when it cannot be read (no such process, no /proc). With the pid it names one process: a
    later process reusing the pid has another start time."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional: platforms without /proc

        return int(psutil.Process(pid).create_time() * 100)
    except Exception:  # noqa: BLE001 - psutil missing or the process gone
        return None


def _pid_alive(pid: int | None, started: int | None = None) -> bool:
    """Is the process `pid` alive, and (when `started` is known) the same process that started
    then, not a later one that reused the pid?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    if started is not None:
        now = process_start_time(pid)
        if now is not None and now != started:
            return False
    return True


def run_process_alive(run: dict) -> bool:
    """Is a `running` run's process still there? On this host: its pid, checked against the
    recorded start time; on another host: a fresh heartbeat."""
    if run.get("host") == socket.gethostname():
        return _pid_alive(run.get("pid"), run.get("pid_start"))
    return time.time() - (run.get("heartbeat") or 0) <= STALE_AFTER_S


def reap_interrupted(db: sqlite_utils.Database) -> list[int]:
    """Mark `running` runs whose process is gone as `interrupted`; return their ids.

    A write, for writers and the workbench; reads show such runs as interrupted without it.
    Each update is conditional on the pid it judged, so a run claimed by a new process in the
    meantime (a resume) is left alone.
    """
    dead = [
        run for run in db.query(
            "SELECT id, pid, pid_start, host, heartbeat FROM runs WHERE status = 'running'")
        if not run_process_alive(run)
    ]
    if dead:
        with db.conn:
            for run in dead:
                db.execute(
                    "UPDATE runs SET status = 'interrupted', ended = COALESCE(ended, heartbeat)"
                    " WHERE id = ? AND status = 'running' AND pid IS ? AND pid_start IS ?",
                    [run["id"], run["pid"], run["pid_start"]],
                )
    return [run["id"] for run in dead]


def claim_run(
    db: sqlite_utils.Database, run_id: int, pid: int | None = None, *, kind: str = "train"
) -> bool:
    """Set a stopped (cancelled, failed, interrupted) run back to `running` under process `pid`
    (default: this one), in one conditional update: of several processes claiming one run at
    once exactly one gets True. A `running` run whose process is gone is reaped first."""
    reap_interrupted(db)
    pid = os.getpid() if pid is None else pid
    now = time.time()
    with db.conn:
        cur = db.conn.execute(
            "UPDATE runs SET status = 'running', pid = ?, pid_start = ?, host = ?, heartbeat = ?,"
            " ended = NULL, error = NULL WHERE id = ? AND kind = ? AND status IN (?, ?, ?)",
            [pid, process_start_time(pid), socket.gethostname(), now, run_id, kind, *RESUMABLE],
        )
    return cur.rowcount == 1


def set_run_process(db: sqlite_utils.Database, run_id: int, pid: int) -> None:
    """Hand a running run over to process `pid` (a worker the claimer started)."""
    with db.conn:
        db.execute(
            "UPDATE runs SET pid = ?, pid_start = ?, host = ?, heartbeat = ? WHERE id = ?",
            [pid, process_start_time(pid), socket.gethostname(), time.time(), run_id],
        )


def _decode(row: dict) -> dict:
    for key in ("config", "summary"):
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


def _as_seen(row: dict) -> dict:
    """A run as it stands: `running` with its process gone reads as `interrupted` (not written)."""
    row = _decode(row)
    if row.get("status") == "running" and not run_process_alive(row):
        row["status"] = "interrupted"
        row["ended"] = row.get("ended") or row.get("heartbeat")
    return row


def get_run(db: sqlite_utils.Database, run_id: int) -> dict | None:
    """A run's row (config and summary decoded); a dead `running` run reads as interrupted.
    Pure: writes nothing."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    return _as_seen(rows[0]) if rows else None


def list_runs(db: sqlite_utils.Database, kind: str | None = None) -> list[dict]:
    """Every run, newest first, with dead `running` runs shown as `interrupted` (not written)."""
    if kind:
        rows = db.query("SELECT * FROM runs WHERE kind = ? ORDER BY id DESC", [kind])
    else:
        rows = db.query("SELECT * FROM runs ORDER BY id DESC")
    return [_as_seen(r) for r in rows]


def delete_run(db: sqlite_utils.Database, run_id: int) -> None:
    """Delete a run and every row that belongs to it (files on disk are left alone)."""
    with db.conn:
        for table in ("metrics", "checkpoints", "validation_issues", "predictions"):
            db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        db.execute("DELETE FROM evaluations WHERE run_id = ?", [run_id])
        db.execute("DELETE FROM runs WHERE id = ?", [run_id])


def upsert_dataset(
    db: sqlite_utils.Database,
    path: str,
    sha256: str,
    n_examples: int,
    n_schemas: int,
    complexity_mix: dict,
) -> int:
    """Record a data set by path and content hash; the same content keeps its id."""
    existing = list(
        db.query("SELECT id FROM datasets WHERE path = ? AND sha256 = ?", [str(path), sha256])
    )
    if existing:
        return existing[0]["id"]
    with db.conn:
        return db["datasets"].insert(
            {
                "path": str(path),
                "sha256": sha256,
                "n_examples": n_examples,
                "n_schemas": n_schemas,
                "complexity_mix": _dumps(complexity_mix),
                "time": time.time(),
            }
        ).last_pk


def insert_rows(db: sqlite_utils.Database, table: str, rows: Iterable[dict]) -> None:
    """Bulk insert (validation findings, predictions) in one transaction."""
    prepared = []
    for row in rows:
        prepared.append(
            {k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
        )
    if prepared:
        with db.conn:
            db[table].insert_all(prepared, batch_size=500)


# ---------------------------------------------------------------- named reads for the panes
# Reads only: none of these marks runs interrupted or writes anything.


def run_row(db: sqlite_utils.Database, run_id: int) -> dict | None:
    """A run's row with config and summary decoded, without the interrupted check."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    return _decode(rows[0]) if rows else None


def completed_validate_run_ids(db: sqlite_utils.Database) -> list[int]:
    """Finished validate runs, newest first."""
    sql = "SELECT id FROM runs WHERE kind = 'validate' AND status = 'completed' ORDER BY id DESC"
    return [r["id"] for r in db.query(sql)]


def validation_files(db: sqlite_utils.Database, run_id: int) -> list[str]:
    """The files a validate run recorded findings for."""
    sql = "SELECT DISTINCT file FROM validation_issues WHERE run_id = ? AND file IS NOT NULL"
    return [r["file"] for r in db.query(sql, [run_id])]


def validation_findings(db: sqlite_utils.Database, run_id: int) -> list[dict]:
    """A validate run's findings in the order they were recorded."""
    sql = ("SELECT kind, severity, message, example_id, line, path, file FROM validation_issues"
           " WHERE run_id = ? ORDER BY id")
    return [dict(r) for r in db.query(sql, [run_id])]


def validation_counts(db: sqlite_utils.Database, run_id: int) -> dict[str, int]:
    """{severity: number of findings} of a validate run."""
    sql = ("SELECT severity, COUNT(*) AS n FROM validation_issues WHERE run_id = ?"
           " GROUP BY severity")
    return {r["severity"]: r["n"] for r in db.query(sql, [run_id])}


def evaluation(db: sqlite_utils.Database, run_id: int) -> dict | None:
    """The evaluations row of one run (its headline figures, decoding, report JSON)."""
    rows = list(db.query("SELECT * FROM evaluations WHERE run_id = ?", [run_id]))
    return dict(rows[0]) if rows else None


def evaluations_by_run(db: sqlite_utils.Database) -> dict[int, dict]:
    """Every evaluations row, keyed by run id."""
    return {r["run_id"]: dict(r) for r in db.query("SELECT * FROM evaluations")}


def runs_with_figures(db: sqlite_utils.Database) -> list[dict]:
    """Every run, newest first (as `list_runs` shows them), each with `figures`: what its key
    figure is made of, read in one query for all runs. Training runs: the last `train_loss` and
    `val_loss`; evaluations: `json_exact` and `field_f1`; validations: `counts`
    {severity: findings}."""
    last = ("(SELECT value FROM metrics m WHERE m.run_id = r.id AND m.name = '{0}'"
            " ORDER BY m.step DESC, m.rowid DESC LIMIT 1)")
    count = ("(SELECT COUNT(*) FROM validation_issues v WHERE v.run_id = r.id"
             " AND v.severity = '{0}')")
    sql = (
        "SELECT r.*,"
        f" CASE WHEN r.kind = 'train' THEN {last.format('train_loss')} END AS _f_train_loss,"
        f" CASE WHEN r.kind = 'train' THEN {last.format('val_loss')} END AS _f_val_loss,"
        " e.json_exact AS _f_json_exact, e.field_f1 AS _f_field_f1,"
        f" CASE WHEN r.kind = 'validate' THEN {count.format('error')} END AS _f_error,"
        f" CASE WHEN r.kind = 'validate' THEN {count.format('warning')} END AS _f_warning,"
        f" CASE WHEN r.kind = 'validate' THEN {count.format('info')} END AS _f_info"
        " FROM runs r LEFT JOIN evaluations e ON e.run_id = r.id ORDER BY r.id DESC"
    )
    out = []
    for row in db.query(sql):
        row = dict(row)
        f = {k[3:]: row.pop(k) for k in list(row) if k.startswith("_f_")}
        counts = {s: f.pop(s) for s in ("error", "warning", "info")}
        f["counts"] = {s: n for s, n in counts.items() if n}
        run = _as_seen(row)
        run["figures"] = f
        out.append(run)
    return out
