"""Every write to the run log: runs, metrics, checkpoints, datasets, rows, and reaping."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from engine.runlog.liveness import process_start_time, run_process_alive
from engine.runlog.schema import RESUMABLE, RUN_KINDS, RUN_STATUSES


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
        return (
            db["checkpoints"]
            .insert(
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
            )
            .last_pk
        )


def set_best_checkpoint(db: sqlite_utils.Database, run_id: int, step: int | None) -> None:
    """Mark the checkpoint at `step` as the run's best (and no other); None clears the mark."""
    with db.conn:
        db.execute(
            "UPDATE checkpoints SET is_best = CASE WHEN step = ? THEN 1 ELSE 0 END"
            " WHERE run_id = ?",
            [step, run_id],
        )


def delete_checkpoint(db: sqlite_utils.Database, run_id: int, step: int) -> None:
    """Forget a checkpoint whose folder retention removed (the best is never passed here)."""
    with db.conn:
        db.execute("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", [run_id, step])


def reap_interrupted(db: sqlite_utils.Database) -> list[int]:
    """Mark `running` runs whose process is gone as `interrupted`; return their ids.

    A write, for writers and the workbench; reads show such runs as interrupted without it.
    Each update is conditional on the pid it judged, so a run claimed by a new process in the
    meantime (a resume) is left alone.
    """
    dead = [
        run
        for run in db.query(
            "SELECT id, pid, pid_start, host, heartbeat FROM runs WHERE status = 'running'"
        )
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
        return (
            db["datasets"]
            .insert(
                {
                    "path": str(path),
                    "sha256": sha256,
                    "n_examples": n_examples,
                    "n_schemas": n_schemas,
                    "complexity_mix": _dumps(complexity_mix),
                    "time": time.time(),
                }
            )
            .last_pk
        )


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


def store_evaluation(db: sqlite_utils.Database, row: dict) -> None:
    """An evaluation's aggregates and report (one row per run, replaced when re-stored)."""
    with db.conn:
        db["evaluations"].insert(row, replace=True)
