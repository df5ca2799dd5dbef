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
