"""Evaluation runs: generate an answer for every example, score it, and record the run, every
prediction and the aggregate report in the run log.

Predictions are written batch by batch, so a crash or a cancel keeps what was done. Aggregates:
overall, by complexity (with how many tiers were inferred), by schema, by failure category and
by schema x failure; tokens/s is counted from the tokens actually generated.
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
from engine.metrics import FAILURE_ORDER, has_zoneless_date_times, score


class EvaluationError(Exception):
    """An evaluation that cannot start (no data, bad files); the message says what to do."""


def _db(db: Any):
    return runlog.connect(db) if db is None or isinstance(db, (str, Path)) else db


def load_data(data: str | Path, schemas_dir: str | Path | None = None):
    """(examples, registry, load findings) for a JSONL file and its schema folder."""
    from engine.data import SchemaRegistry, find_schemas_dir, load_examples

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
) -> int:
    """Evaluate `model` (+ `adapter`) on `data`; returns the eval run id. `progress(done, total,
    running_exact)` is called after each batch; `cancel` (Event or callable) stops between batches
    and tokens, leaving a `cancelled` run with the predictions made so far."""
    from engine.data import file_sha256
    from engine.decoding import Cancelled, DecodingConfig, Generator

    database = _db(db)
    decoding = decoding or DecodingConfig()
    examples, registry, findings = load_data(data, schemas_dir)
    if limit:
        examples = examples[:limit]
    if formats is None:
        formats, formats_reason = default_formats(examples, registry)
    else:
        formats_reason = "set by the user"
    config = {
        "model": model, "adapter": str(adapter) if adapter else None, "data": str(data),
        "schemas_dir": str(registry.dir) if registry is not None and registry.dir else None,
        "decoding": decoding.to_dict(), "constrained": constrained, "formats": formats,
        "limit": limit, "batch_size": batch_size,
    }
    mix = Counter(e.complexity or "unknown" for e in examples)
    dataset_id = runlog.upsert_dataset(
        database, str(Path(data).resolve()), file_sha256(data), len(examples),
        len({e.schema_id for e in examples}), dict(mix),
    )
    run_id = runlog.create_run(
        database, "eval", config, model=model, adapter=config["adapter"], data_path=str(data),
        dataset_id=dataset_id, name=f"eval {Path(data).name}",
    )
    state = {"rows": [], "gen_s": 0.0, "t": time.perf_counter()}
    try:
        gen = generator or Generator(model, adapter, device, db=database)
        if gen.adapter_run_id is not None:
            runlog.update_run(database, run_id, parent_run_id=gen.adapter_run_id)
        disagree = _grammar_check(gen, examples, registry, formats) if constrained else None
        items = [(e.prompt, e.schema_id, schema_of(e, registry)) for e in examples]

        def on_batch(indices, gens):
            now = time.perf_counter()
            state["gen_s"] += now - state["t"]
            rows = [_prediction(run_id, examples[i], g, schema_of(examples[i], registry), formats)
                    for i, g in zip(indices, gens)]
            runlog.insert_rows(database, "predictions", rows)
            runlog.heartbeat(database, run_id)
            state["rows"].extend(rows)
            if progress:
                done = state["rows"]
                progress(len(done), len(examples), sum(r["json_exact"] for r in done) / len(done))
            state["t"] = time.perf_counter()

        state["t"] = time.perf_counter()  # generation time excludes loading and grammar checks
        gen.generate(items, decoding, constrained=constrained, batch_size=batch_size,
                     cancel=cancel, formats=formats, on_batch=on_batch)
        status = "completed"
    except Cancelled:
        status = "cancelled"
    except BaseException as exc:
        runlog.finish_run(database, run_id, "failed", error=_error_text(exc))
        raise
    report = aggregate(state["rows"], state["gen_s"])
    report.update(
        run_id=run_id, status=status, model=model, adapter=config["adapter"], data=str(data),
        decoding=decoding.to_dict(), constrained=constrained, formats=formats,
        formats_reason=formats_reason, n_total=len(examples), load_findings=len(findings),
        grammar_disagrees=disagree,
    )
    _store_evaluation(database, run_id, config, report)
    runlog.finish_run(database, run_id, status, summary=_summary(report))
    return run_id


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]


def _grammar_check(gen, examples, registry, formats) -> dict:
    """How many expected outputs the grammar would not let the model write, with reasons."""
    from engine.constrained import grammar_disagreement
    from engine.prompt import render_target

    bad = []
    for ex in examples:
        schema = schema_of(ex, registry)
        if schema is None:
            continue
        reason = grammar_disagreement(gen.tokenizer, schema, render_target(ex.expected), formats,
                                      gen.vocab_size)
        if reason:
            bad.append({"example_id": ex.id, "schema_id": ex.schema_id, "reason": reason})
    return {"count": len(bad), "examples": bad[:20]}


def _prediction(run_id: int, ex, gen, schema: dict | None, formats: str) -> dict:
    s = score(ex, gen.text, schema, truncated=gen.truncated, formats=formats)
    inferred = ex.complexity_inferred or ex.extra.get("complexity_source") not in (None, "record")
    return {
        "run_id": run_id, "example_id": ex.id, "schema_id": ex.schema_id,
        "complexity": ex.complexity or "unknown", "complexity_inferred": int(bool(inferred)),
        "prompt": ex.prompt, "expected": json.dumps(ex.expected, ensure_ascii=False),
        "output_text": gen.text,
        "parsed": None if s["parsed"] is None else json.dumps(s["parsed"], ensure_ascii=False),
        "parse_error": s["parse_error"], "json_exact": int(s["json_exact"]),
        **{k: s[k] for k in ("field_precision", "field_recall", "field_f1",
                             "leaf_precision", "leaf_recall", "leaf_f1")},
        "schema_valid": None if s["schema_valid"] is None else int(s["schema_valid"]),
        "compliance": int(s["compliance"]), "n_tokens": gen.n_tokens, "latency_s": gen.latency_s,
        "truncated": int(gen.truncated), "failure": s["failure"],
        "diff": json.dumps(s["diff"] + [
            {"path": m.split(":", 1)[0], "expected": None, "got": None, "kind": "schema_error",
             "ungrounded": None, "message": m.split(": ", 1)[-1]} for m in s["schema_errors"]
        ], ensure_ascii=False),
    }


def _group(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"n": 0}
    mean = lambda key: sum(r[key] or 0 for r in rows) / n
    return {
        "n": n, "json_exact": mean("json_exact"), "field_f1": mean("field_f1"),
        "leaf_f1": mean("leaf_f1"), "schema_valid": mean("schema_valid"),
        "compliance": mean("compliance"),
        "parse_rate": sum(1 for r in rows if r["parsed"] is not None) / n,
        "truncated": mean("truncated"),
    }


def aggregate(rows: list[dict], gen_seconds: float) -> dict:
    """Overall, by_complexity, by_schema, by_failure and by_schema_failure of prediction rows."""
    overall = _group(rows)
    n_tokens = sum(r["n_tokens"] for r in rows)
    overall.update(
        n_tokens=n_tokens, generation_s=gen_seconds,
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
        by_complexity[c] = {**_group(by_c[c]),
                            "inferred": sum(r["complexity_inferred"] for r in by_c[c])}
    by_schema = {s: {**_group(g), "complexity": g[0]["complexity"]} for s, g in sorted(by_s.items())}
    failures = Counter(r["failure"] for r in rows if r["failure"])
    by_failure = {f: failures[f] for f in FAILURE_ORDER if failures[f]}
    by_schema_failure = {
        s: {f: n for f in FAILURE_ORDER if (n := sum(1 for r in g if r["failure"] == f))}
        for s, g in sorted(by_s.items())
    }
    return {"overall": overall, "by_complexity": by_complexity, "by_schema": by_schema,
            "by_failure": by_failure, "by_schema_failure": by_schema_failure}


def _summary(report: dict) -> dict:
    o = report["overall"]
    return {k: o.get(k) for k in ("n", "json_exact", "field_f1", "leaf_f1", "schema_valid",
                                  "tokens_per_s")}


def _store_evaluation(database, run_id: int, config: dict, report: dict) -> None:
    o = report["overall"]
    row = {
        "run_id": run_id, "model": config["model"], "adapter": config["adapter"],
        "data_path": config["data"], "decoding": json.dumps(config["decoding"]),
        "constrained": int(config["constrained"]), "n_examples": o.get("n", 0),
        "json_exact": o.get("json_exact"), "field_f1": o.get("field_f1"),
        "leaf_f1": o.get("leaf_f1"), "schema_valid": o.get("schema_valid"),
        "parse_rate": o.get("parse_rate"), "tokens_per_s": o.get("tokens_per_s"),
        "report": json.dumps(report, ensure_ascii=False, default=str),
    }
    with database.conn:
        database["evaluations"].insert(row, replace=True)


# ---------------------------------------------------------------- reading results


def load_report(db: Any, run_id: int) -> dict:
    """The stored report of an evaluation (overall, by_complexity, by_schema, by_failure, ...)."""
    database = _db(db)
    rows = list(database.query("SELECT report FROM evaluations WHERE run_id = ?", [run_id]))
    if not rows:
        run = runlog.get_run(database, run_id)
        what = f"run {run_id} is a {run['kind']} run" if run else f"no run {run_id}"
        raise EvaluationError(f"{what} with an evaluation in this run log (see `schemalab runs`)")
    return json.loads(rows[0]["report"])


def predictions(db: Any, run_id: int, schema: str | None = None, failure: str | None = None,
                limit: int | None = None) -> list[dict]:
    """Prediction rows of an evaluation (JSON columns decoded), optionally one schema or failure
    category (`failing` for every failure)."""
    sql, params = "SELECT * FROM predictions WHERE run_id = ?", [run_id]
    if schema:
        sql, params = sql + " AND schema_id = ?", params + [schema]
    if failure == "failing":
        sql += " AND failure IS NOT NULL"
    elif failure:
        sql, params = sql + " AND failure = ?", params + [failure]
    sql += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
    out = []
    for row in _db(db).query(sql, params):
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
            out[name] = {"n_a": x.get("n", 0), "n_b": y.get("n", 0), **{
                k: {"a": x.get(k), "b": y.get(k),
                    "delta": None if x.get(k) is None or y.get(k) is None else y[k] - x[k]}
                for k in keys}}
        return out

    pa = {p["example_id"]: p for p in predictions(database, a)}
    pb = {p["example_id"]: p for p in predictions(database, b)}
    common = [i for i in pa if i in pb]
    flip = lambda x, y: [
        {"example_id": i, "schema_id": pa[i]["schema_id"], "failure_a": pa[i]["failure"],
         "failure_b": pb[i]["failure"]}
        for i in common if pa[i]["json_exact"] == x and pb[i]["json_exact"] == y]
    return {
        "a": a, "b": b, "n_common": len(common),
        "overall": deltas({"all": ra["overall"]}, {"all": rb["overall"]})["all"],
        "by_schema": deltas(ra["by_schema"], rb["by_schema"]),
        "by_complexity": deltas(ra["by_complexity"], rb["by_complexity"]),
        "pass_to_fail": flip(1, 0), "fail_to_pass": flip(0, 1),
    }


def export_seed_format(db: Any, run_id: int, path: str | Path) -> Path:
    """Write the evaluation in the published EdgeJSON harness layout ({aggregate,
    individual_results}), so existing EdgeJSON tooling can read it. Its `schema_compliance` is
    the loose published check; `tokens_per_sec` is real (counted), not assumed."""
    database = _db(db)
    report = load_report(database, run_id)
    preds = predictions(database, run_id)
    n = len(preds) or 1

    def block(rows):
        k = len(rows)
        return {"count": k, "json_exact": sum(r["json_exact"] for r in rows) / k,
                "avg_field_f1": sum(r["field_f1"] for r in rows) / k,
                "schema_compliance": sum(r["compliance"] for r in rows) / k}

    by_c, by_s = defaultdict(list), defaultdict(list)
    for r in preds:
        by_c[r["complexity"]].append(r)
        by_s[r["schema_id"]].append(r)
    aggregate_ = {
        "model_name": report.get("model"), "total_examples": len(preds),
        "json_exact_score": sum(r["json_exact"] for r in preds) / n,
        "avg_field_f1": sum(r["field_f1"] for r in preds) / n,
        "schema_compliance_rate": sum(r["compliance"] for r in preds) / n,
        "avg_latency_ms": 1000 * sum(r["latency_s"] for r in preds) / n,
        "tokens_per_sec": report["overall"].get("tokens_per_s", 0.0),
        "by_complexity": {c: block(by_c[c]) for c in ("simple", "medium", "complex") if c in by_c},
        "by_schema": {s: block(rows) for s, rows in by_s.items()},
    }
    individual = [
        {"prompt": r["prompt"], "expected_output": r["expected"], "model_output": r["output_text"],
         "model_output_parsed": r["parsed"], "json_exact": bool(r["json_exact"]),
         "field_f1": r["field_f1"], "schema_compliance": bool(r["compliance"]),
         "latency_ms": 1000 * r["latency_s"], "complexity": r["complexity"],
         "schema_name": r["schema_id"], "error": None}
        for r in preds
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"aggregate": aggregate_, "individual_results": individual},
                               indent=2, ensure_ascii=False), encoding="utf-8")
    return path
