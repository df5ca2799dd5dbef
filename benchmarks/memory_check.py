"""Estimated against measured peak training memory, on this machine's device.

Each case trains a few steps in its own process (`python -m engine train`, one at a time) on
synthetic examples built to be just under max_seq_len tokens (about half prompt, half target),
so the first batch is the peak batch; the run's summary holds the estimate and the measured peak
(CUDA: max_memory_reserved; CPU: peak resident set of the training process). Prints one table
and the ratio measured / estimated; exits 1 when a ratio is outside 0.8..1.2.

    python benchmarks/memory_check.py                        # tiny + smollm2-135m:random cases
    python benchmarks/memory_check.py --cases tiny-8x512 135m-2x512-ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name -> (model, batch, max_seq_len, gradient_checkpointing)
CASES = {
    "tiny-8x512": ("tiny", 8, 512, False),
    "135m-2x512": ("smollm2-135m:random", 2, 512, False),
    "135m-2x512-ckpt": ("smollm2-135m:random", 2, 512, True),
    "135m-2x1024": ("smollm2-135m:random", 2, 1024, False),
    "135m-2x1024-ckpt": ("smollm2-135m:random", 2, 1024, True),
    "360m-2x1024": ("smollm2-360m:random", 2, 1024, False),
    "360m-2x1024-ckpt": ("smollm2-360m:random", 2, 1024, True),
}
DEFAULT = ["tiny-8x512", "135m-2x512", "135m-2x512-ckpt", "135m-2x1024", "135m-2x1024-ckpt"]
WORDS = (
    "alpha bravo charlie delta echo river stone market order invoice total amount date "
    "customer ship paid item price city north south green blue report"
).split()


def synthetic_data(model: str, max_seq_len: int, n: int, folder: Path) -> Path:
    """n records whose prompt + target + EOS is 90-99% of max_seq_len tokens (target about
    half), checked with the model's tokenizer and template."""
    from engine.decode.prompt import render_prompt, render_target
    from engine.models.load import load_tokenizer

    tok = load_tokenizer(model)
    rng = random.Random(0)

    def length(prompt: str, target: dict) -> int:
        text = render_prompt(prompt, "synthetic") + render_target(target)
        return len(tok(text, add_special_tokens=False)["input_ids"]) + 1

    out = folder / f"synthetic-{model.replace(':', '-').replace('/', '-')}-{max_seq_len}.jsonl"
    lines = []
    for i in range(n):
        goal = int(max_seq_len * rng.uniform(0.9, 0.99))
        words = [rng.choice(WORDS) for _ in range(goal)]
        lo, hi = 1, goal
        while lo < hi:  # the most words that stay within goal tokens
            mid = (lo + hi + 1) // 2
            p_words = words[: max(1, mid // 2)]
            t_words = words[max(1, mid // 2) : mid]
            if length(" ".join(p_words), {"text": " ".join(t_words)}) <= goal:
                lo = mid
            else:
                hi = mid - 1
        prompt = " ".join(words[: max(1, lo // 2)])
        target = {"text": " ".join(words[max(1, lo // 2) : lo])}
        lines.append(
            json.dumps(
                {
                    "id": f"syn_{i}",
                    "schema_name": "synthetic",
                    "prompt": prompt,
                    "expected_output": target,
                }
            )
        )
    out.write_text("\n".join(lines) + "\n")
    return out


def run_case(name: str, folder: Path, steps: int, threads: int) -> dict:
    from engine import runlog

    model, batch, seq, ckpt = CASES[name]
    data = synthetic_data(model, seq, batch * (steps + 1), folder)
    db = folder / f"{name}.db"
    sets = {
        "model": model,
        "train_data": str(data),
        "val_fraction": 0,
        "batch_size": batch,
        "grad_accum": 1,
        "max_seq_len": seq,
        "gradient_checkpointing": ckpt,
        "max_steps": steps,
        "epochs": 1,
        "val_eval_limit": 0,
        "log_every": 1,
        "eval_every": 10_000,
        "save_every": 10_000,
        "lora_r": 16,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }
    cmd = [sys.executable, "-m", "engine", "train", "--db", str(db)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"case": name, "error": " | ".join(tail)}
    run = runlog.get_run(runlog.connect(db), 1)  # the only run of a fresh run log
    s = run.get("summary") or {}
    return {
        "case": name,
        "model": model,
        "batch": batch,
        "seq": s.get("longest"),
        "ckpt": ckpt,
        "device": s.get("memory_device"),
        "estimate_gb": s.get("memory_estimate_gb"),
        "measured_gb": s.get("peak_memory_gb"),
        "kind": s.get("peak_memory_kind"),
        "ratio": s.get("memory_ratio"),
        "wall_s": round(wall, 1),
        "parts": s.get("memory_estimate_parts"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT, choices=sorted(CASES))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memcheck-") as tmp:
        for name in args.cases:
            row = run_case(name, Path(tmp), args.steps, args.threads)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'case':<18} {'device':<6} {'T':>5} {'estimate':>9} {'measured':>9} {'ratio':>6}")
    bad = 0
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<18} failed: {r['error']}")
            bad += 1
            continue
        ok = r["ratio"] is not None and 0.8 <= r["ratio"] <= 1.2
        bad += not ok
        print(
            f"{r['case']:<18} {r['device']:<6} {r['seq']:>5} {r['estimate_gb']:>8.2f}G "
            f"{r['measured_gb']:>8.2f}G {r['ratio']:>6.2f}{'' if ok else '  <- outside 20%'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
