"""Loop guard for schema-constrained decoding: makes the grammar close what a looping model
would otherwise repeat until the token cap.

The xgrammar mask keeps every step a valid JSON prefix, but a grammar cannot stop an array whose
items repeat forever or a string that never closes. A `JsonScanner` per row follows the JSON
structure of the generated text (open containers, the current string, each array's completed
items) and flags a construct as runaway when

- an array holds `DUP_LIMIT` items that each repeat an earlier item of that array (as text), or
  begins its `max_items`-th item (the number of words in the prompt, at least `MIN_ITEMS`: an
  extracted list has no more items than its source has words);
- a value string grows past `max_string` characters (the prompt's length: a value copied from
  the text cannot be longer than the text), or its end repeats one piece of text three times in
  a row (>= 8 characters each) that the prompt itself does not hold;
- a number grows past `MAX_NUMBER` characters (a float's shortest form has at most 24; the
  grammar allows any number of digits, and a model can write digits until the cap).

When the token budget is nearly spent (`wind_down`, the last `wind_down_reserve` tokens of
`max_new_tokens`), every open container is flagged, new ones as they open, and value strings
longer than `WIND_DOWN_STRING` characters must end: an answer cut at the cap is not JSON at all,
while one closed early is schema-valid and scores the fields it holds (a long list of distinct
items, which none of the rules above can call a loop, is what still reached the cap).

Flagged constructs are closed through the logits, after the grammar mask: a runaway string may
only continue with tokens that start with `"`, a runaway number only with tokens that do not
continue it, and a flagged array may not take a token that writes its separating `,` (alone, or
after closing the item, as in `"},`). Where the grammar allows none of the remaining tokens (a
string pattern, `minItems`), the restriction is skipped for that step, so the answer always stays
inside the grammar. Bounds the schema states (`maxItems`, `maxLength`) are left to the grammar,
which enforces them (xgrammar 0.2.8 checked).

The per-token tables are computed once per tokenizer and cached; per step the guard costs a scan
of the new characters per row and, only on rows with a flag, a few vocabulary-wide mask ops.
"""

from __future__ import annotations

import re
from typing import Any

from engine.jsontools import (
    CLOSE,
    COLON,
    COMMA,
    IN_STRING,
    OPEN,
    QUOTE_CLOSE,
    QUOTE_OPEN,
    JsonLexer,
)

DUP_LIMIT = 3  # EdgeJSON v3 answers repeat an item at most twice in one array ([{}, {}, {}, ...])
MIN_ITEMS = 8
REPEAT_MIN = 8  # a repeated piece of a string is at least this many characters ...
REPEAT_TIMES = 3  # ... and occurs this many times in a row at the string's end
REPEAT_MAX_PERIOD = 128
MAX_CLOSE_DEPTH = 7  # how many containers a single token may close before a separator comma
WIND_DOWN_STRING = 24  # characters a value string may still take once the budget runs out
MAX_NUMBER = 32  # characters; EdgeJSON v3's longest number is 11 (-121.499364)
_NUMBER_CHARS = frozenset("0123456789.eE+-")


def wind_down_reserve(max_new_tokens: int) -> int:
    """How many tokens before the cap the guard starts closing what is open: an eighth of the
    budget, at least 64 tokens, at most half of it."""
    return min(max(64, max_new_tokens // 8), max_new_tokens // 2)


_WORDS = re.compile(r"[^\s,;]+")

# (id(tokenizer), vocab_size, device) -> (tokenizer, TokenTable); the tokenizer is kept in the
# entry so its id cannot be reused while cached.
_TABLES: dict[tuple, tuple] = {}


# ----------------------------------------------------------------- per-token tables


def token_effects(text: str) -> tuple[bool, list[set[int]]]:
    """(starts with `"`, and per start mode the depths k at which `text` writes a separator
    comma). Modes: 0 outside strings, 1 inside a string, 2 inside a string after a backslash. A
    comma counts at depth k when the text first closed k containers (and never more than k)."""
    starts_quote = text.startswith('"')
    commas: list[set[int]] = [set(), set(), set()]
    if "," not in text:
        return starts_quote, commas
    for mode in range(3):
        depth = lowest = 0
        lexer = JsonLexer(in_string=mode > 0, escaped=mode == 2)
        for ch in text:
            kind = lexer.step(ch)
            if kind == OPEN:
                depth += 1
            elif kind == CLOSE:
                depth -= 1
                lowest = min(lowest, depth)
            elif kind == COMMA and depth == lowest and -depth <= MAX_CLOSE_DEPTH:
                commas[mode].add(-depth)
    return starts_quote, commas


class TokenTable:
    """Boolean vocabulary masks: `quote[v]` token v starts with `"`; `number[v]` it starts with a
    character that continues a number; `comma[mode, k, v]` token v, read from start mode `mode`,
    writes a separator comma after closing k containers."""

    def __init__(self, texts: list[str], vocab_size: int, device=None):
        import torch

        texts = texts[:vocab_size]
        number = torch.zeros(vocab_size, dtype=torch.bool)
        number[: len(texts)] = torch.tensor(
            [t[:1] in _NUMBER_CHARS for t in texts], dtype=torch.bool
        )
        quote = torch.zeros(vocab_size, dtype=torch.bool)
        comma = torch.zeros((3, MAX_CLOSE_DEPTH + 1, vocab_size), dtype=torch.bool)
        for token_id, text in enumerate(texts):
            if '"' not in text and "," not in text:
                continue
            starts_quote, commas = token_effects(text)
            quote[token_id] = starts_quote
            for mode, depths in enumerate(commas):
                for k in depths:
                    comma[mode, k, token_id] = True
        self.quote, self.number, self.comma = (
            t.to(device) if device is not None else t for t in (quote, number, comma)
        )
        self.texts = texts
        self._repeat_masks: dict[str, Any] = {}

    def repeating(self, unit: str):
        """Tokens whose text continues `unit` repeated (a non-empty piece of it, twice over):
        forbidden when a looping string cannot close because its pattern does not allow a quote
        yet (an email stuck before its `@`). Built once per unit, only when needed."""
        import torch

        mask = self._repeat_masks.get(unit)
        if mask is None:
            cycle = unit * 2
            mask = torch.zeros(self.quote.shape[0], dtype=torch.bool)
            mask[: len(self.texts)] = torch.tensor(
                [bool(t.strip()) and t in cycle for t in self.texts], dtype=torch.bool
            )
            mask = mask.to(self.quote.device)
            self._repeat_masks[unit] = mask
        return mask


def token_texts(tokenizer, vocab_size: int | None = None) -> list[str]:
    """Each token's text as the grammar sees it (xgrammar's decoded vocabulary)."""
    from engine.decode.grammar import _compiler

    _tok, _vs, info, _compiler_obj, _cache = _compiler(tokenizer, vocab_size)
    return [b.decode("utf-8", errors="replace") for b in info.decoded_vocab]


def token_table(tokenizer, vocab_size: int, device=None) -> TokenTable:
    """The cached TokenTable for this tokenizer, vocabulary size and device."""
    key = (id(tokenizer), vocab_size, str(device))
    entry = _TABLES.get(key)
    if entry is None or entry[0] is not tokenizer:
        entry = (tokenizer, TokenTable(token_texts(tokenizer, vocab_size), vocab_size, device))
        _TABLES[key] = entry
    return entry[1]


# ----------------------------------------------------------------- the scanner


def repeated_tail(
    text: str,
    min_len: int = REPEAT_MIN,
    times: int = REPEAT_TIMES,
    max_period: int = REPEAT_MAX_PERIOD,
) -> str | None:
    """The end of `text` when it is one piece of at least `min_len` characters written `times`
    times in a row (a short period counts once it spans `min_len`: "abab..." of 8 counts), else
    None."""
    n = len(text)
    for period in range(1, max_period + 1):
        unit = period * -(-min_len // period)  # the smallest multiple of period >= min_len
        span = unit * times
        if span > n:
            if period >= min_len:
                break
            continue
        if text[n - span : n - period] == text[n - span + period :]:
            return text[n - span :]
    return None


class _Frame:
    __slots__ = (
        "array",
        "count",
        "done",
        "dups",
        "expect_key",
        "flagged",
        "items",
        "keys",
        "start",
    )

    def __init__(self, array: bool, start: int):
        self.array = array
        self.start = start  # arrays: where the current item's text begins
        self.done = False  # arrays: the current item has been recorded
        self.count = 0
        self.items: set[str] = set()
        self.dups = 0
        self.flagged = False
        self.expect_key = True  # objects: the next string is a key
        self.keys: set[str] = set()  # objects: the keys written so far


class JsonScanner:
    """Follows the JSON structure of one row's output, fed text piece by piece, and says which
    tokens the loop guard forbids next (`restriction`). `fired` counts the constructs flagged."""

    def __init__(
        self, prompt_text: str = "", max_items: int | None = None, max_string: int | None = None
    ):
        self.prompt = prompt_text
        words = len(_WORDS.findall(prompt_text))
        self.max_items = max_items if max_items is not None else max(MIN_ITEMS, words)
        self.max_string = (
            max_string
            if max_string is not None
            else max(REPEAT_MIN * REPEAT_TIMES, len(prompt_text))
        )
        self.text = ""
        self.stack: list[_Frame] = []
        self.lexer = JsonLexer()
        self.string_start = 0
        self.string_is_value = False
        self.string_forced = False
        # The texts a forced string was repeating: one that cannot close yet (an email before
        # its `@`) may slip into a new loop while the first is forbidden, so each one is added.
        self.repeat_units: list[str] = []
        self.number_len = 0  # characters of the number being written (0: not in a number)
        self.number_forced = False
        self.n_flagged = 0
        self.fired = 0
        self.reasons: list[str] = []
        self.winding_down = False  # the token budget is nearly spent: close everything

    @property
    def in_string(self) -> bool:
        return self.lexer.in_string

    @property
    def escaped(self) -> bool:
        return self.lexer.escaped

    def feed(self, piece: str) -> None:
        base = len(self.text)
        self.text += piece
        step = self.lexer.step
        for i, ch in enumerate(piece, base):
            kind = step(ch)
            if kind == IN_STRING:
                continue
            if kind != QUOTE_CLOSE:  # outside strings: follow the number being written
                self.number_len = self.number_len + 1 if ch in _NUMBER_CHARS else 0
            if kind == QUOTE_CLOSE:
                top = self.stack[-1] if self.stack else None
                if top is not None and top.array:
                    self._item(top, self.text[top.start : i + 1].strip())
                elif top is not None and top.expect_key:
                    self._key(top, self.text[self.string_start : i])
            elif kind == QUOTE_OPEN:
                top = self.stack[-1] if self.stack else None
                self.string_forced = False
                self.repeat_units = []
                self.string_start = i + 1
                self.string_is_value = top is not None and (top.array or not top.expect_key)
            elif kind == OPEN:
                self.stack.append(_Frame(ch == "[", i + 1))
                if self.winding_down:
                    self.stack[-1].flagged = True
                    self.n_flagged += 1
            elif kind == CLOSE:
                if not self.stack:
                    continue
                frame = self.stack.pop()
                if frame.array:
                    self._scalar(frame, i)
                if frame.flagged:
                    self.n_flagged -= 1
                if self.stack and self.stack[-1].array:
                    self._item(self.stack[-1], self.text[self.stack[-1].start : i + 1].strip())
            elif kind == COMMA and self.stack:
                top = self.stack[-1]
                if top.array:
                    self._scalar(top, i)
                    top.start, top.done = i + 1, False
                    if not top.flagged and top.count + 1 >= self.max_items:  # the last item begins
                        self._flag(
                            top, f"array at its bound of {self.max_items} items (prompt words)"
                        )
                else:
                    top.expect_key = True
            elif kind == COLON and self.stack and not self.stack[-1].array:
                self.stack[-1].expect_key = False
        if self.in_string and self.string_is_value:
            if not self.string_forced:
                self._check_string()
            elif self.repeat_units:
                self._next_repeat()
        if self.number_len <= MAX_NUMBER:
            self.number_forced = False
        elif not self.number_forced:
            self.number_forced = True
            self.fired += 1
            self.reasons.append(f"number longer than {MAX_NUMBER} characters")

    def _scalar(self, frame: _Frame, end: int) -> None:
        """Record a number or literal item that a `,` or `]` at index `end` ends."""
        if not frame.done:
            text = self.text[frame.start : end].strip()
            if text:
                self._item(frame, text)

    def _item(self, frame: _Frame, text: str) -> None:
        if frame.done:
            return
        frame.done = True
        frame.count += 1
        if text in frame.items:
            frame.dups += 1
        else:
            frame.items.add(text)
        if frame.flagged:
            return
        if frame.dups >= DUP_LIMIT:
            self._flag(frame, f"array repeats items ({frame.dups} repeats in {frame.count})")

    def _key(self, frame: _Frame, key: str) -> None:
        """An object writing a key it already holds is looping (the grammar lets a key repeat):
        flag it, so that its separator is forbidden and it closes after this member."""
        if key in frame.keys and not frame.flagged:
            self._flag(frame, f"object repeats key {key!r}")
        frame.keys.add(key)

    def wind_down(self) -> None:
        """The token budget is nearly spent: from now on no container takes another member or
        item and long value strings end, so the answer closes while it still can."""
        if self.winding_down:
            return
        self.winding_down = True
        self.fired += 1
        self.reasons.append("token budget nearly spent: closing what is open")
        for frame in self.stack:
            if not frame.flagged:
                frame.flagged = True
                self.n_flagged += 1
        if self.in_string and self.string_is_value and not self.string_forced:
            self._check_string()

    def _flag(self, frame: _Frame, reason: str) -> None:
        frame.flagged = True
        self.n_flagged += 1
        self.fired += 1
        self.reasons.append(reason)

    def _check_string(self) -> None:
        length = len(self.text) - self.string_start
        if self.winding_down and length > WIND_DOWN_STRING:
            # Not a loop: the answer has run out of tokens. Counted once, by wind_down.
            self.string_forced = True
            return
        if length > self.max_string:
            reason = f"string longer than the prompt ({length} > {self.max_string} characters)"
        else:
            tail = self._repeated_tail()
            if tail is None:
                return
            reason = f"string repeats {tail[-REPEAT_MIN * 2 :]!r}"
            self.repeat_units = [tail[: len(tail) // REPEAT_TIMES]]
        self.string_forced = True
        self.fired += 1
        self.reasons.append(reason)

    @property
    def repeat_unit(self) -> str | None:
        """The latest text a forced string was repeating."""
        return self.repeat_units[-1] if self.repeat_units else None

    def _repeated_tail(self) -> str | None:
        length = len(self.text) - self.string_start
        if length < REPEAT_MIN * REPEAT_TIMES:
            return None
        window = self.text[
            max(self.string_start, len(self.text) - REPEAT_TIMES * REPEAT_MAX_PERIOD) :
        ]
        tail = repeated_tail(window)
        return None if tail is None or tail in self.prompt else tail

    def _next_repeat(self) -> None:
        """A forced string that has slipped into another repeat: forbid that one too."""
        tail = self._repeated_tail()
        if tail is None:
            return
        unit = tail[: len(tail) // REPEAT_TIMES]
        if not any(unit in known * 3 for known in self.repeat_units):  # not a rotation of one
            self.repeat_units.append(unit)
            self.reasons.append(f"string repeats {tail[-REPEAT_MIN * 2 :]!r} too")

    def restriction(self) -> tuple[int, list[int], str] | None:
        """(start mode, separator depths k to forbid, what must end with the next token:
        "string", "number" or ""), or None when the guard leaves the next token to the grammar."""
        end = ""
        if self.in_string and self.string_forced and not self.escaped:
            end = "string"
        elif self.number_forced and not self.in_string:
            end = "number"
        pending = self._pending_repeat()
        if not end and not self.n_flagged and pending is None:
            return None
        mode = 0 if not self.in_string else 2 if self.escaped else 1
        top = len(self.stack) - 1
        depths = [
            top - d for d, f in enumerate(self.stack) if f.flagged and top - d <= MAX_CLOSE_DEPTH
        ]
        if pending is not None:
            depths.append(pending)
        return mode, depths, end

    def _pending_repeat(self) -> int | None:
        """The depth k of the innermost array when closing what is open now (a string item, or
        an object or array item) would complete the repeat that flags it; None otherwise. Its
        separator is then forbidden already, so that `",` or `},` cannot add one more item."""
        if not self.stack or self.escaped:
            return None
        top = self.stack[-1]
        if top.array and self.in_string:
            array, k, suffix = top, 0, '"'
        elif len(self.stack) > 1 and self.stack[-2].array:
            array, k = self.stack[-2], 1
            suffix = ('"' if self.in_string else "") + ("]" if top.array else "}")
        else:
            return None
        if array.flagged or array.dups + 1 < DUP_LIMIT:
            return None
        return k if (self.text[array.start :] + suffix).strip() in array.items else None


class LoopGuard:
    """Scanners for one batch (None where a row is not constrained) and the logits restriction
    they call for."""

    def __init__(
        self,
        tokenizer,
        constrained: list[bool],
        prompt_texts: list[str],
        vocab_size: int,
        device=None,
    ):
        self.table = token_table(tokenizer, vocab_size, device)
        self.scanners = [JsonScanner(p) if on else None for on, p in zip(constrained, prompt_texts)]

    def feed(self, row: int, piece: str) -> None:
        scanner = self.scanners[row]
        if scanner is not None and piece:
            scanner.feed(piece)

    def wind_down(self, rows: list[int]) -> None:
        """Rows `rows` are near the token cap: make them close what is open."""
        for row in rows:
            scanner = self.scanners[row]
            if scanner is not None:
                scanner.wind_down()

    def fired(self, row: int) -> int:
        scanner = self.scanners[row]
        return 0 if scanner is None else scanner.fired

    def apply(self, logits, rows: list[int]) -> None:
        """Restrict `logits` (one row per entry of `rows`, already grammar-masked) in place. A row
        whose restriction would leave no token allowed keeps its grammar-masked logits."""
        import torch

        picked, allows, fallbacks = [], [], []
        for i, row in enumerate(rows):
            scanner = self.scanners[row]
            restriction = scanner.restriction() if scanner is not None else None
            if restriction is None:
                continue
            mode, depths, end = restriction
            fallback = None
            if end == "string":
                allow = self.table.quote.clone()
                if scanner.repeat_units:
                    repeats = self.table.repeating(scanner.repeat_units[0])
                    for unit in scanner.repeat_units[1:]:
                        repeats = repeats | self.table.repeating(unit)
                    fallback = ~repeats
            elif end == "number":
                allow = ~self.table.number
            else:
                allow = torch.ones_like(self.table.quote)
            for k in depths:
                allow &= ~self.table.comma[mode, k]
            picked.append(i)
            allows.append(allow)
            fallbacks.append(allow if fallback is None else fallback)
        if not picked:
            return
        index = torch.tensor(picked, device=logits.device)
        before = logits[index]
        width = min(allows[0].shape[0], logits.shape[1])

        def masked(allowed):
            out = before.clone()
            out[:, :width] = before[:, :width].masked_fill(~allowed[:, :width], float("-inf"))
            return out, torch.isfinite(out).any(dim=-1, keepdim=True)

        after, ok = masked(torch.stack(allows).to(logits.device))
        # A string that may not close yet (its pattern needs more) must at least stop repeating.
        second, ok2 = masked(torch.stack(fallbacks).to(logits.device))
        logits[index] = torch.where(ok, after, torch.where(ok2, second, before))
