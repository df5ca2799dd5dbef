"""Pilot tests of the Evaluate pane, mounted alone in a small app: run an evaluation with the tiny
model and drill down; open past evaluations seeded in a run log, sort, drill down to a diff, and
compare two evaluations."""

from __future__ import annotations

import json

import pytest
from pilot_helpers import PaneApp, wait_for
from textual.widgets import Button, DataTable, Input, Select, TabbedContent

from tui.evaluate import EvaluatePane

pytestmark = pytest.mark.anyio


def _wrong(expected: dict, variant: int) -> dict:
    """A deterministic near miss: drop a field, change a value, or invent one."""
    got = dict(expected)
    keys = sorted(got)
    if variant == 0 and keys:
        got.pop(keys[-1])
    elif variant == 1 and keys:
        got[keys[0]] = "Zanzibar Quux"
    else:
        got["invented_field"] = "Nowhere 99"
    return got


def seed_evaluation(db_path, sample_dir, *, model: str = "tiny", shift: int = 0,
                    limit: int = 24) -> int:
    """An eval run with predictions and its report, written through runlog as a real run would
    be; outputs are fixed near misses of the expected JSON, so every figure is deterministic."""
    from engine import runlog
    from engine.data import SchemaRegistry, load_examples
    from engine.evaluate import aggregate
    from engine.metrics import score

    registry = SchemaRegistry.from_dir(sample_dir / "schemas")
    examples = load_examples(sample_dir / "test.jsonl", registry).examples[:limit]
    db = runlog.connect(db_path)
    data = str(sample_dir / "test.jsonl")
    decoding = {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                "repetition_penalty": 1.0, "max_new_tokens": 1536, "seed": 0}
    run_id = runlog.create_run(db, "eval", {"model": model, "data": data, "decoding": decoding},
                               model=model, data_path=data, name="eval test.jsonl")
    rows = []
    for i, ex in enumerate(examples):
        exact = (i + shift) % 3 == 0
        text = json.dumps(ex.expected if exact else _wrong(ex.expected, (i + shift) % 3))
        s = score(ex, text, registry.get(ex.schema_id))
        rows.append({
            "run_id": run_id, "example_id": ex.id, "schema_id": ex.schema_id,
            "complexity": ex.complexity, "complexity_inferred": 0, "prompt": ex.prompt,
            "expected": ex.expected, "output_text": text, "parsed": s["parsed"],
            "parse_error": None, "json_exact": int(s["json_exact"]),
            **{k: s[k] for k in ("field_precision", "field_recall", "field_f1",
                                 "leaf_precision", "leaf_recall", "leaf_f1")},
            "schema_valid": int(bool(s["schema_valid"])), "compliance": int(s["compliance"]),
            "n_tokens": len(text) // 3, "latency_s": 0.5, "truncated": 0,
            "failure": s["failure"], "diff": s["diff"],
        })
    runlog.insert_rows(db, "predictions", rows)
    # aggregate() reads `parsed` as stored (JSON text or None).
    report = aggregate([{**r, "parsed": json.dumps(r["parsed"])} for r in rows], 10.0)
    o = report["overall"]
    runlog.insert_rows(db, "evaluations", [{
        "run_id": run_id, "model": model, "adapter": None, "data_path": data,
        "decoding": json.dumps(decoding), "constrained": 0, "n_examples": o["n"],
        "json_exact": o["json_exact"], "field_f1": o["field_f1"], "leaf_f1": o["leaf_f1"],
        "schema_valid": o["schema_valid"], "parse_rate": o["parse_rate"],
        "tokens_per_s": o["tokens_per_s"], "report": json.dumps(report),
    }])
    runlog.finish_run(db, run_id, "completed")
    # Fixed times, so nothing on screen depends on when the test ran.
    runlog.update_run(db, run_id, started=1_700_000_000.0, ended=1_700_000_060.0)
    return run_id


def text_of(app, selector: str) -> str:
    """The plain text a Static shows, whether it holds a string, Text or a Rich group."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(app.query_one(selector).content)
    return capture.get()


def column_values(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_run_evaluation_with_tiny_and_drill_down(db_path, sample_dir, tiny_model_path):
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        data = app.query_one("#ev-data", Select)
        await wait_for(pilot, lambda: data.value is not Select.NULL)
        assert str(data.value).endswith("test.jsonl")
        app.query_one("#ev-limit", Input).value = "4"
        app.query_one("#ev-batch", Input).value = "4"
        app.query_one("#ev-max-tokens", Input).value = "16"
        app.query_one("#ev-limit", Input).focus()  # the key works while typing in the form
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: pane.run_id is not None, timeout=60)

        overall = text_of(app, "#ev-overall")
        assert f"Evaluation {pane.run_id}" in overall and "JSONExact" in overall
        assert "4/4 scored" in str(app.query_one("#ev-running").render())
        schemas = app.query_one("#ev-schemas", DataTable)
        assert schemas.row_count >= 1
        assert sum(int(n) for n in column_values(schemas, 1)) == 4
        # Past evaluations list the new run.
        assert str(pane.run_id) in column_values(app.query_one("#ev-history-table"), 1)

        # Drill down: enter on a schema opens its examples, each with a failure category.
        schemas.focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-examples"
        examples = app.query_one("#ev-example-table", DataTable)
        assert examples.row_count >= 1
        failures = column_values(examples, 4)
        assert all(f in ("truncated", "unparseable", "schema_violation", "missing_field",
                         "extra_field", "wrong_type", "wrong_value", "—") for f in failures)
        detail = text_of(app, "#detail-body")
        assert "Prompt" in detail and "Expected" in detail and "Got" in detail


async def test_open_sort_and_drill_down_to_a_diff(db_path, sample_dir):
    first = seed_evaluation(db_path, sample_dir)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        history = app.query_one("#ev-history-table", DataTable)
        assert column_values(history, 1) == [str(first)]
        app.query_one("#ev-run", Button).focus()
        await pilot.press("h")
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-history"
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert pane.run_id == first
        assert "JSONExact" in text_of(app, "#ev-overall")

        from engine.evaluate import load_report

        report = load_report(str(db_path), first)
        schemas = app.query_one("#ev-schemas", DataTable)
        assert schemas.row_count == len(report["by_schema"])
        for index, key in ((1, "field_f1"), (2, "schema_valid"), (3, "n"), (0, "json_exact")):
            await pilot.press("s")
            values = [report["by_schema"][s][key] for s in column_values(schemas, 0)]
            assert values == sorted(values, reverse=True), key

        # A schema with a failing example: its diff lists JSON paths, ungrounded values tagged.
        failing = next(s for s, row in report["by_schema"].items() if row["json_exact"] < 1)
        schemas.move_cursor(row=column_values(schemas, 0).index(failing))
        await pilot.press("enter")
        await pilot.pause(0.1)
        examples = app.query_one("#ev-example-table", DataTable)
        row = next(i for i, f in enumerate(column_values(examples, 4)) if f != "—")
        examples.move_cursor(row=row)
        await pilot.pause(0.1)
        detail = text_of(app, "#detail-body")
        assert "$." in detail
        assert pane.predictions[row]["failure"] in detail
        if any(d.get("ungrounded") for d in pane.predictions[row]["diff"]):
            assert "ungrounded" in detail
        await pilot.press("b")
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-results"


async def test_show_run_and_compare_two_evaluations(db_path, sample_dir):
    a = seed_evaluation(db_path, sample_dir)
    b = seed_evaluation(db_path, sample_dir, shift=1)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        pane.show_run(b)
        assert pane.run_id == b
        app.query_one("#ev-run", Button).focus()
        await pilot.press("h")
        history = app.query_one("#ev-history-table", DataTable)
        assert column_values(history, 1) == [str(b), str(a)]
        history.move_cursor(row=1)
        await pilot.press("m")  # A = the older run
        history.move_cursor(row=0)
        await pilot.press("m")  # B = the newer one
        assert pane.marked == [a, b]
        assert column_values(history, 0) == ["B", "A"]
        await pilot.press("x")
        await pilot.pause(0.1)
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-compare"
        summary = text_of(app, "#ev-compare-summary")
        assert f"A = evaluation {a}" in summary and f"B = evaluation {b}" in summary

        from engine.evaluate import compare

        result = compare(str(db_path), a, b)
        deltas = app.query_one("#ev-compare-schemas", DataTable)
        assert column_values(deltas, 0) == list(result["by_schema"])
        flips = app.query_one("#ev-compare-flips", DataTable)
        n_flips = len(result["fail_to_pass"]) + len(result["pass_to_fail"])
        assert n_flips > 0 and flips.row_count == n_flips
        assert set(column_values(flips, 2)) <= {"fixed", "broke"}


async def test_engine_errors_become_notifications(db_path, sample_dir):
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        pane.show_run(999)
        pane.action_compare()
        await pilot.pause(0.1)
        messages = [n.message for n in app._notifications]
        assert any("999" in m for m in messages)
        assert any("Mark two evaluations" in m for m in messages)
        assert pane.run_id is None
