"""Shared fixtures: a private cache (so the tiny model is built once per session), a fresh run
log per test, and the data sets read in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample"
EDGEJSON = REPO.parent / "shared" / "edgejson"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep tests away from the user's cache; the tiny model is built once for the session."""
    cache = os.environ.get("SCHEMALAB_TEST_CACHE") or str(tmp_path_factory.mktemp("cache"))
    old = os.environ.get("SCHEMALAB_CACHE")
    os.environ["SCHEMALAB_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("SCHEMALAB_CACHE", None)
    else:
        os.environ["SCHEMALAB_CACHE"] = old


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture
def edgejson_dir() -> Path:
    if not (EDGEJSON / "train_v3.jsonl").exists():
        pytest.skip(f"EdgeJSON data set not found at {EDGEJSON} (it lives in ../shared/edgejson)")
    return EDGEJSON


@pytest.fixture(scope="session")
def tiny_model_path(_private_cache) -> Path:
    from engine.models.load import resolve_model

    return Path(resolve_model("tiny"))


@pytest.fixture
def anyio_backend():
    """Pilot tests (marked anyio) run on asyncio."""
    return "asyncio"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped where CUDA is not available (torch is imported only when
    such a test was collected)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if not available:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu:
            item.add_marker(skip)


@pytest.fixture
def small_fs(tmp_path):
    """`small_fs(size)`: a folder on a fresh tmpfs of `size` (e.g. "600k"), unmounted after the
    test; the test is skipped where mounting is not allowed (it needs root)."""
    import subprocess

    mounted = []

    def mount(size: str):
        where = tmp_path / f"fs-{len(mounted)}"
        where.mkdir()
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                check=False,
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is None or done.returncode != 0:
            pytest.skip("cannot mount a small file system here (needs root)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
