"""The run log's schema: tables, versioned migrations, connections and their errors."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
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


def connect(
    path: str | os.PathLike | None = None, *, busy_timeout_s: float = 30.0
) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) the run log at `path` (default ./runs.db).
    `busy_timeout_s` is how long a statement waits on another process's lock before failing
    with "database is locked" (the TUI's reads wait briefly and say the run log is busy)."""
    path = Path(path or DEFAULT_DB)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    db = sqlite_utils.Database(conn)
    _enable_wal(db, busy_timeout_s)
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def _enable_wal(db: sqlite_utils.Database, busy_timeout_s: float) -> None:
    """Switch a run log to WAL. The switch needs the file to itself, and SQLite can report a
    new run log that another process is creating at that moment as locked without waiting on
    the busy timeout: retry until the timeout has passed."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            if db.journal_mode != "wal":
                db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def close(db: sqlite_utils.Database) -> None:
    """Close a connection from `connect` or `connect_readonly`."""
    db.conn.close()


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is SQLite giving up on another connection's lock on the run log."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


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
        tables = {
            r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
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
        return (
            f"{path}: the disk holding the run log is full ({text}); free some space "
            "and run the command again"
        )
    if not isinstance(exc, sqlite3.Error):
        return None
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (
            f"{path}: the run log is damaged ({text}); restore a backup, or move it "
            "aside and use another --db"
        )
    target = Path(str(path))
    on_read_only = target.exists() and not (
        os.access(target, os.W_OK) and os.access(target.parent, os.W_OK)
    )
    if "readonly" in low or "read-only" in low or ("unable to open" in low and on_read_only):
        return (
            f"{path}: the run log is read-only ({text}); make it writable, or use another "
            "--db for commands that record runs"
        )
    if "locked" in low or "busy" in low:
        return (
            f"{path}: the run log stayed locked by another process ({text}); try again "
            "when it is done"
        )
    if "unable to open" in low:
        return f"{path}: cannot open the run log ({text}); check the path and its permissions"
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
