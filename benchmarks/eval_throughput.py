"""Evaluation throughput, measured side by side in one run on the same model and examples:

1. examples/s of SchemaLab's evaluator (batched, stops at the closing brace) versus the published
   EdgeJSON loop (one example at a time, greedy `generate`, max_new_tokens=512, no early stop);
2. tokens/s of schema-constrained decoding (xgrammar) versus unconstrained.

    .venv/bin/python benchmarks/eval_throughput.py --model smollm2-135m-instruct \
        --data ../shared/edgejson/train_v3.jsonl --n 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def published_loop(gen, items, max_new_tokens: int) -> tuple[float, int]:
    """The harness's loop: one example at a time, greedy HF generate, stopping only at EOS."""
    import torch

    tok, model = gen.tokenizer, gen.model
    n_tokens = 0
    start = time.perf_counter()
    for prompt, schema_id, _schema in items:
        ids = torch.tensor([gen.encode(prompt, schema_id)], device=gen.device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        n_tokens += out.shape[1] - ids.shape[1]
    return time.perf_counter() - start, n_tokens


def ours(gen, items, cfg, constrained: bool, batch_size: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    outs = gen.generate(items, cfg, constrained=constrained, batch_size=batch_size)
    return time.perf_counter() - start, sum(g.n_tokens for g in outs), sum(g.truncated for g in outs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "edgejson" / "train_v3.jsonl"))
    parser.add_argument("--schemas", help="schema folder (default: beside the data)")
    parser.add_argument("--n", type=int, default=20, help="examples (the first N)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=1536, help="our limit")
    parser.add_argument("--baseline-max-new-tokens", type=int, default=512)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    from engine.decoding import Generator, decoding_from
    from engine.evaluate import load_data, schema_of

    examples, registry, _ = load_data(args.data, args.schemas)
    examples = examples[: args.n]
    items = [(e.prompt, e.schema_id, schema_of(e, registry)) for e in examples]
    gen = Generator(args.model, device=args.device)
    cfg = decoding_from("greedy", [f"max_new_tokens={args.max_new_tokens}"])
    n = len(items)
    print(f"{args.model} on {gen.device}, {n} examples of {args.data}")

    gen.generate(items[:1], decoding_from("greedy", ["max_new_tokens=4"]))  # warm-up
    base_s, base_tok = published_loop(gen, items, args.baseline_max_new_tokens)
    our_s, our_tok, our_trunc = ours(gen, items, cfg, False, args.batch_size)
    con_s, con_tok, con_trunc = ours(gen, items, cfg, True, args.batch_size)

    rows = [
        ("published loop (1 at a time, 512, EOS only)", base_s, base_tok, "-"),
        (f"schemalab batched x{args.batch_size}, stop at brace", our_s, our_tok, our_trunc),
        (f"schemalab batched x{args.batch_size}, constrained", con_s, con_tok, con_trunc),
    ]
    print(f"{'':48} {'seconds':>8} {'ex/s':>7} {'tokens':>7} {'tok/s':>7} {'trunc':>5}")
    for name, secs, toks, trunc in rows:
        print(f"{name:48} {secs:8.1f} {n / secs:7.3f} {toks:7d} {toks / secs:7.1f} {trunc!s:>5}")
    print(f"examples/s, ours / published: {base_s / our_s:.2f}x")
    print(f"tokens/s, constrained / unconstrained: {(con_tok / con_s) / (our_tok / our_s):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
