"""Pure reads of the run log: runs as seen now, metrics, checkpoints, and the panes' named reads."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from engine.runlog.liveness import run_process_alive


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
    rows = list(db.query("SELECT * FROM checkpoints WHERE run_id = ? AND step = ?", [run_id, step]))
    return _checkpoint_row(rows[0]) if rows else None


def best_checkpoint(db: sqlite_utils.Database, run_id: int) -> dict | None:
    """The checkpoint marked best for a run, or None when none is marked."""
    rows = list(
        db.query(
            "SELECT * FROM checkpoints WHERE run_id = ? AND is_best = 1 ORDER BY step DESC LIMIT 1",
            [run_id],
        )
    )
    return _checkpoint_row(rows[0]) if rows else None


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
    sql = (
        "SELECT kind, severity, message, example_id, line, path, file FROM validation_issues"
        " WHERE run_id = ? ORDER BY id"
    )
    return [dict(r) for r in db.query(sql, [run_id])]


def validation_counts(db: sqlite_utils.Database, run_id: int) -> dict[str, int]:
    """{severity: number of findings} of a validate run."""
    sql = "SELECT severity, COUNT(*) AS n FROM validation_issues WHERE run_id = ? GROUP BY severity"
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
    last = (
        "(SELECT value FROM metrics m WHERE m.run_id = r.id AND m.name = '{0}'"
        " ORDER BY m.step DESC, m.rowid DESC LIMIT 1)"
    )
    count = (
        "(SELECT COUNT(*) FROM validation_issues v WHERE v.run_id = r.id AND v.severity = '{0}')"
    )
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


def evaluation_report(db: sqlite_utils.Database, run_id: int) -> str | None:
    """An evaluation's stored report (JSON text), or None when none was stored."""
    rows = list(db.query("SELECT report FROM evaluations WHERE run_id = ?", [run_id]))
    return rows[0]["report"] if rows else None


def prediction_rows(
    db: sqlite_utils.Database,
    run_id: int,
    schema: str | None = None,
    failure: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Prediction rows of an evaluation as stored, optionally one schema or failure category
    (`failing` for every failure), in the order they were recorded."""
    sql, params = "SELECT * FROM predictions WHERE run_id = ?", [run_id]
    if schema:
        sql, params = sql + " AND schema_id = ?", params + [schema]
    if failure == "failing":
        sql += " AND failure IS NOT NULL"
    elif failure:
        sql, params = sql + " AND failure = ?", params + [failure]
    sql += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
    return list(db.query(sql, params))
