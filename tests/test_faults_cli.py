"""Hostile input that used to end in a traceback or a silent wrong answer, and out-of-memory in
an evaluation: each is one line saying what is wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import runlog
from engine.cli import main


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 1 and "Traceback" not in err, err
    return lines[-1]


def _bad_yaml(tmp_path: Path) -> list[str]:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"model: tiny\nname: caf\xe9\n")
    return ["train", "--config", str(path), "--check"]


def _no_tokenizer(tmp_path: Path, tiny: Path) -> list[str]:
    folder = tmp_path / "model-without-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny / name).read_bytes())
    return ["eval", "--model", str(folder), "--data", "datasets/sample/test.jsonl", "--limit", "1"]


CASES = {
    # case: (argv builder, what the one line must say)
    "non-UTF-8 YAML config": (lambda t, m: _bad_yaml(t), "line 2: not UTF-8"),
    "model folder without tokenizer": (_no_tokenizer, "no tokenizer"),
    "eval --batch-size 0": (
        lambda t, m: [
            "eval",
            "--model",
            "tiny",
            "--data",
            "datasets/sample/test.jsonl",
            "--batch-size",
            "0",
        ],
        "--batch-size must be at least 1",
    ),
    "eval --limit -1": (
        lambda t, m: [
            "eval",
            "--model",
            "tiny",
            "--data",
            "datasets/sample/test.jsonl",
            "--limit",
            "-1",
        ],
        "--limit must be at least 1",
    ),
    "--device cuda without a GPU": (
        lambda t, m: [
            "eval",
            "--model",
            "tiny",
            "--device",
            "cuda",
            "--data",
            "datasets/sample/test.jsonl",
            "--limit",
            "1",
        ],
        "--device cuda",
    ),
    "huge run id": (lambda t, m: ["show", "99999999999999999999999"], "no such run id"),
    "lr=.inf": (
        lambda t, m: [
            "train",
            "--set",
            "model=tiny",
            "--set",
            "train_data=datasets/sample/train.jsonl",
            "--set",
            "lr=.inf",
            "--check",
        ],
        "lr must be a finite number",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line(case, tmp_path, capsys, monkeypatch, tiny_model_path):
    import torch

    if case.startswith("--device cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    build, expected = CASES[case]
    argv = build(tmp_path, tiny_model_path) + ["--db", str(tmp_path / "runs.db")]
    with pytest.raises(SystemExit) if case == "huge run id" else _no_raise():
        code = main(argv)
        assert code != 0
    line = _one_line(capsys.readouterr().err)
    assert expected in line, line


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_export_onto_an_existing_file_is_refused(tmp_path, capsys):
    db = runlog.connect(tmp_path / "runs.db")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    run_id = runlog.create_run(
        db,
        "train",
        {"model": "tiny"},
        status="completed",
        adapter=str(adapter),
        out_dir=str(tmp_path),
    )
    target = tmp_path / "merged.bin"
    target.write_bytes(b"precious")
    code = main(["export", str(run_id), "--merged", str(target), "--db", str(tmp_path / "runs.db")])
    assert code == 1
    assert "is a file" in _one_line(capsys.readouterr().err)
    assert target.read_bytes() == b"precious"


def test_out_of_memory_in_an_evaluation_keeps_what_was_done_and_names_a_batch_size(
    tmp_path, monkeypatch, capsys, tiny_model_path
):
    """A CUDA out-of-memory cannot be produced on a CPU: it is raised at the point generation
    would raise it (after two batches of real generation)."""
    import torch

    from engine.decode import generate as decoding

    real = decoding.Generator.generate

    def generate(
        self, items, cfg=None, constrained=False, batch_size=8, cancel=None, *, on_batch=None, **kw
    ):
        seen = []

        def counted(indices, gens):
            on_batch(indices, gens)
            seen.append(1)
            if len(seen) == 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

        return real(self, items, cfg, constrained, batch_size, cancel, on_batch=counted, **kw)

    monkeypatch.setattr(decoding.Generator, "generate", generate)
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    db = tmp_path / "runs.db"
    code = main(
        [
            "eval",
            "--model",
            "tiny",
            "--data",
            "datasets/sample/test.jsonl",
            "--limit",
            "8",
            "--batch-size",
            "2",
            "--set",
            "max_new_tokens=8",
            "--db",
            str(db),
        ]
    )
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "out of memory at batch size 2" in line and "--batch-size 1" in line
    assert "keeps the 4 predictions" in line
    run = runlog.list_runs(runlog.connect_readonly(db), kind="eval")[0]
    assert run["status"] == "failed"
    assert main(["show", str(run["id"]), "--format", "json", "--db", str(db)]) == 0
    report = json.loads(capsys.readouterr().out)["run"]
    assert report["overall"]["n"] == 4 and "after 4 of 8" in report["partial"]
