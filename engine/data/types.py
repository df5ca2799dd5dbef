"""Typed records shared by every engine area: an example of a data set and a validation finding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
COMPLEXITIES = ("simple", "medium", "complex")


@dataclass(frozen=True)
class Finding:
    """One problem (or note) about a data set, with where it is and what to do about it."""

    kind: str  # unreadable, parse, missing_field, unknown_schema, invalid_schema, json_schema, ...
    severity: str  # error / warning / info
    message: str
    example_id: str | None = None
    line: int | None = None  # 1-based line in `file`
    path: str | None = None  # JSON path inside expected_output, e.g. "$.items[0].total"
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Example:
    """One `prompt -> expected JSON` example, whatever record shape it was read from."""

    id: str
    schema_id: str
    prompt: str
    expected: Any
    complexity: str | None = None
    complexity_inferred: bool = False
    file: str | None = None
    line: int | None = None
    split: str | None = None  # train / test / None when unknown
    inline_schema: dict | None = None  # a record that carried its own `schema` object
    extra: dict[str, Any] = field(default_factory=dict)  # teacher, source, schema_name, ...
