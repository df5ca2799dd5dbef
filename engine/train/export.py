"""Export a training run's adapter merged into its base model: one self-contained HF folder.

Which adapter follows `engine.decode.generate.resolve_adapter`, as evaluation and the Playground do:
`RUN_ID` is the best checkpoint when one is marked (else the final adapter), `RUN_ID:final` the
final adapter, `RUN_ID:step-N` that step's checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from engine import runlog
from engine.train.process import RunError


def describe_adapter(db, run: dict, adapter: Path) -> str:
    """Which of a run's adapters `adapter` is, in words: best checkpoint, final, step N."""
    adapter = Path(adapter).resolve()
    if run.get("out_dir") and adapter == (Path(run["out_dir"]) / "adapter").resolve():
        return "the final adapter"
    for c in runlog.checkpoints(db, run["id"]):
        if adapter in (Path(c["path"]).resolve(), (Path(c["path"]) / "adapter").resolve()):
            return f"the {'best ' if c['is_best'] else ''}checkpoint at step {c['step']}"
    return str(adapter)


def run_adapter(db_path: str | Path, spec: int | str) -> tuple[dict, Path, str]:
    """(run, adapter folder, what it is in words) for an adapter spec `RUN_ID[:final|:step-N]`."""
    from engine.decode.generate import DecodingError, resolve_adapter

    spec = str(spec).strip()
    run_part = spec.split(":", 1)[0]
    if not run_part.isdigit():
        raise RunError(f"{spec!r} is not a run: give RUN_ID, RUN_ID:final or RUN_ID:step-N")
    db = runlog.connect(db_path)
    run = runlog.get_run(db, int(run_part))
    if run is None:
        raise RunError(f"no run {run_part} in {db_path}")
    if run["kind"] != "train":
        raise RunError(f"run {run_part} is a {run['kind']} run, not a training run")
    try:
        adapter, _ = resolve_adapter(spec, db)
    except DecodingError as exc:
        raise RunError(str(exc)) from exc
    return run, adapter, describe_adapter(db, run, adapter)


def export_merged(db_path: str | Path, spec: int | str, out_dir: str | Path, log=print) -> Path:
    """Write base model + adapter, merged, as safetensors with the tokenizer, to `out_dir`."""
    import torch
    from peft import PeftModel

    from engine.models.load import load_model

    run, adapter, what = run_adapter(db_path, spec)
    log(f"run {run['id']} ({run['status']}): exporting {what}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"{out_dir} is a file; --merged takes a new folder to write")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RunError(f"{out_dir} exists and is not empty; choose a new folder")
    base, tok = load_model(run["config"]["model"], device="cpu", dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
