"""Where SchemaLab keeps things on disk: the cache (converted models, the tiny model) and run outputs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "datasets" / "sample"


def cache_dir() -> Path:
    """`$SCHEMALAB_CACHE`, else `$XDG_CACHE_HOME/schemalab`, else `~/.cache/schemalab`."""
    root = os.environ.get("SCHEMALAB_CACHE")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "schemalab"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Run outputs -------------------------------------------------------------------------------
# A run's outputs live beside the run log that owns it (`runs.db` -> `runs-outputs/run-N`), so
# two run logs in one folder never share a folder; an owner file in each output folder names
# the run log and run that own it, and no other run writes there.

OWNER_FILE = ".schemalab-run.json"


class OutputsTaken(Exception):
    """An output folder that belongs to another run (or holds files of unknown origin)."""


def outputs_root(db_path: str | os.PathLike) -> Path:
    """`<folder of the run log>/<run log's stem>-outputs`: one per run log."""
    db = Path(db_path).resolve()
    return db.parent / f"{db.stem}-outputs"


def run_identity(db_path: str | os.PathLike, run_id: int, started: float | None) -> dict:
    """What an owner file records: the run log (absolute), the run id and when it started (a
    run log deleted and created again reuses ids, so the id alone is not unique)."""
    return {"db": str(Path(db_path).resolve()), "run_id": int(run_id), "started": started}


def read_owner(folder: str | os.PathLike) -> dict | None:
    import json

    try:
        owner = json.loads((Path(folder) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def owner_problem(folder: str | os.PathLike, identity: dict, adopt: bool = False) -> str | None:
    """Why `folder` cannot be this run's output folder, or None when it is free or already ours.
    Taken: a file; a folder whose owner file names another run; a non-empty folder with no
    owner file, unless `adopt` (a folder recorded for this run before owner files existed)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} is a file"
    owner = read_owner(folder)
    if owner is None:
        if adopt or not any(folder.iterdir()):
            return None
        return f"{folder} already holds files that no SchemaLab run owns"
    if owner != identity:
        return f"{folder} belongs to run {owner.get('run_id')} of run log {owner.get('db')}"
    return None


def claim_run_dir(folder: str | os.PathLike, identity: dict, adopt: bool = False) -> Path:
    """Make `folder` this run's output folder (creating it and its owner file); raises
    OutputsTaken when another run owns it."""
    import json

    folder = Path(folder)
    problem = owner_problem(folder, identity, adopt)
    if problem:
        raise OutputsTaken(f"{problem}; a run never writes into another run's output folder")
    folder.mkdir(parents=True, exist_ok=True)
    if read_owner(folder) != identity:
        (folder / OWNER_FILE).write_text(json.dumps(identity) + "\n", encoding="utf-8")
    return folder


def default_run_dir(db_path: str | os.PathLike, run_id: int, identity: dict) -> Path:
    """This run's default output folder: `<outputs_root>/run-N`, or `run-N-2`, `run-N-3`, ...
    when that one belongs to another run (a run log deleted and created again)."""
    root = outputs_root(db_path)
    candidate, n = root / f"run-{run_id}", 1
    while owner_problem(candidate, identity):
        n += 1
        candidate = root / f"run-{run_id}-{n}"
    return candidate


def last_config_path(db_path: str | os.PathLike) -> Path:
    """Where the Train form keeps the last config it showed for a run log (in the cache,
    one file per run log, so two projects do not share a form)."""
    import hashlib

    key = hashlib.sha256(str(Path(db_path).resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "train-form" / f"{key}.yaml"
