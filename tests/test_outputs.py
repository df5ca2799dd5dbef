"""A run's outputs belong to its run log: two run logs in one folder never share an output
folder, and no run writes into a folder another run owns."""

from __future__ import annotations

import json

import pytest

from engine import runlog
from engine.paths import (
    OWNER_FILE,
    OutputsTaken,
    claim_run_dir,
    default_run_dir,
    outputs_root,
    owner_problem,
    run_identity,
)
from engine.train.config import load_config
from engine.train.process import RunError, create_train_run, run_foreground


def test_each_run_log_has_its_own_outputs_folder(tmp_path):
    a, b = tmp_path / "runs.db", tmp_path / "other.db"
    assert outputs_root(a) == tmp_path / "runs-outputs"
    assert outputs_root(b) == tmp_path / "other-outputs"
    ida, idb = run_identity(a, 3, 1.0), run_identity(b, 3, 2.0)
    assert default_run_dir(a, 3, ida) != default_run_dir(b, 3, idb)


def test_a_folder_owned_by_another_run_is_never_reused(tmp_path):
    db = tmp_path / "runs.db"
    first = run_identity(db, 1, 100.0)
    folder = claim_run_dir(default_run_dir(db, 1, first), first)
    assert json.loads((folder / OWNER_FILE).read_text()) == first
    assert claim_run_dir(folder, first) == folder  # its own run may come back (resume)
    # The run log deleted and created again: run 1 again, but another run.
    again = run_identity(db, 1, 200.0)
    assert "belongs to run 1" in owner_problem(folder, again)
    with pytest.raises(OutputsTaken):
        claim_run_dir(folder, again)
    fresh = default_run_dir(db, 1, again)
    assert fresh == folder.parent / "run-1-2"
    # A folder with files and no owner: refused for a new run, adopted by a run it was recorded for.
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert "no SchemaLab run owns" in owner_problem(stray, again)
    assert owner_problem(stray, again, adopt=True) is None


def _cfg(sample_dir, *more):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={sample_dir / 'train.jsonl'}",
            "max_steps=2",
            "log_every=1",
            "eval_every=100",
            "save_every=100",
            "val_eval_limit=0",
            *more,
        ],
    )


def test_an_explicit_out_dir_is_not_shared_by_two_runs(sample_dir, tmp_path):
    out = tmp_path / "shared-out"
    _, cfg = create_train_run(_cfg(sample_dir, f"out_dir={out}"), tmp_path / "a.db")
    assert cfg.out_dir == str(out.resolve())
    with pytest.raises(RunError, match="belongs to run"):
        create_train_run(_cfg(sample_dir, f"out_dir={out}"), tmp_path / "b.db")
    with pytest.raises(RunError, match="belongs to run"):  # the same run log, a second run
        create_train_run(_cfg(sample_dir, f"out_dir={out}"), tmp_path / "a.db")
    assert [r["id"] for r in runlog.list_runs(runlog.connect(tmp_path / "b.db"))] == []


def test_two_run_logs_in_one_folder_train_into_separate_folders(
    sample_dir, tmp_path, monkeypatch, tiny_model_path
):
    monkeypatch.chdir(tmp_path)
    dirs = []
    for name in ("runs.db", "other.db"):
        db_path = tmp_path / name
        run_id = run_foreground(_cfg(sample_dir), db_path, log=lambda m: None)
        run = runlog.get_run(runlog.connect(db_path), run_id)
        assert run_id == 1 and run["status"] == "completed", run["error"]
        dirs.append(run["out_dir"])
        owner = json.loads((tmp_path / run["out_dir"] / OWNER_FILE).read_text())
        assert owner["db"] == str(db_path.resolve()) and owner["run_id"] == 1
        assert run["adapter"].startswith(run["out_dir"])
    assert dirs == [
        str(tmp_path / "runs-outputs" / "run-1"),
        str(tmp_path / "other-outputs" / "run-1"),
    ]
    assert not (tmp_path / "outputs").exists()


def test_cli_refuses_an_out_dir_another_run_owns(sample_dir, tmp_path, capsys, tiny_model_path):
    from engine.cli import main

    out = tmp_path / "taken"
    create_train_run(_cfg(sample_dir, f"out_dir={out}"), tmp_path / "a.db")
    args = [
        "train",
        "--set",
        "model=tiny",
        "--set",
        f"train_data={sample_dir / 'train.jsonl'}",
        "--set",
        f"out_dir={out}",
        "--db",
        str(tmp_path / "b.db"),
    ]
    assert main(args) == 2
    assert "belongs to run 1" in capsys.readouterr().err
