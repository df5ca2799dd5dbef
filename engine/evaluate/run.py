"""Evaluation runs: generate an answer for every example (or take outputs produced elsewhere),
score it, and record the run, every prediction and the aggregate report in the run log.

Predictions are written batch by batch, so a crash or a cancel keeps what was done. Aggregates:
overall, by complexity (with how many tiers were inferred), by schema, by failure category and
by schema x failure; tokens/s is counted from the tokens actually generated. A prediction's
`latency_s` is its share of its batch's generation time, split by generated tokens. Scoring
follows a protocol (engine.evaluate.protocols): SchemaLab's own, or the published EdgeJSON harness's.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import runlog
from engine.evaluate.metrics import FAILURE_ORDER, has_zoneless_date_times
from engine.evaluate.protocols import DEFAULT_PROTOCOL, ProtocolError, check_protocol, score_output


class EvaluationError(Exception):
    """An evaluation that cannot start (no data, bad files); the message says what to do."""


NO_PREDICTION = "no prediction for this id"
EXTERNAL_NOTE = (
    "outputs produced elsewhere: their token counts and latencies are unknown and recorded as 0"
)


def _db(db: Any):
    return runlog.connect(db) if db is None or isinstance(db, (str, Path)) else db


def load_data(data: str | Path, schemas_dir: str | Path | None = None):
    """(examples, registry, load findings) for a JSONL file and its schema folder."""
    from engine.data.load import SchemaRegistry, find_schemas_dir, load_examples

    data = Path(data)
    if not data.is_file():
        raise EvaluationError(f"{data}: no such data file; pass a .jsonl file with --data")
    folder = Path(schemas_dir) if schemas_dir else find_schemas_dir(data)
    if schemas_dir and not folder.is_dir():
        raise EvaluationError(f"{folder}: no such schema folder (--schemas)")
    registry = SchemaRegistry.from_dir(folder) if folder else None
    loaded = load_examples(data, registry)
    if not loaded.examples:
        problems = "; ".join(f"line {f.line}: {f.message}" for f in loaded.findings[:3])
        raise EvaluationError(f"{data}: no usable examples ({problems or 'empty file'})")
    # A schema whose $ref is not followed (remote, or outside the folder) cannot be scored or
    # decoded against: say so rather than evaluate those examples without it.
    refused = [
        f"{data.name}:{f.line}: {f.message}"
        for f in loaded.findings
        if f.kind == "invalid_schema" and "$ref" in f.message
    ]
    refused += sorted(
        {
            f"schema {e.schema_id!r}: {registry.rejected(e.schema_id)}"
            for e in loaded.examples
            if registry is not None and "$ref" in (registry.rejected(e.schema_id) or "")
        }
    )
    if refused:
        raise EvaluationError(
            "; ".join(refused[:3]) + (f" (and {len(refused) - 3} more)" if len(refused) > 3 else "")
        )
    return loaded.examples, registry, loaded.findings


def schema_of(example, registry) -> dict | None:
    if example.inline_schema is not None:
        return example.inline_schema
    return registry.get(example.schema_id) if registry is not None else None


def default_formats(examples, registry) -> tuple[str, str]:
    """(`lenient` or `strict`, why): lenient when any expected date-time lacks a time zone,
    since a strict grammar could not produce those answers."""
    for ex in examples:
        schema = schema_of(ex, registry)
        if schema is not None and has_zoneless_date_times(ex.expected, schema):
            return "lenient", f"expected outputs have date-times without a time zone (e.g. {ex.id})"
    return "strict", "every expected date-time has a time zone"


def run_evaluation(
    db: Any,
    model: str,
    data: str | Path,
    adapter: str | Path | None = None,
    schemas_dir: str | Path | None = None,
    decoding: Any = None,
    constrained: bool = False,
    limit: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int, float], None] | None = None,
    cancel: Any = None,
    *,
    formats: str | None = None,
    device: str | None = None,
    generator: Any = None,
    protocol: str = DEFAULT_PROTOCOL,
    prompt_template: str | None = None,
) -> int:
    """Evaluate `model` (+ `adapter`) on `data`; returns the eval run id. `progress(done, total,
    running_exact)` is called after each batch; `cancel` (Event or callable) stops between batches
    and tokens, leaving a `cancelled` run with the predictions made so far.

    `protocol` is `schemalab` or `edgejson` (engine.evaluate.protocols; `edgejson` fixes the decoding to
    the harness's and refuses `constrained`). `prompt_template` defaults to the adapter's
    training template (when `adapter` is a training run that recorded one), else `schemalab`;
    a template other than the adapter's training template is recorded as `template_warning`."""
    from engine.decode.generate import Cancelled, DecodingConfig, Generator

    database = _db(db)
    decoding = _protocol_decoding(protocol, decoding, constrained) or DecodingConfig()
    template, template_warning = choose_template(database, adapter, prompt_template, protocol)
    examples, registry, findings = load_data(data, schemas_dir)
    if limit:
        examples = examples[:limit]
    if formats is None:
        formats, formats_reason = default_formats(examples, registry)
    else:
        formats_reason = "set by the user"
    config = {
        "model": model,
        "adapter": str(adapter) if adapter else None,
        "data": str(data),
        "schemas_dir": str(registry.dir) if registry is not None and registry.dir else None,
        "decoding": decoding.to_dict(),
        "constrained": constrained,
        "formats": formats,
        "limit": limit,
        "batch_size": batch_size,
        "protocol": protocol,
        "prompt_template": template,
        "data_resolved": str(Path(data).resolve()),
    }
    dataset_id = _record_dataset(database, data, examples)
    run_id = runlog.create_run(
        database,
        "eval",
        config,
        model=model,
        adapter=config["adapter"],
        data_path=str(data),
        dataset_id=dataset_id,
        name=f"eval {Path(data).name}",
        summary={"n_total": len(examples)},
    )
    state = {"rows": [], "gen_s": 0.0, "t": time.perf_counter()}
    try:
        gen = generator or Generator(model, adapter, device, db=database, template=template)
        if gen.adapter_run_id is not None:
            runlog.update_run(database, run_id, parent_run_id=gen.adapter_run_id)
        disagree = _grammar_check(gen, examples, registry, formats) if constrained else None
        items = [(e.prompt, e.schema_id, schema_of(e, registry)) for e in examples]

        def on_batch(indices, gens):
            now = time.perf_counter()
            batch_s = now - state["t"]
            state["gen_s"] += batch_s
            rows = [
                _prediction(
                    run_id,
                    examples[i],
                    g,
                    schema_of(examples[i], registry),
                    formats,
                    protocol=protocol,
                    latency_s=share,
                )
                for i, g, share in zip(indices, gens, _latency_shares(gens, batch_s))
            ]
            runlog.insert_rows(database, "predictions", rows)
            runlog.heartbeat(database, run_id)
            state["rows"].extend(rows)
            if progress:
                done = state["rows"]
                progress(len(done), len(examples), sum(r["json_exact"] for r in done) / len(done))
            state["t"] = time.perf_counter()

        state["t"] = time.perf_counter()  # generation time excludes loading and grammar checks
        gen.generate(
            items,
            decoding,
            constrained=constrained,
            batch_size=batch_size,
            cancel=cancel,
            formats=formats,
            on_batch=on_batch,
        )
        status = "completed"
    except Cancelled:
        status = "cancelled"
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: the predictions made so far are kept, with their aggregates.
        _finish_partial(
            database,
            run_id,
            config,
            state,
            "cancelled",
            _error_text(exc),
            model=model,
            data=data,
            decoding=decoding,
            n_total=len(examples),
        )
        raise
    except BaseException as exc:
        oom = _oom_hint(exc, batch_size)
        if state["rows"]:
            _finish_partial(
                database,
                run_id,
                config,
                state,
                "failed",
                (oom + "\n\n" if oom else "") + _error_text(exc),
                model=model,
                data=data,
                decoding=decoding,
                n_total=len(examples),
            )
        else:
            _try_finish(
                database, run_id, "failed", (oom + "\n\n" if oom else "") + _error_text(exc)
            )
        if oom:
            raise EvaluationError(
                f"{oom} (run {run_id} keeps the {len(state['rows'])} predictions made)"
            ) from exc
        raise
    report = aggregate(state["rows"], state["gen_s"])
    report.update(
        run_id=run_id,
        status=status,
        model=model,
        adapter=config["adapter"],
        data=str(data),
        decoding=decoding.to_dict(),
        constrained=constrained,
        formats=formats,
        formats_reason=formats_reason,
        n_total=len(examples),
        load_findings=len(findings),
        grammar_disagrees=disagree,
        protocol=protocol,
        prompt_template=template,
        template_warning=template_warning,
    )
    _store_evaluation(database, run_id, config, report)
    runlog.finish_run(database, run_id, status, summary=_summary(report))
    return run_id


def read_predictions(path: str | Path) -> tuple[dict[str, dict], list[dict]]:
    """({id: {"output", "line"}}, findings) of a predictions file, one `{"id": ..., "output":
    "raw model text"}` per line. Unreadable lines and repeated ids are findings (the first line
    of an id is kept); a line that names an id but cannot be used marks it `bad`."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(
            f"{path}: no such predictions file; pass a .jsonl file with "
            '--predictions (one {"id": ..., "output": "..."} per line)'
        )
    out: dict[str, dict] = {}
    findings: list[dict] = []
    shape = 'each line must be {"id": ..., "output": "raw model text"}'

    def finding(kind: str, line: int, message: str, example_id: str | None = None) -> None:
        findings.append(
            {
                "kind": kind,
                "file": str(path),
                "line": line,
                "where": f"{path}:{line}",
                "example_id": example_id,
                "message": message,
            }
        )

    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark is no error
        except UnicodeDecodeError as exc:
            finding(
                "unreadable",
                lineno,
                f"byte {exc.start + 1} is not UTF-8; re-save the file as UTF-8",
            )
            continue
        except RecursionError:
            finding("unreadable", lineno, f"nested too deeply to read; {shape}")
            continue
        except ValueError as exc:
            finding("unreadable", lineno, f"not valid JSON ({exc}); {shape}: fix or delete it")
            continue
        if not isinstance(record, dict) or record.get("id") in (None, ""):
            finding("unreadable", lineno, f"no `id`; {shape}")
            continue
        example_id = str(record["id"])
        output = record.get("output")
        if example_id in out:
            first = out[example_id]["line"]
            finding(
                "duplicate_id",
                lineno,
                f"id {example_id!r} was already given on line {first}; "
                "only the first is scored: delete the other",
                example_id,
            )
            continue
        if not isinstance(output, str):
            got = "missing" if "output" not in record else f"a JSON {type(output).__name__}"
            finding(
                "unreadable",
                lineno,
                f"`output` of {example_id!r} is {got}, not a string; "
                f"{shape} (the raw text, e.g. json.dumps of a parsed answer)",
                example_id,
            )
            out[example_id] = {"output": None, "line": lineno, "bad": True}
            continue
        out[example_id] = {"output": output, "line": lineno, "bad": False}
    return out, findings


def run_scoring(
    db: Any,
    data: str | Path,
    predictions: str | Path,
    schemas_dir: str | Path | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    formats: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """Score outputs produced elsewhere (`predictions`: one `{"id", "output"}` per line) against
    `data` and record them as an evaluation run, one prediction row per data example, exactly as
    `run_evaluation` does; returns the run id. Ids in the predictions but not in the data,
    examples without a prediction (scored as an empty output, `unparseable`), repeated ids and
    unreadable lines are listed in the report's `findings`. Token counts and latencies are
    unknown and recorded as 0."""
    from engine.decode.generate import Generation

    database = _db(db)
    _protocol_decoding(protocol, None, False)
    examples, registry, load_findings = load_data(data, schemas_dir)
    outputs, findings = read_predictions(predictions)
    if not any(not o["bad"] for o in outputs.values()):
        raise EvaluationError(
            f"{predictions}: no usable predictions "
            f"({'; '.join(f['message'] for f in findings[:3]) or 'empty file'})"
        )
    if formats is None:
        formats, formats_reason = default_formats(examples, registry)
    else:
        formats_reason = "set by the user"
    model = f"external:{Path(predictions).name}"
    config = {
        "source": "predictions",
        "predictions": str(predictions),
        "protocol": protocol,
        "model": model,
        "adapter": None,
        "data": str(data),
        "data_resolved": str(Path(data).resolve()),
        "schemas_dir": str(registry.dir) if registry is not None and registry.dir else None,
        "decoding": None,
        "constrained": False,
        "formats": formats,
        "prompt_template": None,
    }
    known = {e.id for e in examples}
    for example_id, o in outputs.items():
        if example_id not in known:
            findings.append(
                {
                    "kind": "unknown_id",
                    "file": str(predictions),
                    "line": o["line"],
                    "where": f"{predictions}:{o['line']}",
                    "example_id": example_id,
                    "message": f"id {example_id!r} is not in {data}; check that the predictions "
                    "belong to this data set, or delete the line",
                }
            )
    dataset_id = _record_dataset(database, data, examples)
    run_id = runlog.create_run(
        database,
        "eval",
        config,
        model=model,
        data_path=str(data),
        dataset_id=dataset_id,
        name=f"score {Path(predictions).name}",
    )
    rows: list[dict] = []
    try:
        batch: list[dict] = []
        for ex in examples:
            given = outputs.get(ex.id)
            text = given["output"] if given and not given["bad"] else ""
            row = _prediction(
                run_id,
                ex,
                Generation(text, 0, 0.0, False, "external"),
                schema_of(ex, registry),
                formats,
                protocol=protocol,
            )
            if given is None or given["bad"]:
                row["parse_error"] = NO_PREDICTION
                if given is not None:
                    row["parse_error"] += f" (line {given['line']} of the predictions is unusable)"
                if given is None:
                    findings.append(
                        {
                            "kind": "missing_id",
                            "file": ex.file,
                            "line": ex.line,
                            "where": f"{ex.file}:{ex.line}",
                            "example_id": ex.id,
                            "message": f"no prediction for {ex.id!r}; scored as an empty output "
                            "(unparseable): add a line for it to the predictions",
                        }
                    )
            batch.append(row)
            if len(batch) == 256 or ex is examples[-1]:
                runlog.insert_rows(database, "predictions", batch)
                rows += batch
                batch = []
                if progress:
                    progress(
                        len(rows), len(examples), sum(r["json_exact"] for r in rows) / len(rows)
                    )
    except BaseException as exc:
        runlog.finish_run(database, run_id, "failed", error=_error_text(exc))
        raise
    report = aggregate(rows, 0.0)
    report.update(
        run_id=run_id,
        status="completed",
        model=model,
        adapter=None,
        data=str(data),
        decoding=None,
        constrained=False,
        formats=formats,
        formats_reason=formats_reason,
        n_total=len(examples),
        load_findings=len(load_findings),
        grammar_disagrees=None,
        protocol=protocol,
        prompt_template=None,
        template_warning=None,
        source="predictions",
        predictions=str(predictions),
        findings=findings,
        note=EXTERNAL_NOTE,
    )
    _store_evaluation(database, run_id, config, report)
    runlog.finish_run(database, run_id, "completed", summary=_summary(report))
    return run_id


def _protocol_decoding(protocol: str, decoding: Any, constrained: bool) -> Any:
    """The decoding config a protocol runs with: `edgejson` fixes the harness's (greedy,
    unconstrained, to EOS, 512 new tokens) and refuses anything else."""
    try:
        check_protocol(protocol)
    except ProtocolError as exc:
        raise EvaluationError(str(exc)) from None
    if protocol != "edgejson":
        return decoding
    from engine.evaluate.protocols import edgejson_decoding

    harness = edgejson_decoding()
    if constrained or (decoding is not None and decoding != harness):
        raise EvaluationError(
            "protocol edgejson decodes as the published harness does (greedy, unconstrained, "
            "to EOS, at most 512 new tokens); drop --constrained, --decoding and --set, or use "
            "--protocol schemalab"
        )
    return harness


def _adapter_template(database, adapter: Any) -> tuple[int | None, str | None]:
    """(training run id, the prompt template it trained with) when `adapter` names a training
    run (`RUN_ID` or `RUN_ID:...`) that recorded one; else (None, None)."""
    head = str(adapter).split(":", 1)[0] if adapter is not None else ""
    if not head.isdigit():
        return None, None
    run = runlog.get_run(database, int(head))
    template = (run.get("config") or {}).get("prompt_template") if run else None
    return (int(head), template) if template else (None, None)


def choose_template(
    database, adapter: Any, prompt_template: str | None, protocol: str = DEFAULT_PROTOCOL
) -> tuple[str, str | None]:
    """(the prompt template to evaluate with, a warning or None). Default: `edgejson` under that
    protocol, else the adapter's training template, else `schemalab`; a template other than
    the adapter's training template gets a warning."""
    from engine.decode.prompt import DEFAULT_TEMPLATE, TemplateError, check_template

    run_id, trained = _adapter_template(database, adapter)
    if protocol == "edgejson":
        if prompt_template not in (None, "edgejson"):
            raise EvaluationError(
                f"protocol edgejson uses the harness's prompt (template edgejson), not "
                f"{prompt_template!r}; drop --prompt-template or use --protocol schemalab"
            )
        template = "edgejson"
    else:
        template = prompt_template or trained or DEFAULT_TEMPLATE
    try:
        check_template(template)
    except TemplateError as exc:
        raise EvaluationError(str(exc)) from None
    warning = None
    if trained and template != trained:
        warning = (
            f"adapter run {run_id} was trained with prompt template {trained!r} but is "
            f"evaluated with {template!r}: expect lower scores (--prompt-template "
            f"{trained} matches its training)"
        )
    return template, warning


def _latency_shares(gens: list, batch_s: float) -> list[float]:
    """Each example's latency: its batch's generation time split by generated tokens (rows of one
    batch run together, so a per-row wall time would charge every row for the whole batch)."""
    total = sum(g.n_tokens for g in gens)
    if not total:
        return [batch_s / len(gens)] * len(gens) if gens else []
    return [batch_s * g.n_tokens / total for g in gens]


def _oom_hint(exc: BaseException, batch_size: int) -> str | None:
    """What to do when generation ran out of memory (GPU or host), else None."""
    import sys

    torch = sys.modules.get("torch")
    cuda_oom = torch is not None and isinstance(
        exc, getattr(getattr(torch, "cuda", None), "OutOfMemoryError", ())
    )
    if not (cuda_oom or isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()):
        return None
    smaller = max(1, batch_size // 2)
    where = "GPU" if cuda_oom or "cuda" in str(exc).lower() else "host"
    return (
        f"{where} out of memory at batch size {batch_size}; evaluate again with "
        f"--batch-size {smaller}" + (" (or a smaller max_new_tokens)" if smaller == 1 else "")
    )


def _try_finish(database, run_id: int, status: str, error: str, summary=None) -> None:
    """End a run, when the run log can still be written (a full disk may forbid even that)."""
    try:
        runlog.finish_run(database, run_id, status, error=error, summary=summary)
    except Exception:  # noqa: BLE001, S110 - the original failure is what gets reported
        pass


def _finish_partial(
    database, run_id: int, config: dict, state: dict, status: str, error: str, **fields
) -> None:
    """Record an evaluation that stopped early: the aggregates of the predictions made so far
    (marked partial), so `show` tells the truth about it."""
    try:
        report = aggregate(state["rows"], state["gen_s"])
        report.update(
            run_id=run_id,
            status=status,
            adapter=config["adapter"],
            model=fields["model"],
            data=str(fields["data"]),
            decoding=fields["decoding"].to_dict(),
            constrained=config["constrained"],
            formats=config["formats"],
            formats_reason="",
            n_total=fields["n_total"],
            protocol=config["protocol"],
            prompt_template=config["prompt_template"],
            partial=_partial_note(status, len(state["rows"]), fields["n_total"]),
        )
        _store_evaluation(database, run_id, config, report)
        summary = _summary(report)
    except Exception:  # noqa: BLE001 - a full disk: at least try to end the run
        summary = None
    _try_finish(database, run_id, status, error, summary)


def _partial_note(status: str, done: int, total: int | None) -> str:
    of = f" of {total}" if total else ""
    return f"evaluation {status} after {done}{of} examples: figures cover those only"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "stopped by the user (Ctrl-C or SIGTERM)"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]


def _grammar_check(gen, examples, registry, formats) -> dict:
    """How many expected outputs the grammar would not let the model write, with reasons."""
    from engine.decode.grammar import grammar_disagreement
    from engine.decode.prompt import render_target

    bad = []
    for ex in examples:
        schema = schema_of(ex, registry)
        if schema is None:
            continue
        reason = grammar_disagreement(
            gen.tokenizer, schema, render_target(ex.expected), formats, gen.vocab_size
        )
        if reason:
            bad.append({"example_id": ex.id, "schema_id": ex.schema_id, "reason": reason})
    return {"count": len(bad), "examples": bad[:20]}


def _prediction(
    run_id: int,
    ex,
    gen,
    schema: dict | None,
    formats: str,
    *,
    protocol: str = DEFAULT_PROTOCOL,
    latency_s: float | None = None,
) -> dict:
    """One predictions row: `gen` (text, truncated, n_tokens, latency_s) scored under `protocol`;
    `latency_s` overrides the generation's own figure."""
    from engine.evaluate.protocols import edgejson_complexity, edgejson_schema_name

    text = gen.text
    if protocol == "edgejson":
        text = text.strip()  # the harness strips its output
        complexity, inferred, schema_id = edgejson_complexity(ex), False, edgejson_schema_name(ex)
    else:
        complexity, schema_id = ex.complexity or "unknown", ex.schema_id
        source = ex.extra.get("complexity_source")
        inferred = ex.complexity_inferred or source not in (None, "record")
    s = score_output(protocol, ex, text, schema, truncated=gen.truncated, formats=formats)
    return {
        "run_id": run_id,
        "example_id": ex.id,
        "schema_id": schema_id,
        "complexity": complexity,
        "complexity_inferred": int(bool(inferred)),
        "prompt": ex.prompt,
        "expected": json.dumps(ex.expected, ensure_ascii=False),
        "output_text": text,
        "parsed": None if s["parsed"] is None else json.dumps(s["parsed"], ensure_ascii=False),
        "parse_error": s["parse_error"],
        "json_exact": int(s["json_exact"]),
        **{
            k: s[k]
            for k in (
                "field_precision",
                "field_recall",
                "field_f1",
                "leaf_precision",
                "leaf_recall",
                "leaf_f1",
            )
        },
        "schema_valid": None if s["schema_valid"] is None else int(s["schema_valid"]),
        "compliance": int(s["compliance"]),
        "n_tokens": gen.n_tokens,
        "latency_s": gen.latency_s if latency_s is None else latency_s,
        "truncated": int(gen.truncated),
        "failure": s["failure"],
        "loop_guard": int(getattr(gen, "loop_guard_fired", 0)),
        "diff": json.dumps(
            s["diff"]
            + [
                {
                    "path": m.split(":", 1)[0],
                    "expected": None,
                    "got": None,
                    "kind": "schema_error",
                    "ungrounded": None,
                    "message": m.split(": ", 1)[-1],
                }
                for m in s["schema_errors"]
            ],
            ensure_ascii=False,
        ),
    }


def _group(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"n": 0}

    def mean(key):
        return sum(r[key] or 0 for r in rows) / n

    return {
        "n": n,
        "json_exact": mean("json_exact"),
        "field_f1": mean("field_f1"),
        "leaf_f1": mean("leaf_f1"),
        "schema_valid": mean("schema_valid"),
        "compliance": mean("compliance"),
        "parse_rate": sum(1 for r in rows if r["parsed"] is not None) / n,
        "truncated": mean("truncated"),
        # answers whose runaway array or string the loop guard closed (constrained decoding)
        "loop_guard": sum(1 for r in rows if r.get("loop_guard")) / n,
    }


def aggregate(rows: list[dict], gen_seconds: float) -> dict:
    """Overall, by_complexity, by_schema, by_failure and by_schema_failure of prediction rows."""
    overall = _group(rows)
    n_tokens = sum(r["n_tokens"] for r in rows)
    overall.update(
        n_tokens=n_tokens,
        generation_s=gen_seconds,
        tokens_per_s=n_tokens / gen_seconds if gen_seconds else 0.0,
        examples_per_s=len(rows) / gen_seconds if gen_seconds else 0.0,
        mean_latency_s=sum(r["latency_s"] for r in rows) / len(rows) if rows else 0.0,
    )
    by_c, by_s = defaultdict(list), defaultdict(list)
    for r in rows:
        by_c[r["complexity"]].append(r)
        by_s[r["schema_id"]].append(r)
    by_complexity = {}
    for c in sorted(by_c, key=lambda c: (["simple", "medium", "complex"] + [c]).index(c)):
        by_complexity[c] = {
            **_group(by_c[c]),
            "inferred": sum(r["complexity_inferred"] for r in by_c[c]),
        }
    by_schema = {
        s: {**_group(g), "complexity": g[0]["complexity"]} for s, g in sorted(by_s.items())
    }
    failures = Counter(r["failure"] for r in rows if r["failure"])
    by_failure = {f: failures[f] for f in FAILURE_ORDER if failures[f]}
    by_schema_failure = {
        s: {f: n for f in FAILURE_ORDER if (n := sum(1 for r in g if r["failure"] == f))}
        for s, g in sorted(by_s.items())
    }
    return {
        "overall": overall,
        "by_complexity": by_complexity,
        "by_schema": by_schema,
        "by_failure": by_failure,
        "by_schema_failure": by_schema_failure,
    }


def _summary(report: dict) -> dict:
    o = report["overall"]
    return {
        k: o.get(k)
        for k in ("n", "json_exact", "field_f1", "leaf_f1", "schema_valid", "tokens_per_s")
    }


def _record_dataset(database, data: str | Path, examples) -> int:
    """The data file an evaluation reads, recorded (or found) in the run log by its hash."""
    from engine.data.load import file_sha256

    mix = Counter(e.complexity or "unknown" for e in examples)
    return runlog.upsert_dataset(
        database,
        str(Path(data).resolve()),
        file_sha256(data),
        len(examples),
        len({e.schema_id for e in examples}),
        dict(mix),
    )


def _store_evaluation(database, run_id: int, config: dict, report: dict) -> None:
    o = report["overall"]
    row = {
        "run_id": run_id,
        "model": config["model"],
        "adapter": config["adapter"],
        "data_path": config["data"],
        "decoding": json.dumps(config["decoding"]),
        "constrained": int(config["constrained"]),
        "n_examples": o.get("n", 0),
        "json_exact": o.get("json_exact"),
        "field_f1": o.get("field_f1"),
        "leaf_f1": o.get("leaf_f1"),
        "schema_valid": o.get("schema_valid"),
        "parse_rate": o.get("parse_rate"),
        "tokens_per_s": o.get("tokens_per_s"),
        "report": json.dumps(report, ensure_ascii=False, default=str),
    }
    runlog.store_evaluation(database, row)


# ---------------------------------------------------------------- reading results


def load_report(db: Any, run_id: int) -> dict:
    """The stored report of an evaluation (overall, by_complexity, by_schema, by_failure, ...)."""
    database = _db(db)
    stored = runlog.evaluation_report(database, run_id)
    if stored is None:
        run = runlog.get_run(database, run_id)
        if run is not None and run["kind"] == "eval":
            return _partial_report(database, run)
        what = f"run {run_id} is a {run['kind']} run" if run else f"no run {run_id}"
        raise EvaluationError(f"{what} with an evaluation in this run log (see `schemalab runs`)")
    return json.loads(stored)


def _partial_report(database, run: dict) -> dict:
    """The report of an evaluation that has no stored report (killed, still running): the
    aggregates of the predictions it recorded, computed on read and marked partial."""
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    rows = predictions(database, run["id"])
    report = aggregate(rows, sum(r.get("latency_s") or 0.0 for r in rows))
    n_total = (
        (run.get("summary") or {}).get("n_total") if isinstance(run.get("summary"), dict) else None
    )
    report.update(
        run_id=run["id"],
        status=run["status"],
        model=run.get("model"),
        adapter=run.get("adapter"),
        data=run.get("data_path"),
        decoding=config.get("decoding"),
        constrained=bool(config.get("constrained")),
        formats=config.get("formats"),
        formats_reason="",
        protocol=config.get("protocol"),
        prompt_template=config.get("prompt_template"),
        partial=_partial_note(run["status"], len(rows), n_total),
    )
    return report


def predictions(
    db: Any,
    run_id: int,
    schema: str | None = None,
    failure: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Prediction rows of an evaluation (JSON columns decoded), optionally one schema or failure
    category (`failing` for every failure)."""
    out = []
    for row in runlog.prediction_rows(_db(db), run_id, schema, failure, limit):
        for key in ("expected", "parsed", "diff"):
            if row.get(key) is not None:
                row[key] = json.loads(row[key])
        out.append(row)
    return out


def compare(db: Any, a: int, b: int) -> dict:
    """B minus A: overall, per schema and per complexity deltas, and the examples that flipped
    between exact and not exact."""
    database = _db(db)
    ra, rb = load_report(database, a), load_report(database, b)
    keys = ("json_exact", "field_f1", "leaf_f1", "schema_valid")

    def deltas(ga: dict, gb: dict) -> dict:
        out = {}
        for name in sorted(set(ga) | set(gb)):
            x, y = ga.get(name, {}), gb.get(name, {})
            out[name] = {
                "n_a": x.get("n", 0),
                "n_b": y.get("n", 0),
                **{
                    k: {
                        "a": x.get(k),
                        "b": y.get(k),
                        "delta": None if x.get(k) is None or y.get(k) is None else y[k] - x[k],
                    }
                    for k in keys
                },
            }
        return out

    pa = {p["example_id"]: p for p in predictions(database, a)}
    pb = {p["example_id"]: p for p in predictions(database, b)}
    common = [i for i in pa if i in pb]

    def flip(x, y):
        return [
            {
                "example_id": i,
                "schema_id": pa[i]["schema_id"],
                "failure_a": pa[i]["failure"],
                "failure_b": pb[i]["failure"],
            }
            for i in common
            if pa[i]["json_exact"] == x and pb[i]["json_exact"] == y
        ]

    return {
        "a": a,
        "b": b,
        "n_common": len(common),
        "overall": deltas({"all": ra["overall"]}, {"all": rb["overall"]})["all"],
        "by_schema": deltas(ra["by_schema"], rb["by_schema"]),
        "by_complexity": deltas(ra["by_complexity"], rb["by_complexity"]),
        "pass_to_fail": flip(1, 0),
        "fail_to_pass": flip(0, 1),
    }


def _dataset_order(database, run_id: int) -> dict[str, int]:
    """Example id -> position in the evaluation's data file (re-read from the path in the run's
    config; empty when the file is gone). Predictions are stored in batch order, which follows
    prompt length, not the file."""
    from engine.data.load import load_examples

    run = runlog.get_run(database, run_id) or {}
    config = run.get("config") or {}
    for candidate in (config.get("data_resolved"), config.get("data")):
        if candidate and Path(candidate).is_file():
            order: dict[str, int] = {}
            for i, ex in enumerate(load_examples(candidate).examples):
                order.setdefault(ex.id, i)
            return order
    return {}


def export_seed_format(db: Any, run_id: int, path: str | Path) -> Path:
    """Write the evaluation in the published EdgeJSON harness layout ({aggregate,
    individual_results}), so existing EdgeJSON tooling can read it. Its `schema_compliance` is
    the loose published check; `tokens_per_sec` is real (counted), not assumed.

    `individual_results` are in data-set order (the data file is re-read to recover it; if it
    is gone, in the order they were scored). `latency_ms` is per example: its batch's generation
    time divided among the batch's examples by the tokens each generated (the harness, one
    example at a time, times each generate call); 0 for outputs scored with `schemalab score`.
    """
    database = _db(db)
    report = load_report(database, run_id)
    preds = predictions(database, run_id)
    order = _dataset_order(database, run_id)
    preds.sort(key=lambda r: order.get(r["example_id"], len(order)))  # stable: ties keep row order
    n = len(preds) or 1

    def block(rows):
        k = len(rows)
        return {
            "count": k,
            "json_exact": sum(r["json_exact"] for r in rows) / k,
            "avg_field_f1": sum(r["field_f1"] for r in rows) / k,
            "schema_compliance": sum(r["compliance"] for r in rows) / k,
        }

    by_c, by_s = defaultdict(list), defaultdict(list)
    for r in preds:
        by_c[r["complexity"]].append(r)
        by_s[r["schema_id"]].append(r)
    aggregate_ = {
        "model_name": report.get("model"),
        "total_examples": len(preds),
        "json_exact_score": sum(r["json_exact"] for r in preds) / n,
        "avg_field_f1": sum(r["field_f1"] for r in preds) / n,
        "schema_compliance_rate": sum(r["compliance"] for r in preds) / n,
        "avg_latency_ms": 1000 * sum(r["latency_s"] for r in preds) / n,
        "tokens_per_sec": report["overall"].get("tokens_per_s", 0.0),
        # Like the harness, only the three tiers (records without one are left out here).
        "by_complexity": {c: block(by_c[c]) for c in ("simple", "medium", "complex") if c in by_c},
        "by_schema": {s: block(rows) for s, rows in by_s.items()},
    }
    individual = [
        {
            "prompt": r["prompt"],
            "expected_output": r["expected"],
            "model_output": r["output_text"],
            "model_output_parsed": r["parsed"],
            "json_exact": bool(r["json_exact"]),
            "field_f1": r["field_f1"],
            "schema_compliance": bool(r["compliance"]),
            "latency_ms": 1000 * r["latency_s"],
            "complexity": r["complexity"],
            "schema_name": r["schema_id"],
            "error": r["parse_error"]
            if (r["parse_error"] or "").startswith(NO_PREDICTION)
            else None,
        }
        for r in preds
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"aggregate": aggregate_, "individual_results": individual},
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return path
