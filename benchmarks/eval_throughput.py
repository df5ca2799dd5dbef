"""Evaluation throughput, measured side by side in one run on the same model and examples:

1. examples/s of SchemaLab's evaluator (batched, stops at the closing brace) versus the published
   EdgeJSON loop (one example at a time, greedy `generate`, max_new_tokens=512, no early stop),
   and versus `model.generate` with the published settings batched (left padding, the same
   batch size), with its default dynamic cache and with a static cache
   (`cache_implementation="static"`);
2. tokens/s of schema-constrained decoding (xgrammar) versus unconstrained.

Tokens are the generated tokens each answer kept (up to its EOS; for ours up to the closing
brace), so tokens/s compares decoding speed and examples/s what a user waits for.

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
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        n_tokens += out.shape[1] - ids.shape[1]
    return time.perf_counter() - start, n_tokens


def batched_generate(
    gen, items, max_new_tokens: int, batch_size: int, cache: str | None
) -> tuple[float, int]:
    """`model.generate` with the published settings (greedy, stop at EOS only), batched with
    left padding; `cache` "static" for a preallocated static KV cache."""
    import torch

    tok, model = gen.tokenizer, gen.model
    pad, eos = tok.pad_token_id, tok.eos_token_id
    n_tokens = 0
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        encoded = [gen.encode(p, sid) for p, sid, _ in items[i : i + batch_size]]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, e in enumerate(encoded):
            ids[row, width - len(e) :] = torch.tensor(e)
            mask[row, width - len(e) :] = 1
        extra = {"cache_implementation": cache} if cache else {}
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(gen.device),
                attention_mask=mask.to(gen.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                **extra,
            )
        for row in out[:, width:].tolist():  # tokens up to and including the first EOS
            n_tokens += row.index(eos) + 1 if eos in row else len(row)
    return time.perf_counter() - start, n_tokens


def ours(gen, items, cfg, constrained: bool, batch_size: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    outs = gen.generate(items, cfg, constrained=constrained, batch_size=batch_size)
    return (
        time.perf_counter() - start,
        sum(g.n_tokens for g in outs),
        sum(g.truncated for g in outs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "edgejson" / "train_v3.jsonl"),
    )
    parser.add_argument("--schemas", help="schema folder (default: beside the data)")
    parser.add_argument("--n", type=int, default=20, help="examples (the first N)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=1536, help="our limit")
    parser.add_argument("--baseline-max-new-tokens", type=int, default=512)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from engine.decode.generate import Generator, decoding_from
    from engine.evaluate.run import load_data, schema_of

    examples, registry, _ = load_data(args.data, args.schemas)
    examples = examples[: args.n]
    items = [(e.prompt, e.schema_id, schema_of(e, registry)) for e in examples]
    gen = Generator(args.model, device=args.device)
    cfg = decoding_from("greedy", [f"max_new_tokens={args.max_new_tokens}"])
    n = len(items)
    print(f"{args.model} on {gen.device}, {n} examples of {args.data}")

    gen.generate(items[:1], decoding_from("greedy", ["max_new_tokens=4"]))  # warm-up
    base_s, base_tok = published_loop(gen, items, args.baseline_max_new_tokens)
    b, m = args.batch_size, args.baseline_max_new_tokens
    dyn_s, dyn_tok = batched_generate(gen, items, m, b, None)
    try:
        sta = batched_generate(gen, items, m, b, "static")
    except Exception as exc:  # noqa: BLE001 - reported, the other rows still count
        print(f"generate with a static cache failed: {type(exc).__name__}: {exc}")
        sta = None
    our_s, our_tok, our_trunc = ours(gen, items, cfg, False, args.batch_size)
    con_s, con_tok, con_trunc = ours(gen, items, cfg, True, args.batch_size)

    rows = [
        (f"published loop (1 at a time, {m}, EOS only)", base_s, base_tok, "-"),
        (f"generate batched x{b}, {m}, dynamic cache", dyn_s, dyn_tok, "-"),
        *([(f"generate batched x{b}, {m}, static cache", sta[0], sta[1], "-")] if sta else []),
        (f"schemalab batched x{args.batch_size}, stop at brace", our_s, our_tok, our_trunc),
        (f"schemalab batched x{args.batch_size}, constrained", con_s, con_tok, con_trunc),
    ]
    print(f"{'':48} {'seconds':>8} {'ex/s':>7} {'tokens':>7} {'tok/s':>7} {'trunc':>5}")
    for name, secs, toks, trunc in rows:
        print(f"{name:48} {secs:8.1f} {n / secs:7.3f} {toks:7d} {toks / secs:7.1f} {trunc!s:>5}")
    print(
        f"examples/s, ours / published loop: {base_s / our_s:.2f}x; ours / generate batched "
        f"(dynamic cache): {dyn_s / our_s:.2f}x"
        + (f"; ours / generate batched (static cache): {sta[0] / our_s:.2f}x" if sta else "")
    )
    print(
        f"tokens/s, ours / generate batched (dynamic cache): "
        f"{(our_tok / our_s) / (dyn_tok / dyn_s):.2f}x"
        + (f"; ours / static cache: {(our_tok / our_s) / (sta[1] / sta[0]):.2f}x" if sta else "")
    )
    print(f"tokens/s, constrained / unconstrained: {(con_tok / con_s) / (our_tok / our_s):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
