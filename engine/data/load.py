"""Reading data sets: JSONL examples in any of the three record shapes, and a registry of JSON
Schemas (a folder, complexity tiers as sub-folders or flat).

Loading never raises on bad content and never drops a line without saying so: every line that
cannot become an `Example` becomes a `Finding` (file, 1-based line, id when known, what to do).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from engine.data.types import COMPLEXITIES, Example, Finding

BOM = codecs.BOM_UTF8
# Deepest nesting of objects and arrays a record or schema may have. Real extraction targets are
# a few levels deep; the recursive code that reads them (JSON Schema validation, rendering,
# scoring) runs out of stack near a thousand levels, so anything deeper is a `parse` finding.
MAX_DEPTH = 100

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

    def skipped(self) -> list[Finding]:
        """The error findings of lines that yielded no example (those lines are left out)."""
        kept = {e.line for e in self.examples}
        return [f for f in self.findings if f.severity == "error" and f.line not in kept]


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
    error: str | None = None  # why the file could not be summarised (the others still are)


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion and
    only up to `limit + 1`: whether a value is too deep is all that matters past the limit."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


class TooDeep(ValueError):
    """JSON nested more than MAX_DEPTH levels deep."""


def parse_json_line(text: str) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_DEPTH (raises TooDeep, a ValueError)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested more than {MAX_DEPTH} levels deep") from None
    # Only a text with more brackets than the limit can nest past it: skip the walk otherwise.
    if text.count("[") + text.count("{") > MAX_DEPTH and json_depth(value) > MAX_DEPTH:
        raise TooDeep(f"nested more than {MAX_DEPTH} levels deep")
    return value


def _schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable draft-07 JSON Schema, or None when it is."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        return f"a schema must be a JSON object, not {type(schema).__name__}"
    if json_depth(schema) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"not a valid draft-07 schema at {where}: {shorten(exc.message, 200)}"
    except RecursionError:
        return f"nested too deeply to check (keep it under {MAX_DEPTH} levels)"
    return None


# --- $ref: resolved inside the schema folder only ---------------------------------------------


class RefError(ValueError):
    """A `$ref` that does not resolve inside the schema folder; the message names it."""


def _subschemas(schema: dict):
    """Every subschema (the schema itself first), keyword-aware, without recursion: `$ref`
    values inside `enum`, `const` or `default` data are not references."""
    from referencing.jsonschema import DRAFT7

    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node
        stack.extend(DRAFT7.subresources_of(node))


def no_fetch_registry():
    """A `referencing` registry for jsonschema validators that retrieves nothing: a reference
    not inside the schema (bundle_refs has made every allowed one internal) fails at once as
    Unresolvable instead of being fetched over the network or read from disk."""
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def refuse(uri: str):
        raise NoSuchResource(ref=uri)

    return Registry(retrieve=refuse)


def _pointer(document: Any, fragment: str) -> Any:
    """The value a JSON pointer fragment (`/definitions/a`) names; raises KeyError if none."""
    node = document
    for token in fragment.split("/")[1:]:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(token)
    return node


def _check_fragment(document: dict, fragment: str, ref: str) -> None:
    if not fragment:
        return
    if fragment.startswith("/"):
        try:
            _pointer(document, fragment)
        except KeyError:
            raise RefError(f"$ref {ref!r} points at nothing in the schema") from None
    elif not any(s.get("$id") == "#" + fragment for s in _subschemas(document)):
        raise RefError(f'$ref {ref!r} names no `$id: "#{fragment}"` in the schema')


def bundle_refs(schema: dict, source: Path | None = None, folder: Path | None = None) -> dict:
    """`schema` with every `$ref` made internal, or raises RefError naming the first that is not
    allowed or does not resolve.

    References are followed only inside `folder` (the schema folder): `#/...` pointers, and
    relative references to other schema files there (`address.json`, `common/a.json#/x`), whose
    contents are copied under `definitions` and the `$ref`s rewritten to point at the copies.
    Remote (`http:`, `https:`), `file:` and absolute references, and relative ones leading out of
    the folder, are refused: nothing is ever fetched. `source` is the file `schema` came from
    (relative references are read from its folder); without one they are read from `folder`.
    A schema with internal references only is returned as is; otherwise a copy.
    """
    import copy

    root_dir = Path(folder).resolve() if folder else None
    source = Path(source).resolve() if source else None
    refs = [s["$ref"] for s in _subschemas(schema) if isinstance(s.get("$ref"), str)]
    root_id = schema.get("$id") if isinstance(schema.get("$id"), str) else None
    if all(r.startswith("#") or (root_id and urldefrag(r)[0] == root_id) for r in refs):
        for ref in refs:
            _check_fragment(schema, urldefrag(ref)[1], ref)
        return schema

    bundled = copy.deepcopy(schema)
    definitions = bundled.setdefault("definitions", {})
    if not isinstance(definitions, dict):
        raise RefError("`definitions` must be an object to hold referenced schema files")
    # resolved file -> key under `definitions` ("" for the root schema itself)
    keys: dict[Path | None, str] = {source: ""}
    pending: list[tuple[dict, Path | None, str]] = [(bundled, source, "")]

    def target_of(ref: str, base: Path | None, doc_id: str | None) -> tuple[str, str]:
        """(key of the document the reference lands in, its fragment)."""
        uri, fragment = urldefrag(ref)
        if not uri or (doc_id and uri == doc_id):
            return key_of_current, fragment
        parts = urlsplit(uri)
        if parts.scheme or parts.netloc or uri.startswith(("/", "\\")):
            raise RefError(
                f"$ref {ref!r} points outside the schema folder; remote, file: and absolute "
                "references are never fetched: copy that schema into the folder and refer to "
                "it by its relative path"
            )
        if root_dir is None:
            raise RefError(f"$ref {ref!r} names another file but there is no schema folder")
        where = (base.parent if base else root_dir) / unquote(parts.path)
        try:
            path = where.resolve()
        except (OSError, RuntimeError):
            path = where
        if not path.is_relative_to(root_dir):
            raise RefError(
                f"$ref {ref!r} leads out of the schema folder {root_dir}; only files inside it "
                "are read"
            )
        if path not in keys:
            if not path.is_file():
                raise RefError(f"$ref {ref!r}: no file {path.relative_to(root_dir)} in {root_dir}")
            try:
                doc = parse_json_line(path.read_bytes().decode("utf-8-sig"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise RefError(
                    f"$ref {ref!r}: {path.name} cannot be read as JSON ({shorten(str(exc))})"
                ) from None
            if not isinstance(doc, dict):
                raise RefError(f"$ref {ref!r}: {path.name} is not a usable schema")
            doc.pop("$id", None)  # its references are rewritten to the copy's place below
            key = re.sub(r"\W+", "_", str(path.relative_to(root_dir)))
            while key in definitions or key in keys.values():
                key += "_"
            definitions[key] = doc
            keys[path] = key
            pending.append((doc, path, key))
        return keys[path], fragment

    while pending:
        doc, base, key_of_current = pending.pop()
        doc_id = root_id if key_of_current == "" else None
        for sub in list(_subschemas(doc)):
            ref = sub.get("$ref")
            if not isinstance(ref, str):
                continue
            key, fragment = target_of(ref, base, doc_id)
            if fragment and not fragment.startswith("/"):
                raise RefError(f"$ref {ref!r}: only `#/...` pointers may follow a file name")
            sub["$ref"] = "#" + (f"/definitions/{key}" if key else "") + fragment
    for sub in _subschemas(bundled):
        ref = sub.get("$ref")
        if isinstance(ref, str):
            _check_fragment(bundled, urldefrag(ref)[1], ref)
    return bundled


class SchemaRegistry:
    """JSON Schemas by id (file name without `.json`), with the tier folder each came from."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory) if directory else None
        self._schemas: dict[str, dict] = {}
        self._tiers: dict[str, str | None] = {}
        self._files: dict[str, Path] = {}
        self._rejected: dict[str, str] = {}  # schema id -> why its file is not used
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
            schema = parse_json_line(file.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            bad(
                f"schema file {file} cannot be read as JSON ({shorten(str(exc))}); fix it or "
                "remove it"
            )
            self._rejected.setdefault(schema_id, f"{file.name} is not valid JSON")
            return
        problem = _schema_problem(schema)
        if problem is None:
            try:
                schema = bundle_refs(schema, file, self.dir)
            except RefError as exc:
                problem = str(exc)
        if problem:
            bad(f"schema {schema_id!r} in {file}: {problem}; examples using it are not checked")
            self._rejected.setdefault(schema_id, f"{file.name}: {problem}")
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
        self._rejected.pop(schema_id, None)

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

    def rejected(self, schema_id: str) -> str | None:
        """Why the file of `schema_id` is in the folder but not usable, or None."""
        return self._rejected.get(schema_id)

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


# Longest a value quoted in a finding's message may be; messages are read in a table or a pane.
VALUE_LIMIT = 200


def shorten(text: str, limit: int = VALUE_LIMIT) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def shorten_middle(text: str, limit: int = VALUE_LIMIT) -> str:
    """`text` with its middle cut out when longer than `limit`: a message such as
    `[1, 2, ...] is too long` keeps both the start of the value and what is wrong with it."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} …({len(text) - 2 * half} characters)… {text[-half:]}"


def short_repr(value: Any, limit: int = VALUE_LIMIT) -> str:
    """`repr(value)` cut to about `limit` characters, without building the whole repr of a
    large list, dict or string first."""
    if isinstance(value, str) and len(value) > limit:
        return shorten(repr(value[: limit + 1]), limit)
    if isinstance(value, (list, dict)) and len(value) > limit:
        head = value[:limit] if isinstance(value, list) else dict(islice(value.items(), limit))
        kind = "items" if isinstance(value, list) else "keys"
        return f"{shorten(repr(head), limit)} ({len(value)} {kind} in all)"
    try:
        return shorten(repr(value), limit)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


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
        # A byte-order mark (an editor's, or one left by concatenating files) is not content.
        raw = raw.rstrip(b"\r").removeprefix(BOM)
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
        record = parse_json_line(text)
    except TooDeep as exc:
        finding(
            "parse",
            f"{exc} (at most {MAX_DEPTH} levels of objects and arrays are read); flatten the "
            "record or delete the line",
            _id_hint(text[:10_000]),
        )
        return
    except ValueError as exc:
        finding(
            "parse",
            f"not valid JSON ({shorten(str(exc))}); each line must be one complete JSON object: "
            "fix or delete it",
            _id_hint(text[:10_000]),
        )
        return
    if not isinstance(record, dict):
        finding(
            "parse",
            f"a JSON {type(record).__name__}, not an object "
            f"({_snippet(text[:1000])}); each line must be one {{...}} record",
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
        if problem is None:
            try:
                inline = bundle_refs(inline, None, registry.dir if registry is not None else None)
            except RefError as exc:
                problem = str(exc)
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
        if schema is None and registry.rejected(schema_id):
            finding(
                "unknown_schema",
                f"schema {schema_id!r} is not usable ({registry.rejected(schema_id)}); fix "
                "the schema file: this example is not checked against it",
                example_id,
            )
        elif schema is None:
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
        try:
            if schemas_dir not in registries:
                registries[schemas_dir] = SchemaRegistry.from_dir(schemas_dir)
            loaded = load_examples(file, registries[schemas_dir])
        except Exception as exc:  # noqa: BLE001 - one bad file never hides the others
            infos.append(
                DatasetInfo(
                    file,
                    f"{file.parent.name}/{file.stem}",
                    0,
                    [],
                    {},
                    schemas_dir,
                    split_from_name(file),
                    1,
                    shorten(f"{type(exc).__name__}: {exc}"),
                )
            )
            continue
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
