"""Prompt templates, shared by training, evaluation and the Playground so all see the same text.

A template turns (text, schema id, schema) into the model's input; the answer follows it
directly. Templates:

- `schemalab` (default): the schema's name, the text, and an answer cue.
- `edgejson`: the published EdgeJSON harness's prompt, word for word (its answer follows
  "Output:" after a space, which the harness strips).
- `chat`: the tokenizer's own chat template (instruct models), the request as the user turn.
- `schema-in-prompt`: `schemalab` plus the compact JSON Schema, so a model can fill schemas it
  never saw in training (costs the schema's tokens on every example).
"""

from __future__ import annotations

import json
from typing import Any

TEMPLATES = ("schemalab", "edgejson", "chat", "schema-in-prompt")
DEFAULT_TEMPLATE = "schemalab"
EDGEJSON_PROMPT = (
    "Extract the structured JSON data from the following text.\n\nInput: {prompt}\n\nOutput:"
)
# Schema keys that say nothing about the answer's shape; left out of `schema-in-prompt`.
_NOISE_KEYS = ("$schema", "$id", "description", "title", "examples")


class TemplateError(ValueError):
    """An unknown template, or one that needs what it was not given (a schema, a chat template)."""


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        raise TemplateError(
            f"unknown prompt_template {template!r}; choose one of {', '.join(TEMPLATES)}"
        )
    return template


def compact_schema(schema: dict) -> str:
    """The schema as one line of JSON without titles, descriptions and examples."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _NOISE_KEYS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(schema), separators=(",", ":"), ensure_ascii=False)


def render_prompt(
    prompt: str,
    schema_id: str,
    template: str = DEFAULT_TEMPLATE,
    *,
    schema: dict | None = None,
    tokenizer: Any = None,
) -> str:
    """The model's input for an example under `template` (see the module docstring)."""
    check_template(template)
    if template == "edgejson":
        return EDGEJSON_PROMPT.format(prompt=prompt)
    if template == "schema-in-prompt":
        if schema is None:
            raise TemplateError(
                f"prompt_template schema-in-prompt needs the schema of {schema_id!r}"
            )
        return (
            f"### Schema: {schema_id}\n{compact_schema(schema)}\n### Text:\n{prompt.strip()}\n"
            "### JSON:\n"
        )
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise TemplateError(
                "prompt_template chat needs a tokenizer with a chat template "
                "(an instruct model); use schemalab for base models"
            )
        request = f"Extract the {schema_id} JSON object from this text.\n\n{prompt.strip()}"
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True
        )
    return f"### Schema: {schema_id}\n### Text:\n{prompt.strip()}\n### JSON:\n"


def target_prefix(template: str = DEFAULT_TEMPLATE) -> str:
    """Text between the prompt and the JSON answer in training targets (the harness's space)."""
    return " " if template == "edgejson" else ""


def render_target(expected: Any, template: str = DEFAULT_TEMPLATE) -> str:
    """The completion a model is trained to produce: compact, key order as given, no EOS."""
    return target_prefix(template) + json.dumps(expected, ensure_ascii=False)


def prompt_adds_special_tokens(template: str) -> bool:
    """Whether the tokenizer should add its special tokens around the rendered prompt (a chat
    template already wrote them)."""
    return template != "chat"
