"""The CUDA path, checked end to end on a real GPU; prints one table, exits 1 on any mismatch.

For `smollm2-135m:random` and `smollm2-360m:random` (the real architectures and tokenizer,
random weights: no download):

1. train: a few hundred bf16 LoRA steps (`schemalab train`, its own process) on synthetic
   examples just under max_seq_len; the run must complete, and its measured peak
   (torch.cuda.max_memory_reserved) must be within 20% of the estimate (without the CUDA
   context term, which the allocator does not see); tokens/s from the run's metrics.
2. oom: a config far beyond the card, launched with --force: the run must end `failed` with the
   out-of-memory hint in its error, and the process must exit 1 (not crash).
3. decode: batched greedy decoding of validation prompts with and without the schema grammar:
   tokens/s of each and the constrained cost; every constrained answer must parse and be
   schema-valid unless it hit max_new_tokens.

Without a CUDA device it prints "no CUDA device: skipped" and exits 0.

    python benchmarks/gpu_check.py                  # both models, 300 steps
    python benchmarks/gpu_check.py --models smollm2-135m:random --steps 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = ("smollm2-135m:random", "smollm2-360m:random")
TOLERANCE = 0.2


def train_case(
    model: str,
    folder: Path,
    *,
    steps: int,
    batch: int,
    seq: int,
    force=False,
    n_examples: int | None = None,
) -> dict:
    """One `schemalab train` run in its own process; its run row, exit code and wall time."""
    from memory_check import synthetic_data

    from engine import runlog

    data = synthetic_data(model, seq, n_examples or batch * 4, folder)
    db = folder / f"{model.replace(':', '-')}-{batch}x{seq}.db"
    sets = {
        "model": model,
        "train_data": str(data),
        "val_fraction": 0,
        "batch_size": batch,
        "grad_accum": 1,
        "max_seq_len": seq,
        "max_steps": steps,
        "epochs": 10_000,
        "val_eval_limit": 0,
        "log_every": 10,
        "eval_every": 10**6,
        "save_every": 10**6,
        "precision": "auto",
        "lora_r": 16,
    }
    cmd = [sys.executable, "-m", "engine", "train", "--db", str(db)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    if force:
        cmd.append("--force")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    run = runlog.get_run(runlog.connect(db), 1) if db.exists() else None
    rates = []
    if run:
        rates = [r["value"] for r in runlog.metrics(runlog.connect(db), 1, "tokens_per_s_all")]
    return {
        "rc": proc.returncode,
        "run": run or {},
        "wall_s": wall,
        "stderr": proc.stderr[-2000:],
        "tokens_per_s": rates[-1] if rates else None,
    }


def decode_case(model: str, n: int, batch: int, max_new_tokens: int) -> dict:
    """Batched decoding with and without the grammar on the bundled sample's test prompts."""
    import torch

    from engine.decode.generate import Generator, decoding_from
    from engine.evaluate.metrics import parse_output, schema_errors
    from engine.evaluate.run import load_data, schema_of

    examples, registry, _ = load_data(REPO / "datasets" / "sample" / "test.jsonl")
    items = [(e.prompt, e.schema_id, schema_of(e, registry)) for e in examples[:n]]
    gen = Generator(model, device="cuda")
    cfg = decoding_from("greedy", [f"max_new_tokens={max_new_tokens}"])
    gen.generate(items[:1], decoding_from("greedy", ["max_new_tokens=4"]))  # warm-up
    out = {}
    for constrained in (False, True):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gens = gen.generate(items, cfg, constrained=constrained, batch_size=batch)
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        toks = sum(g.n_tokens for g in gens)
        out["constrained" if constrained else "free"] = {
            "seconds": secs,
            "tokens": toks,
            "tok_s": toks / secs,
            "truncated": sum(g.truncated for g in gens),
            "gens": gens,
        }
    bad = 0
    for g, (_p, _sid, schema) in zip(out["constrained"]["gens"], items):
        if g.truncated:
            continue
        value, _problem = parse_output(g.text)
        if value is None or (schema is not None and schema_errors(value, schema)):
            bad += 1
    out["invalid_constrained"] = bad
    del gen
    torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=1024)
    ap.add_argument("--decode-n", type=int, default=32)
    ap.add_argument("--decode-max-new-tokens", type=int, default=128)
    ap.add_argument("--skip-oom", action="store_true")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    from engine.train.process import OOM_HINT

    print(
        f"device: {torch.cuda.get_device_name(0)}, "
        f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GB, torch "
        f"{torch.__version__}",
        flush=True,
    )
    rows: list[tuple[str, str, str, bool]] = []  # (model, check, figures, ok)
    with tempfile.TemporaryDirectory(prefix="gpucheck-") as tmp:
        folder = Path(tmp)
        for model in args.models:
            r = train_case(
                model, folder, steps=args.steps, batch=args.batch_size, seq=args.max_seq_len
            )
            run, s = r["run"], (r["run"].get("summary") or {})
            ratio = s.get("memory_ratio")
            ok = (
                r["rc"] == 0
                and run.get("status") == "completed"
                and ratio is not None
                and abs(ratio - 1) <= TOLERANCE
            )
            rows.append(
                (
                    model,
                    f"train {args.batch_size}x{args.max_seq_len} bf16, {args.steps} steps",
                    f"status {run.get('status')}, est {s.get('memory_estimate_gb')} GB "
                    f"(- context {(s.get('memory_estimate_parts') or {}).get('runtime')}), "
                    f"reserved {s.get('peak_memory_gb')} GB, allocated "
                    f"{s.get('peak_allocated_gb')} GB, ratio {ratio}, "
                    f"{(r['tokens_per_s'] or 0):,.0f} tok/s, {r['wall_s']:.0f} s",
                    ok,
                )
            )
            if not ok:
                print(r["stderr"], file=sys.stderr)
            print(rows[-1], flush=True)
            torch.cuda.empty_cache()

            if not args.skip_oom and model == args.models[-1]:
                oom = train_case(
                    model, folder, steps=3, batch=64, seq=4096, force=True, n_examples=64
                )
                run = oom["run"]
                error = run.get("error") or ""
                ok = oom["rc"] == 1 and run.get("status") == "failed" and OOM_HINT in error
                rows.append(
                    (
                        model,
                        "out of memory (64x4096, --force)",
                        f"rc {oom['rc']}, status {run.get('status')}, hint "
                        f"{'present' if OOM_HINT in error else 'MISSING'}",
                        ok,
                    )
                )
                if not ok:
                    print(oom["stderr"], file=sys.stderr)
                print(rows[-1], flush=True)

            try:
                d = decode_case(model, args.decode_n, args.batch_size, args.decode_max_new_tokens)
                free, con = d["free"], d["constrained"]
                ok = d["invalid_constrained"] == 0 and free["tokens"] > 0 and con["tokens"] > 0
                rows.append(
                    (
                        model,
                        f"decode x{args.batch_size}, {args.decode_n} prompts",
                        f"free {free['tok_s']:,.0f} tok/s, constrained {con['tok_s']:,.0f} "
                        f"tok/s ({con['tok_s'] / free['tok_s']:.2f}x), truncated "
                        f"{free['truncated']}/{con['truncated']}, invalid constrained "
                        f"{d['invalid_constrained']}",
                        ok,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a crash is a mismatch, reported in the table
                rows.append((model, "decode", f"{type(exc).__name__}: {exc}", False))
            print(rows[-1], flush=True)

    width = max(len(m) for m, *_ in rows)
    print()
    print(f"{'model':<{width}}  {'check':<34} ok    figures")
    for model, check, figures, ok in rows:
        print(f"{model:<{width}}  {check:<34} {'yes' if ok else 'NO ':<5} {figures}")
    bad = sum(not ok for *_, ok in rows)
    print(f"\n{len(rows) - bad} of {len(rows)} checks passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
