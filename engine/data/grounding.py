"""Is a value written in the prompt? One answer for data validation (`ungrounded` findings) and
for evaluation (hallucinated values in a model's diff), so both mean the same thing."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalise_text(text: str) -> str:
    """Case and runs of whitespace folded away."""
    return " ".join(text.casefold().split())


def loose_text(text: str) -> str:
    """Case, spacing and punctuation folded away: "Full-Time," and "full time" match."""
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def prompt_numbers(text: str) -> set[float]:
    """Numbers written in a text, however formatted: 1200, 1,200, 1200.00, $1,200, .5."""
    numbers = set()
    for match in _NUMBER.finditer(text):
        token = match.group().rstrip(",")
        candidates = [token.replace(",", "")] + token.split(",")
        if match.start() > 0 and text[match.start() - 1].isalnum():
            candidates.append(token.lstrip("-").replace(",", ""))  # "A-12" is 12, not -12
        for c in candidates:
            try:
                numbers.add(float(c))
            except ValueError:
                pass
    return numbers


class Prompt:
    """A prompt's normalised forms, computed once and reused for every value checked against it."""

    def __init__(self, text: str):
        self.text = text
        self._norm: str | None = None
        self._loose: str | None = None
        self._numbers: set[float] | None = None

    @property
    def norm(self) -> str:
        if self._norm is None:
            self._norm = normalise_text(self.text)
        return self._norm

    @property
    def numbers(self) -> set[float]:
        if self._numbers is None:
            self._numbers = prompt_numbers(self.text)
        return self._numbers

    @property
    def loose(self) -> str:
        if self._loose is None:
            self._loose = loose_text(self.text)
        return self._loose

    def contains(self, value: Any) -> bool | None:
        """Whether a scalar value occurs in the prompt; None where the question does not apply
        (booleans and null: a prompt says "remote-friendly", not "true"; objects, arrays, "")."""
        if value is None or isinstance(value, (bool, dict, list)):
            return None
        if isinstance(value, (int, float)):
            if any(abs(n - value) <= 1e-6 * max(1.0, abs(value)) for n in self.numbers):
                return True
            return normalise_text(str(value)) in self.norm
        norm = normalise_text(str(value))
        if not norm:
            return None
        if norm in self.norm:
            return True
        loose = loose_text(norm)
        return bool(loose) and loose in self.loose
