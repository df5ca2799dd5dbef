"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder holds the adapter (PEFT format), the optimizer and scheduler states, the
RNG states and `state.json` (step, epoch, elapsed time). The data order needs no saving: it is
a function of (seed, epoch), so the step number alone says where in the data the run was.
Folders are written under a temporary name and renamed, so a crash never leaves half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(out_dir: Path, model, optimizer, scheduler, state: dict) -> Path:
    import torch

    dest = checkpoint_dir(out_dir, state["step"])
    tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp / "adapter")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    except BaseException:
        # A full disk (or a stop) half way: the partial folder goes, the space comes back.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():  # the same step saved again (a cancel right after a periodic save)
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore adapter weights, optimizer, scheduler and RNG from `path`; return its state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    device = next(p.device for p in model.parameters() if p.requires_grad)
    optimizer.load_state_dict(
        torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
    )
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / "state.json").read_text())
