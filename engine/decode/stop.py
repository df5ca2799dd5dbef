"""The stop rule of decoding: a sequence ends as soon as its first top-level JSON object closes.

Follows the text with engine.jsontools.JsonLexer, the lexer the loop guard also uses.
"""

from __future__ import annotations

from engine.jsontools import CLOSE, OPEN, JsonLexer, is_json_object


class JsonCloseTracker:
    """Finds where the first top-level JSON object closes in text fed piece by piece.

    Counts brace depth outside strings (with backslash escapes); quotes outside any `{` do not
    open strings. With `require_json` (the default, used by decoding to stop a sequence), a
    top-level `{...}` that closes but is not a JSON object (a brace pair in prose, such as
    `Fields {title, body} follow:`, or an object holding NaN) does not count: the tracker resets
    and waits for the next top-level object. Each candidate is decoded once, when it closes, so
    the cost stays linear in the text. Without it, the first balanced pair counts.
    """

    def __init__(self, require_json: bool = True) -> None:
        self.require_json = require_json
        self.depth = 0
        self.lexer = JsonLexer()
        self.seen = 0  # characters fed so far
        self.closed_at: int | None = None  # index just past the closing `}`
        self._parts: list[str] = []  # text of the open top-level candidate from earlier pieces

    def feed(self, text: str) -> int | None:
        """Feed more text; the index (in all text fed) just past the closing `}`, once closed."""
        if self.closed_at is not None:
            return self.closed_at
        begin = 0 if self.depth > 0 else None  # where the open candidate starts in `text`
        step = self.lexer.step
        for i, ch in enumerate(text):
            kind = step(ch, self.depth > 0)
            if kind == OPEN and ch == "{":
                if self.depth == 0:
                    begin, self._parts = i, []
                self.depth += 1
            elif kind == CLOSE and ch == "}" and self.depth > 0:
                self.depth -= 1
                if self.depth == 0:
                    if not self.require_json or is_json_object(
                        "".join(self._parts) + text[begin : i + 1]
                    ):
                        self.closed_at = self.seen + i + 1
                        break
                    begin, self._parts = None, []  # not JSON: look for the next object
        if self.closed_at is None and self.require_json and begin is not None and self.depth > 0:
            self._parts.append(text[begin:])
        self.seen += len(text)
        return self.closed_at
