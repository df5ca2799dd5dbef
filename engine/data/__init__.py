"""Data sets: loading examples and schemas, validation, rules, grounding, splits."""
