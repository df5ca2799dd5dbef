"""The one prompt template, shared by training and decoding so both see the same text."""

from __future__ import annotations

import json
from typing import Any


def render_prompt(prompt: str, schema_id: str) -> str:
    """The model's input for an example: the schema's name, the text, and the answer cue."""
    return f"### Schema: {schema_id}\n### Text:\n{prompt.strip()}\n### JSON:\n"


def render_target(expected: Any) -> str:
    """The completion a model is trained to produce: compact, key order as given, no EOS."""
    return json.dumps(expected, ensure_ascii=False)
