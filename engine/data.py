"""Reading data sets: JSONL examples in any of the three record shapes, and a registry of JSON
Schemas (a folder, complexity tiers as sub-folders or flat).

Loading never raises on bad content and never drops a line without saying so: every line that
cannot become an `Example` becomes a `Finding` (file, 1-based line, id when known, what to do).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.types import COMPLEXITIES, Example, Finding

# Keys a record may use for its expected output (the first present wins).
EXPECTED_KEYS = ("expected_output", "expected")
# Keys that become Example attributes; everything else is kept in Example.extra.
CORE_KEYS = {"id", "schema_id", "schema_name", "schema", "prompt", "complexity", *EXPECTED_KEYS}


@dataclass
class LoadResult:
    """What one file yielded: the examples that loaded and a finding for everything that did not."""

    path: Path
    examples: list[Example] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    readable: bool = True  # False when the file itself could not be opened


@dataclass
class DatasetInfo:
    """A data-set file at a glance, for listings (the TUI's Datasets pane, `datasets` table)."""

    path: Path
    name: str
    n_examples: int
    schema_ids: list[str]
    complexity_mix: dict[str, int]
    schemas_dir: Path | None
    split: str | None
    n_findings: int = 0


def _schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable draft-07 JSON Schema, or None when it is."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        return f"a schema must be a JSON object, not {type(schema).__name__}"
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"not a valid draft-07 schema at {where}: {exc.message}"
    return None


class SchemaRegistry:
    """JSON Schemas by id (file name without `.json`), with the tier folder each came from."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory) if directory else None
        self._schemas: dict[str, dict] = {}
        self._tiers: dict[str, str | None] = {}
        self._files: dict[str, Path] = {}
        self.findings: list[Finding] = []

    @classmethod
    def from_dir(cls, path: str | Path | None) -> SchemaRegistry:
        registry = cls(Path(path) if path else None)
        if registry.dir is None:
            return registry
        if not registry.dir.is_dir():
            registry.findings.append(
                Finding(
                    "invalid_schema",
                    "error",
                    f"schemas folder {registry.dir} does not exist; pass --schemas DIR pointing at a "
                    "folder of *.json schemas",
                    file=str(registry.dir),
                )
            )
            return registry
        for file in sorted(registry.dir.rglob("*.json")):
            registry._load_file(file)
        return registry

    def _load_file(self, file: Path) -> None:
        rel = file.relative_to(self.dir)
        tier = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in COMPLEXITIES else None
        schema_id = file.stem

        def bad(message: str, severity: str = "error") -> None:
            self.findings.append(Finding("invalid_schema", severity, message, file=str(file)))

        try:
            schema = json.loads(file.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            bad(f"schema file {file} cannot be read as JSON ({exc}); fix it or remove it")
            return
        problem = _schema_problem(schema)
        if problem:
            bad(f"schema {schema_id!r} in {file}: {problem}; examples using it are not checked")
            return
        if schema_id in self._schemas:
            bad(
                f"schema {schema_id!r} is defined twice ({self._files[schema_id]} and {file}); "
                f"using the first, rename one of them",
                "warning",
            )
            return
        self._schemas[schema_id] = schema
        self._tiers[schema_id] = tier
        self._files[schema_id] = file

    def add(self, schema_id: str, schema: dict, tier: str | None = None) -> None:
        """Register a schema held in memory (tests, inline schemas)."""
        self._schemas[schema_id] = schema
        self._tiers[schema_id] = tier

    def get(self, schema_id: str) -> dict | None:
        return self._schemas.get(schema_id)

    def tier(self, schema_id: str) -> str | None:
        return self._tiers.get(schema_id)

    def file(self, schema_id: str) -> Path | None:
        return self._files.get(schema_id)

    @property
    def schema_ids(self) -> list[str]:
        return sorted(self._schemas)

    def __len__(self) -> int:
        return len(self._schemas)

    def __contains__(self, schema_id: str) -> bool:
        return schema_id in self._schemas


def _shape(schema: Any, depth: int = 1) -> tuple[int, int, bool]:
    """(nesting depth, number of fields, has an array of objects) of a schema, recursively."""
    if not isinstance(schema, dict):
        return depth - 1, 0, False
    if schema.get("type") == "array" or "items" in schema:
        # A list of scalars adds no depth; a list of objects nests one level.
        items = schema.get("items")
        is_obj = isinstance(items, dict) and (
            "properties" in items or items.get("type") == "object"
        )
        if not is_obj:
            return depth - 1, 0, False
        d, n, arr = _shape(items, depth)
        return d, n, True
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return depth - 1, 0, False
    max_depth, n_fields, arrays = depth, len(props), False
    for sub in props.values():
        d, n, arr = _shape(sub, depth + 1)
        max_depth, n_fields, arrays = max(max_depth, d), n_fields + n, arrays or arr
    return max_depth, n_fields, arrays


def infer_complexity(schema: dict | None) -> str:
    """Guess a tier from structure: flat and small is simple; deep, wide or nested lists complex."""
    depth, n_fields, arrays_of_objects = _shape(schema or {})
    # Thresholds fit the tiers of the 25 EdgeJSON schemas (all agree) and the bundled sample.
    if depth >= 3 or n_fields >= 20:
        return "complex"
    if depth <= 2 and n_fields <= 6 and not arrays_of_objects:
        return "simple"
    return "medium"


def split_from_name(path: Path) -> str | None:
    """`train` or `test` when the file's name says so (train.jsonl, edgejson_test_v1.jsonl)."""
    words = set(re.split(r"[^a-z]+", path.stem.lower()))
    for split in ("train", "test"):
        if split in words:
            return split
    return None


_VERSION_RE = re.compile(r"(?:^|[_\-.])v(\d+(?:[._]\d+)*)$")
_SPLIT_WORDS = {"train", "test", "val", "valid", "validation", "dev", "eval"}


def version_from_name(path: str | Path) -> tuple[str, str | None]:
    """(data set, version) a file's name says: `train_v3` -> ('', '3'), `edgejson_test_v1` ->
    ('edgejson', '1'), `train` -> ('', None). The data set is the stem without its version
    suffix and its split word, so a data set's train and test files share it."""
    stem = Path(path).stem.lower()
    m = _VERSION_RE.search(stem)
    version = m.group(1).replace("_", ".") if m else None
    if m:
        stem = stem[: m.start()]
    words = [w for w in re.split(r"[^a-z0-9]+", stem) if w and w not in _SPLIT_WORDS]
    return "_".join(words), version


def other_versions(a: str | Path, b: str | Path) -> bool:
    """Whether two files are different versions of one data set (`train_v2` and `train_v3`,
    `train_v2` and `test_v3`): their examples are never compared for duplicates or leaks."""
    if Path(a) == Path(b):
        return False
    (name_a, ver_a), (name_b, ver_b) = version_from_name(a), version_from_name(b)
    return name_a == name_b and ver_a is not None and ver_b is not None and ver_a != ver_b


def _snippet(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _id_hint(text: str) -> str | None:
    """The record's id when a damaged line still shows one, so a finding can name it."""
    m = re.search(r'"id"\s*:\s*"([^"]{1,200})"', text)
    return m.group(1) if m else None


def load_examples(
    path: str | Path, registry: SchemaRegistry | None = None, split: str | None = None
) -> LoadResult:
    """Every example in a JSONL file, plus a finding for each line that could not load.

    The file is read as bytes and decoded line by line, so one bad byte costs one line.
    `split` is the default for records without a `split` field (else the file name decides).
    """
    path = Path(path)
    result = LoadResult(path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        what = "is a folder, not a file" if path.is_dir() else (exc.strerror or str(exc))
        result.readable = False
        result.findings.append(
            Finding(
                "unreadable",
                "error",
                f"cannot read {path}: {what}; pass a .jsonl file",
                file=str(path),
            )
        )
        return result
    default_split = split or split_from_name(path)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        _load_line(raw, lineno, path, registry, default_split, result)
    return result


def _load_line(
    raw: bytes,
    lineno: int,
    path: Path,
    registry: SchemaRegistry | None,
    default_split: str | None,
    result: LoadResult,
) -> None:
    def finding(
        kind: str, message: str, example_id: str | None = None, severity: str = "error"
    ) -> None:
        result.findings.append(
            Finding(kind, severity, message, example_id, lineno, None, str(path))
        )

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        loose = raw.decode("utf-8", errors="replace")
        finding(
            "unreadable",
            f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not "
            f"UTF-8; re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            _id_hint(loose),
        )
        return
    try:
        record = json.loads(text)
    except ValueError as exc:
        finding(
            "parse",
            f"not valid JSON ({exc}); each line must be one complete JSON object: fix or delete it",
            _id_hint(text),
        )
        return
    if not isinstance(record, dict):
        finding(
            "parse",
            f"a JSON {type(record).__name__}, not an object "
            f"({_snippet(text)}); each line must be one {{...}} record",
        )
        return
    example_id = record.get("id")
    if example_id is None or example_id == "":
        example_id = f"{path.stem}:{lineno}"
        finding(
            "missing_metadata", f"record has no `id`; calling it {example_id!r}", example_id, "info"
        )
    example_id = str(example_id)

    missing = []
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        missing.append("prompt")
    expected_key = next((k for k in EXPECTED_KEYS if k in record), None)
    if expected_key is None:
        missing.append("expected_output")
    inline = record.get("schema")
    schema_id = record.get("schema_id") or record.get("schema_name")
    if not schema_id and inline is None:
        missing.append("schema_id (or schema_name, or an inline schema)")
    if missing:
        finding(
            "missing_field",
            f"record lacks {', '.join(missing)}; add "
            f"{'it' if len(missing) == 1 else 'them'} or delete the line",
            example_id,
        )
        return
    schema_id = str(schema_id or "inline")

    schema = None
    if inline is not None:
        problem = _schema_problem(inline)
        if problem:
            finding(
                "invalid_schema",
                f"inline `schema` of {example_id}: {problem}; fix the "
                f"schema or drop it and name a schema file with schema_id",
                example_id,
            )
            return
        schema = inline
    elif registry is not None:
        schema = registry.get(schema_id)
        if schema is None:
            where = f"in {registry.dir}" if registry.dir else "(no schemas folder given)"
            known = ", ".join(registry.schema_ids[:8]) or "none"
            finding(
                "unknown_schema",
                f"schema {schema_id!r} not found {where}; add "
                f"{schema_id}.json there or fix the name (known: {known})",
                example_id,
            )

    example = Example(
        id=example_id,
        schema_id=schema_id,
        prompt=prompt,
        expected=record[expected_key],
        file=str(path),
        line=lineno,
        split=record.get("split") or default_split,
        inline_schema=inline if isinstance(inline, dict) else None,
        extra={k: v for k, v in record.items() if k not in CORE_KEYS},
    )
    if "schema_name" in record:
        example.extra["schema_name"] = record["schema_name"]
    _set_complexity(example, record.get("complexity"), schema, registry, finding)
    result.examples.append(example)


def _set_complexity(
    example: Example, given: Any, schema: dict | None, registry: SchemaRegistry | None, finding
) -> None:
    """The record's own complexity, else the registry tier, else a guess from the schema."""
    if given is not None and given not in COMPLEXITIES:
        finding(
            "missing_metadata",
            f"complexity {given!r} is not one of {', '.join(COMPLEXITIES)}; ignoring it",
            example.id,
            "warning",
        )
        given = None
    if given:
        example.complexity, source = given, "record"
    elif (
        registry is not None and example.inline_schema is None and registry.tier(example.schema_id)
    ):
        example.complexity, source = registry.tier(example.schema_id), "registry"
    elif schema is not None:
        example.complexity, source = infer_complexity(schema), "structure"
        example.complexity_inferred = True
        finding(
            "missing_metadata",
            f"no complexity given and the schema has no tier folder; "
            f"inferred {example.complexity!r} from the schema's structure (add a "
            f"`complexity` field or put the schema under simple/, medium/ or complex/)",
            example.id,
            "info",
        )
    else:
        source = None
    example.extra["complexity_source"] = source


def find_schemas_dir(data_path: str | Path) -> Path | None:
    """A `schemas/` folder beside the data file, or in its parent folder."""
    path = Path(data_path)
    base = path if path.is_dir() else path.parent
    for candidate in (base / "schemas", base.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    return None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover_datasets(paths: list[str | Path]) -> list[DatasetInfo]:
    """Each JSONL file among `paths` (folders are searched recursively), summarised."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in sorted(p.rglob("*.jsonl")) if "schemas" not in f.parts)
        elif p.suffix == ".jsonl" and p.exists():
            files.append(p)
    registries: dict[Path | None, SchemaRegistry] = {}
    infos = []
    for file in files:
        schemas_dir = find_schemas_dir(file)
        if schemas_dir not in registries:
            registries[schemas_dir] = SchemaRegistry.from_dir(schemas_dir)
        loaded = load_examples(file, registries[schemas_dir])
        infos.append(
            DatasetInfo(
                path=file,
                name=f"{file.parent.name}/{file.stem}",
                n_examples=len(loaded.examples),
                schema_ids=sorted({e.schema_id for e in loaded.examples}),
                complexity_mix=dict(Counter(e.complexity or "unknown" for e in loaded.examples)),
                schemas_dir=schemas_dir,
                split=split_from_name(file),
                n_findings=sum(f.severity == "error" for f in loaded.findings),
            )
        )
    return infos
