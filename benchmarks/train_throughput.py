"""Training throughput: this project's recipe vs the published EdgeJSON recipe, same run.

Both train the same LoRA adapter on the same model, data and hardware for a fixed number of
micro-batches of the same size, and are scored in target-bearing tokens per second: tokens of
the expected JSON that the step actually learns from.

- ours: length-grouped batches padded to their longest example, loss on target tokens only
  (the LM head runs on those positions only), nothing truncated (too-long examples dropped).
- published: every example padded (and cut) to 1024 tokens, pad = EOS, loss over all tokens.

    python benchmarks/train_throughput.py --model tiny --steps 20
    python benchmarks/train_throughput.py --model smollm2-135m-instruct --steps 3 --batch-size 2

On CPU keep the SmolLM2 batch small: the published recipe's 8 x 1024 tokens in fp32 need
about 20 GB of memory. Skips with a message when the EdgeJSON data set is absent.
"""

from __future__ import annotations

import argparse
import random
import sys
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
    return p.parse_args(argv)


def run_ours(model, tok, encoded, args, device, optimizer) -> tuple[float, int]:
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
        (target_loss_sum(model, batch, device, None) / batch["n_target"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 1:
            tokens += batch["n_target"] - len(idx)  # JSON tokens, EOS not counted
    _sync(device)
    return time.perf_counter() - start, tokens


def run_published(model, tok, encoded, args, device, optimizer) -> tuple[float, int]:
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


def main(argv=None) -> int:
    args = parse_args(argv)
    data = Path(args.data)
    if not data.exists():
        print(f"skipped: {data} not found (the EdgeJSON data set lives in ../shared/edgejson)")
        return 0
    import torch

    from engine.data import load_examples
    from engine.train.config import load_config
    from engine.train.data import encode_example
    from engine.train.loop import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(None, [f"model={args.model}", f"train_data={data}", "precision=fp32"])
    model, tok, device, _ = build_model(cfg)
    model.train()
    examples = load_examples(data).examples
    encoded = [encode_example(tok, e) for e in examples]
    kept = [e for e in encoded if len(e) <= args.max_seq_len]
    print(
        f"model {args.model} on {device}, {len(encoded)} examples ({len(encoded) - len(kept)} "
        f"longer than {args.max_seq_len} dropped by ours; "
        f"{sum(len(e) > PUBLISHED_LEN for e in encoded)} cut at {PUBLISHED_LEN} by the published "
        f"recipe), batch {args.batch_size}, {args.steps} timed steps each"
    )
    params = [p for p in model.parameters() if p.requires_grad]
    results = {}
    for name, fn, items in (("ours", run_ours, kept), ("published", run_published, encoded)):
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        seconds, tokens = fn(model, tok, items, args, device, optimizer)
        results[name] = tokens / seconds
        print(
            f"{name:>9}: {tokens} target tokens in {seconds:.2f} s = {tokens / seconds:,.0f} target tok/s"
        )
    print(f"    ratio: {results['ours'] / results['published']:.2f}x (ours / published)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
