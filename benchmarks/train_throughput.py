"""Training throughput: this project's recipe against what users would pick instead, same run.

Every recipe trains the same LoRA adapter (r=16 on q/k/v/o, AdamW) on the same model, data and
hardware for the same number of micro-batches of the same size, each in its own process (so its
peak memory is its own), and is scored in target-bearing tokens per second: tokens of the
expected JSON that the step actually learns from (EOS not counted). One warm-up micro-batch is
not timed.

- ours: length-grouped batches padded to their longest example, loss on target tokens only
  (the LM head runs on those positions only), nothing truncated (too-long examples dropped).
- published: this project's re-implementation of the published EdgeJSON recipe (every example
  padded and cut to 1024 tokens, pad = EOS, loss over all tokens), in a plain loop.
- hf-trainer: the published script itself, in Hugging Face `Trainer`: examples tokenized with
  padding="max_length", max_length=1024, truncation, pad = EOS, `DataCollatorForLanguageModeling`
  (mlm=False: loss on every non-pad token).
- trl-sft: TRL's `SFTTrainer` (the `bench` extra) with completion-only loss and padding-free
  batching, on the same tokens as ours (prompt + JSON + EOS, too-long examples dropped).

Peak memory: CUDA max_memory_reserved, else the recipe process's peak resident set; both
include the model. On CUDA all recipes run bf16 (autocast / `bf16=True`), elsewhere fp32.
Gradient checkpointing is off for all unless --gradient-checkpointing (TRL's own default is on).

    python benchmarks/train_throughput.py --model tiny --steps 20
    python benchmarks/train_throughput.py --model smollm2-135m:random --steps 3 --batch-size 2

On CPU keep the SmolLM2 batch small: the published recipe's 8 x 1024 tokens in fp32 need
about 20 GB of memory. Skips with a message when the EdgeJSON data set is absent.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "edgejson" / "train_v3.jsonl"
PUBLISHED_LEN = 1024


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="tiny", help="model spec (tiny, smollm2-135m-instruct, ...)")
    p.add_argument("--steps", type=int, default=10, help="timed micro-batches per recipe")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=2048, help="our recipe's limit")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass, in every recipe",
    )
    p.add_argument("--recipe", choices=list(RECIPES), help=argparse.SUPPRESS)  # one, in-process
    return p.parse_args(argv)


RECIPES = ("ours", "published", "hf-trainer", "trl-sft")


def run_ours(model, tok, encoded, args, device, optimizer, autocast=None) -> tuple[float, int]:
    """(seconds, target tokens) for `args.steps` micro-batches of our recipe (after one warm-up)."""
    from engine.train.data import collate, epoch_batches
    from engine.train.loop import target_loss_sum

    batches = epoch_batches([len(e) for e in encoded], args.batch_size, seed=0, epoch=0)
    tokens, start = 0, None
    for i, idx in enumerate(batches[: args.steps + 1]):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        batch = collate([encoded[j] for j in idx], tok.pad_token_id)
        (target_loss_sum(model, batch, device, autocast) / batch["n_target"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 1:
            tokens += batch["n_target"] - len(idx)  # JSON tokens, EOS not counted
    _sync(device)
    return time.perf_counter() - start, tokens


def run_published(model, tok, encoded, args, device, optimizer, autocast=None) -> tuple[float, int]:
    """The same for the published recipe: fixed 1024-token padding, pad = EOS, all-token loss."""
    import torch

    order = list(range(len(encoded)))
    random.Random(0).shuffle(order)
    eos = tok.eos_token_id
    tokens, start = 0, None
    for i in range(args.steps + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        items = [encoded[j] for j in order[i * args.batch_size : (i + 1) * args.batch_size]]
        ids = torch.full((len(items), PUBLISHED_LEN), eos, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, e in enumerate(items):
            cut = e.input_ids[:PUBLISHED_LEN]  # the published pipeline truncates silently
            ids[row, : len(cut)] = torch.tensor(cut)
            mask[row, : len(cut)] = 1
        labels = ids.masked_fill(ids == eos, -100)  # a pad=EOS collator masks EOS too
        kind = device.split(":")[0]
        with torch.autocast(kind, dtype=autocast or torch.float32, enabled=autocast is not None):
            out = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 1:
            # JSON tokens inside the 1024 window are all it can learn from.
            tokens += sum(max(0, min(len(e) - 1, PUBLISHED_LEN) - e.n_prompt) for e in items)
    _sync(device)
    return time.perf_counter() - start, tokens


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _published_target_tokens(items) -> int:
    """JSON tokens inside the 1024 window: all the published recipe can learn from."""
    return sum(max(0, min(len(e) - 1, PUBLISHED_LEN) - e.n_prompt) for e in items)


class _StepTimer:
    """A Trainer callback timing optimizer steps 2..N (the first is the warm-up)."""

    def __init__(self, device: str, total: int):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == 1:
                    _sync(device)
                    timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == total:
                    _sync(device)
                    timer.end = time.perf_counter()

        self.callback, self.start, self.end = Callback(), None, None

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _trainer_args(cls, args, device: str, out: str, **extra):
    return cls(
        output_dir=out,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_steps=args.steps + 1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        bf16=device.startswith("cuda"),
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        gradient_checkpointing=args.gradient_checkpointing,
        remove_unused_columns=False,
        seed=0,
        **extra,
    )


def run_hf_trainer(model, tok, encoded, args, device) -> tuple[float, int]:
    """The published script in Trainer: pad to 1024, DataCollatorForLanguageModeling."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from datasets import Dataset

    order = list(range(len(encoded)))
    random.Random(0).shuffle(order)
    items = [encoded[j] for j in order[: (args.steps + 1) * args.batch_size]]
    tok.pad_token = tok.eos_token  # the published script: pad = EOS
    rows = {"input_ids": [], "attention_mask": []}
    for e in items:
        cut = e.input_ids[:PUBLISHED_LEN]
        rows["input_ids"].append(cut + [tok.eos_token_id] * (PUBLISHED_LEN - len(cut)))
        rows["attention_mask"].append([1] * len(cut) + [0] * (PUBLISHED_LEN - len(cut)))
    timer = _StepTimer(device, args.steps + 1)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            model=model,
            args=_trainer_args(TrainingArguments, args, device, out),
            train_dataset=Dataset.from_dict(rows),
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
            callbacks=[timer.callback],
        )
        trainer.train()
    return timer.seconds, _published_target_tokens(items[args.batch_size :])


def run_trl_sft(model, tok, encoded, args, device) -> tuple[float, int]:
    """TRL SFTTrainer: completion-only loss, padding-free batches, same tokens as ours."""
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    order = list(range(len(encoded)))
    random.Random(0).shuffle(order)
    items = [encoded[j] for j in order[: (args.steps + 1) * args.batch_size]]
    rows = {
        "input_ids": [e.input_ids for e in items],
        "completion_mask": [[0] * e.n_prompt + [1] * e.n_target for e in items],
    }
    timer = _StepTimer(device, args.steps + 1)
    with tempfile.TemporaryDirectory() as out:
        config = _trainer_args(
            SFTConfig,
            args,
            device,
            out,
            padding_free=True,
            completion_only_loss=True,
            max_length=None,
            packing=False,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_dict(rows),
            processing_class=tok,
            callbacks=[timer.callback],
        )
        trainer.train()
    return timer.seconds, sum(e.n_target - 1 for e in items[args.batch_size :])


def _peak_memory_gb(device: str) -> float:
    import torch

    from engine.models.memory import peak_rss_gb

    if device.startswith("cuda"):
        return torch.cuda.max_memory_reserved() / 2**30
    return peak_rss_gb()


def run_one(args) -> dict:
    """One recipe in this process; returns its figures."""
    import torch

    from engine.data.load import load_examples
    from engine.train.config import load_config
    from engine.train.data import encode_example
    from engine.train.loop import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(
        None,
        [
            f"model={args.model}",
            f"train_data={args.data}",
            f"gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
        ],
    )
    model, tok, device, autocast = build_model(cfg)
    model.train()
    examples = load_examples(Path(args.data)).examples
    encoded = [encode_example(tok, e) for e in examples]
    kept = [e for e in encoded if len(e) <= args.max_seq_len]
    info = {
        "device": device,
        "n": len(encoded),
        "dropped": len(encoded) - len(kept),
        "cut": sum(len(e) > PUBLISHED_LEN for e in encoded),
    }
    params = [p for p in model.parameters() if p.requires_grad]
    if args.recipe in ("ours", "published"):
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        fn = run_ours if args.recipe == "ours" else run_published
        seconds, tokens = fn(
            model,
            tok,
            kept if args.recipe == "ours" else encoded,
            args,
            device,
            optimizer,
            autocast,
        )
    elif args.recipe == "hf-trainer":
        seconds, tokens = run_hf_trainer(model, tok, encoded, args, device)
    else:
        seconds, tokens = run_trl_sft(model, tok, kept, args, device)
    return {
        **info,
        "recipe": args.recipe,
        "seconds": seconds,
        "tokens": tokens,
        "tok_s": tokens / seconds,
        "peak_gb": _peak_memory_gb(device),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    data = Path(args.data)
    if not data.exists():
        print(f"skipped: {data} not found (the EdgeJSON data set lives in ../shared/edgejson)")
        return 0
    if args.recipe:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0
    import importlib.util

    results: dict[str, dict] = {}
    failed = False
    for recipe in args.recipes:
        if recipe == "trl-sft" and importlib.util.find_spec("trl") is None:
            print("trl-sft: skipped (pip install -e '.[bench]' installs trl)")
            continue
        cmd = [
            sys.executable,
            __file__,
            "--recipe",
            recipe,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--max-seq-len",
            str(args.max_seq_len),
            "--data",
            str(data),
            "--threads",
            str(args.threads),
        ]
        if args.gradient_checkpointing:
            cmd.append("--gradient-checkpointing")
        env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            print(f"{recipe}: failed: {' | '.join(tail)}")
            failed = True
            continue
        results[recipe] = r = json.loads(line[len("RESULT ") :])
        if len(results) == 1:
            print(
                f"model {args.model} on {r['device']}, {r['n']} examples ({r['dropped']} longer "
                f"than {args.max_seq_len} dropped by ours and trl-sft; {r['cut']} cut at "
                f"{PUBLISHED_LEN} by published and hf-trainer), batch {args.batch_size}, "
                f"{args.steps} timed steps each, gradient checkpointing "
                f"{'on' if args.gradient_checkpointing else 'off'}"
            )
        print(
            f"{recipe:>10}: {r['tokens']} target tokens in {r['seconds']:.2f} s = "
            f"{r['tok_s']:,.0f} target tok/s, peak memory {r['peak_gb']:.2f} GB",
            flush=True,
        )
    ours = results.get("ours")
    if ours:
        for name, r in results.items():
            if name != "ours":
                print(
                    f"  ours / {name}: {ours['tok_s'] / r['tok_s']:.2f}x target tok/s, "
                    f"{ours['peak_gb'] / r['peak_gb']:.2f}x peak memory"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
