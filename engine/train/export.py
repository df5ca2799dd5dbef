"""Export a training run's adapter merged into its base model: one self-contained HF folder."""

from __future__ import annotations

from pathlib import Path

from engine import runlog
from engine.train.process import RunError


def run_adapter(db_path: str | Path, run_id: int) -> tuple[dict, Path, bool]:
    """(run, adapter folder, is_final): the final adapter, else the last checkpoint's."""
    run = runlog.get_run(runlog.connect(db_path), run_id)
    if run is None:
        raise RunError(f"no run {run_id} in {db_path}")
    if run["kind"] != "train":
        raise RunError(f"run {run_id} is a {run['kind']} run, not a training run")
    if run.get("adapter") and Path(run["adapter"]).is_dir():
        return run, Path(run["adapter"]), True
    ckpts = [c for c in runlog.checkpoints(runlog.connect(db_path), run_id)]
    for ckpt in reversed(ckpts):
        adapter = Path(ckpt["path"]) / "adapter"
        if adapter.is_dir():
            return run, adapter, False
    raise RunError(f"run {run_id} has no adapter yet (status {run['status']}, no checkpoint)")


def export_merged(db_path: str | Path, run_id: int, out_dir: str | Path, log=print) -> Path:
    """Write base model + adapter, merged, as safetensors with the tokenizer, to `out_dir`."""
    import torch
    from peft import PeftModel

    from engine.models import load_model

    run, adapter, final = run_adapter(db_path, run_id)
    if not final:
        log(f"run {run_id} has no final adapter ({run['status']}): exporting {adapter.parent.name}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RunError(f"{out_dir} exists and is not empty; choose a new folder")
    base, tok = load_model(run["config"]["model"], device="cpu", dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
