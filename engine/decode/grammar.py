"""Schema-constrained decoding with xgrammar: a token mask per step that only lets through
tokens keeping the output a valid prefix of JSON satisfying the example's schema.

Grammars are compiled once per (schema, format strictness, tokenizer) and cached. The grammar
writes compact JSON with the separators `render_target` uses (", " and ": "), keys in the
schema's declared order and no keys outside the schema, so constrained output looks like the
training targets. xgrammar is imported inside the functions that need it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from engine.jsontools import FORMATS, LENIENT_DATE_TIME

# id(tokenizer) -> (tokenizer, vocab_size, TokenizerInfo, GrammarCompiler, {key: CompiledGrammar}).
# The tokenizer is kept in the entry so its id cannot be reused while cached.
_COMPILERS: dict[int, tuple] = {}


class GrammarError(Exception):
    """A schema xgrammar cannot turn into a grammar; the message names the schema."""


def grammar_schema(schema: dict, formats: str = "lenient") -> dict:
    """The schema the grammar is built from: in `lenient` mode, `date-time` strings may omit the
    time zone (a pattern replaces the strict RFC 3339 format); `strict` leaves it as is."""
    if formats not in FORMATS:
        raise ValueError(f"formats must be one of {FORMATS}, not {formats!r}")
    if formats == "strict":
        return schema
    out = copy.deepcopy(schema)
    _relax(out)
    return out


def _relax(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "date-time":
            del node["format"]
            node.setdefault("pattern", LENIENT_DATE_TIME)
        for value in node.values():
            _relax(value)
    elif isinstance(node, list):
        for value in node:
            _relax(value)


def _compiler(tokenizer, vocab_size: int | None):
    import xgrammar as xgr

    entry = _COMPILERS.get(id(tokenizer))
    if entry is None or entry[0] is not tokenizer or entry[1] != vocab_size:
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=[tokenizer.eos_token_id]
        )
        entry = (tokenizer, vocab_size, info, xgr.GrammarCompiler(info, max_threads=2), {})
        _COMPILERS[id(tokenizer)] = entry
    return entry


def compile_grammar(
    tokenizer, schema: dict, formats: str = "lenient", vocab_size: int | None = None
):
    """The compiled grammar for `schema` with this tokenizer (cached)."""
    _tok, _vs, _info, compiler, cache = _compiler(tokenizer, vocab_size)
    key = (json.dumps(schema, sort_keys=True), formats)
    grammar = cache.get(key)
    if grammar is None:
        try:
            grammar = compiler.compile_json_schema(
                json.dumps(grammar_schema(schema, formats)), any_whitespace=False, strict_mode=True
            )
        except Exception as exc:  # xgrammar raises RuntimeError/ValueError for unsupported schemas
            title = schema.get("title") or schema.get("$id") or "schema"
            raise GrammarError(f"{title}: xgrammar cannot compile this JSON Schema: {exc}") from exc
        cache[key] = grammar
    return grammar


class SchemaMask:
    """Token masks for one batch of sequences, one grammar matcher per sequence (None = free)."""

    def __init__(self, tokenizer, schemas: list[dict | None], formats: str, vocab_size: int):
        import xgrammar as xgr

        self.vocab_size = vocab_size
        self.matchers = [
            None
            if s is None
            else xgr.GrammarMatcher(compile_grammar(tokenizer, s, formats, vocab_size))
            for s in schemas
        ]
        self.bitmask = xgr.allocate_token_bitmask(len(schemas), vocab_size)

    def apply(self, logits, rows: list[int]) -> None:
        """Mask `logits` (one row per entry of `rows`, the sequences still running) in place."""
        import xgrammar as xgr

        indices = []
        for i, row in enumerate(rows):
            matcher = self.matchers[row]
            if matcher is not None and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self.bitmask, i)
                indices.append(i)
        if indices:
            mask = self.bitmask[: len(rows)].to(logits.device)
            xgr.apply_token_bitmask_inplace(
                logits, mask, vocab_size=self.vocab_size, indices=indices
            )

    def accept(self, row: int, token_id: int) -> bool:
        matcher = self.matchers[row]
        return (
            True if matcher is None or matcher.is_terminated() else matcher.accept_token(token_id)
        )

    def completed(self, row: int) -> bool:
        matcher = self.matchers[row]
        return matcher is not None and (matcher.is_completed() or matcher.is_terminated())


def grammar_disagreement(
    tokenizer,
    schema: dict,
    target_text: str,
    formats: str = "lenient",
    vocab_size: int | None = None,
) -> str | None:
    """Why the grammar would not let the model write `target_text` (the expected output as
    trained), or None when it accepts it in full."""
    import xgrammar as xgr

    try:
        matcher = xgr.GrammarMatcher(compile_grammar(tokenizer, schema, formats, vocab_size))
    except GrammarError as exc:
        return str(exc)
    ids = tokenizer(target_text, add_special_tokens=False)["input_ids"]
    for n, token_id in enumerate(ids):
        if not matcher.accept_token(token_id):
            done = tokenizer.decode(ids[:n])
            return f"grammar rejects the expected output after {done[-60:]!r}"
    if not matcher.is_completed():
        return "grammar needs more than the expected output (e.g. a required key is missing)"
    return None
