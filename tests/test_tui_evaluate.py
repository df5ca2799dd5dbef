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


def seed_evaluation(
    db_path, sample_dir, *, model: str = "tiny", shift: int = 0, limit: int = 24
) -> int:
    """An eval run with predictions and its report, written through runlog as a real run would
    be; outputs are fixed near misses of the expected JSON, so every figure is deterministic."""
    from engine import runlog
    from engine.data.load import SchemaRegistry, load_examples
    from engine.evaluate.metrics import score
    from engine.evaluate.run import aggregate

    registry = SchemaRegistry.from_dir(sample_dir / "schemas")
    examples = load_examples(sample_dir / "test.jsonl", registry).examples[:limit]
    db = runlog.connect(db_path)
    data = str(sample_dir / "test.jsonl")
    decoding = {
        "do_sample": False,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_new_tokens": 1536,
        "seed": 0,
    }
    run_id = runlog.create_run(
        db,
        "eval",
        {"model": model, "data": data, "decoding": decoding},
        model=model,
        data_path=data,
        name="eval test.jsonl",
    )
    rows = []
    for i, ex in enumerate(examples):
        exact = (i + shift) % 3 == 0
        text = json.dumps(ex.expected if exact else _wrong(ex.expected, (i + shift) % 3))
        s = score(ex, text, registry.get(ex.schema_id))
        rows.append(
            {
                "run_id": run_id,
                "example_id": ex.id,
                "schema_id": ex.schema_id,
                "complexity": ex.complexity,
                "complexity_inferred": 0,
                "prompt": ex.prompt,
                "expected": ex.expected,
                "output_text": text,
                "parsed": s["parsed"],
                "parse_error": None,
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
                "schema_valid": int(bool(s["schema_valid"])),
                "compliance": int(s["compliance"]),
                "n_tokens": len(text) // 3,
                "latency_s": 0.5,
                "truncated": 0,
                "failure": s["failure"],
                "diff": s["diff"],
            }
        )
    runlog.insert_rows(db, "predictions", rows)
    # aggregate() reads `parsed` as stored (JSON text or None).
    report = aggregate([{**r, "parsed": json.dumps(r["parsed"])} for r in rows], 10.0)
    o = report["overall"]
    runlog.insert_rows(
        db,
        "evaluations",
        [
            {
                "run_id": run_id,
                "model": model,
                "adapter": None,
                "data_path": data,
                "decoding": json.dumps(decoding),
                "constrained": 0,
                "n_examples": o["n"],
                "json_exact": o["json_exact"],
                "field_f1": o["field_f1"],
                "leaf_f1": o["leaf_f1"],
                "schema_valid": o["schema_valid"],
                "parse_rate": o["parse_rate"],
                "tokens_per_s": o["tokens_per_s"],
                "report": json.dumps(report),
            }
        ],
    )
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
        await wait_for(pilot, lambda: pane.predictions)
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-examples"
        examples = app.query_one("#ev-example-table", DataTable)
        assert examples.row_count >= 1
        failures = column_values(examples, 4)
        assert all(
            f
            in (
                "truncated",
                "unparseable",
                "schema_violation",
                "missing_field",
                "extra_field",
                "wrong_type",
                "wrong_value",
                "—",
            )
            for f in failures
        )
        detail = text_of(app, "#detail-body")
        assert "Prompt" in detail and "Expected" in detail and "Got" in detail


async def test_open_sort_and_drill_down_to_a_diff(db_path, sample_dir):
    first = seed_evaluation(db_path, sample_dir)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(EvaluatePane)
        history = app.query_one("#ev-history-table", DataTable)
        await wait_for(pilot, lambda: column_values(history, 1) == [str(first)])
        app.query_one("#ev-run", Button).focus()
        await pilot.press("h")
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-history"
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.run_id == first)
        assert "JSONExact" in text_of(app, "#ev-overall")

        from engine.evaluate.run import load_report

        report = load_report(str(db_path), first)
        schemas = app.query_one("#ev-schemas", DataTable)
        assert schemas.row_count == len(report["by_schema"])
        for key in ("field_f1", "schema_valid", "n", "json_exact"):
            await pilot.press("s")
            values = [report["by_schema"][s][key] for s in column_values(schemas, 0)]
            assert values == sorted(values, reverse=True), key

        # A schema with a failing example: its diff lists JSON paths, ungrounded values tagged.
        failing = next(s for s, row in report["by_schema"].items() if row["json_exact"] < 1)
        schemas.move_cursor(row=column_values(schemas, 0).index(failing))
        await pilot.press("enter")
        examples = app.query_one("#ev-example-table", DataTable)
        await wait_for(
            pilot,
            lambda: (
                examples.row_count
                and pane.predictions
                and pane.predictions[0]["schema_id"] == failing
            ),
        )
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
        await wait_for(pilot, lambda: pane.run_id == b)
        app.query_one("#ev-run", Button).focus()
        await pilot.press("h")
        history = app.query_one("#ev-history-table", DataTable)
        await wait_for(pilot, lambda: column_values(history, 1) == [str(b), str(a)])
        history.move_cursor(row=1)
        await pilot.press("m")  # A = the older run
        history.move_cursor(row=0)
        await pilot.press("m")  # B = the newer one
        assert pane.marked == [a, b]
        assert column_values(history, 0) == ["B", "A"]
        await pilot.press("x")
        await wait_for(
            pilot, lambda: app.query_one("#ev-tabs", TabbedContent).active == "ev-compare"
        )
        summary = text_of(app, "#ev-compare-summary")
        assert f"A = evaluation {a}" in summary and f"B = evaluation {b}" in summary

        from engine.evaluate.run import compare

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
        await wait_for(pilot, lambda: any("999" in n.message for n in app._notifications))
        messages = [n.message for n in app._notifications]
        assert any("Mark two evaluations" in m for m in messages)
        assert pane.run_id is None


def write_predictions(path, sample_dir, n: int = 8):
    """Outputs made elsewhere: every other one exact, the rest prose, plus an unknown id."""
    from engine.data.load import load_examples

    examples = load_examples(sample_dir / "test.jsonl").examples[:n]
    lines = [
        {"id": ex.id, "output": json.dumps(ex.expected) if i % 2 == 0 else "no idea"}
        for i, ex in enumerate(examples)
    ]
    lines.append({"id": "not-in-the-data", "output": "{}"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


async def test_score_a_predictions_file_and_drill_into_it(db_path, sample_dir, tmp_path):
    from engine import runlog
    from engine.evaluate.run import load_report
    from tui.scoring import ScoreScreen

    predictions = write_predictions(tmp_path / "preds.jsonl", sample_dir)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(EvaluatePane)
        data = app.query_one("#ev-data", Select)
        await wait_for(pilot, lambda: data.value is not Select.NULL)
        app.query_one("#ev-model", Input).focus()  # the key works while typing in the form
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, ScoreScreen)
        screen = app.screen
        # The data file defaults to the one selected in the form.
        assert screen.query_one("#score-data", Input).value == str(data.value)
        assert screen.query_one("#score-protocol", Select).value == "schemalab"
        screen.query_one("#score-protocol", Select).value = "edgejson"
        screen.query_one("#score-predictions", Input).value = str(predictions)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.run_id is not None, timeout=30)
        assert not isinstance(app.screen, ScoreScreen)

        run = runlog.get_run(runlog.connect(db_path), pane.run_id)
        assert run["kind"] == "eval" and run["config"]["protocol"] == "edgejson"
        report = load_report(str(db_path), pane.run_id)
        overall = text_of(app, "#ev-overall")
        assert f"Evaluation {pane.run_id}" in overall
        assert f"{100 * report['overall']['json_exact']:.1f}%" in overall
        assert f"scored preds.jsonl as evaluation {pane.run_id}" in str(
            app.query_one("#ev-running").render()
        )
        assert str(pane.run_id) in column_values(app.query_one("#ev-history-table"), 1)
        # The drilldown works on it as on any evaluation.
        schemas = app.query_one("#ev-schemas", DataTable)
        await wait_for(pilot, lambda: schemas.has_focus)
        assert schemas.row_count == len(report["by_schema"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.predictions)
        assert app.query_one("#ev-tabs", TabbedContent).active == "ev-examples"


async def test_scoring_a_missing_file_is_a_notification(db_path, sample_dir, tmp_path):
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(EvaluatePane)
        data = app.query_one("#ev-data", Select)
        await wait_for(pilot, lambda: data.value is not Select.NULL)
        await pilot.press("ctrl+f")
        app.screen.query_one("#score-predictions", Input).value = str(tmp_path / "nope.jsonl")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Scoring failed" == n.title for n in app._notifications))
        assert pane.run_id is None and not pane.has_class("running")
        assert "nope.jsonl" in " ".join(n.message for n in app._notifications)


async def test_adapter_picker_offers_best_final_and_steps(db_path, sample_dir, monkeypatch):
    from test_tui_train import seed_val_run
    from textual.widgets import OptionList

    from tui.adapters import AdapterPicker

    monkeypatch.chdir(sample_dir.parent.parent)
    run_id = seed_val_run(db_path)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#ev-model", Input).focus()
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, AdapterPicker)
        picker = app.screen
        await wait_for(pilot, lambda: picker.choices)
        specs = [c.spec for c in picker.choices if not isinstance(c, str)]
        assert specs == [
            str(run_id),
            f"{run_id}:final",
            f"{run_id}:step-20",
            f"{run_id}:step-40",
            f"{run_id}:step-60",
        ]
        labels = {c.spec: c.label for c in picker.choices if not isinstance(c, str)}
        assert "best checkpoint (step 40)" in labels[str(run_id)]
        assert "JSONExact 41.2%" in labels[str(run_id)]
        assert "★ best" in labels[f"{run_id}:step-40"]
        assert "best" not in labels[f"{run_id}:step-60"]
        # The run id (= its best checkpoint) is the default: enter takes it.
        assert picker.query_one(OptionList).highlighted == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, AdapterPicker))
        assert app.query_one("#ev-adapter", Input).value == str(run_id)
        assert any("template edgejson" in n.message for n in app._notifications)

        await pilot.press("ctrl+r")
        picker = app.screen
        await wait_for(pilot, lambda: picker.choices)
        picker.query_one(OptionList).highlighted = 3  # heading, ID, ID:final, then step-20
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, AdapterPicker))
        assert app.query_one("#ev-adapter", Input).value == f"{run_id}:step-20"


async def test_evaluation_passes_template_and_protocol(db_path, sample_dir, monkeypatch):
    """The form's template and protocol reach engine.evaluate.run.run_evaluation; the default
    template is the adapter's training template; an engine that does not take the keyword
    yet gives a clear message."""
    from test_tui_train import seed_val_run

    from engine.evaluate import run as evaluate

    monkeypatch.chdir(sample_dir.parent.parent)
    run_id = seed_val_run(db_path)  # trained with prompt_template edgejson
    calls, built = [], []

    def fake_run_evaluation(db, model, data, **kwargs):
        calls.append(kwargs)
        if kwargs.get("protocol") == "edgejson":
            raise TypeError("run_evaluation() got an unexpected keyword argument 'protocol'")
        return seed_evaluation(db_path, sample_dir, limit=6)

    monkeypatch.setattr(evaluate, "run_evaluation", fake_run_evaluation)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(EvaluatePane)
        pane._generator = lambda request, db, template: built.append(template) or object()
        data = app.query_one("#ev-data", Select)
        await wait_for(pilot, lambda: data.value is not Select.NULL)
        app.query_one("#ev-adapter", Input).value = str(run_id)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: pane.run_id is not None, timeout=20)
        assert calls[-1]["adapter"] == str(run_id)
        assert calls[-1]["protocol"] == "schemalab" and calls[-1]["prompt_template"] is None
        assert built == ["edgejson"]  # the adapter's training template, from its run

        app.query_one("#ev-template", Select).value = "chat"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(calls) == 2, timeout=20)
        await wait_for(pilot, lambda: not pane.has_class("running"))
        assert calls[-1]["prompt_template"] == "chat" and built[-1] == "chat"
        assert any(
            "trained with prompt template 'edgejson'" in n.message for n in app._notifications
        )

        app.query_one("#ev-template", Select).value = "auto"
        app.query_one("#ev-protocol", Select).value = "edgejson"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(calls) == 3, timeout=20)
        await wait_for(pilot, lambda: not pane.has_class("running"))
        assert built[-1] == "edgejson"
        messages = " ".join(n.message for n in app._notifications)
        assert "does not accept" in messages and "protocol" in messages


def _fits(table: DataTable) -> bool:
    """Whether every column of `table` is drawn whole within its width (nothing cut off)."""
    return sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width


async def test_results_at_80x24_say_how_it_decoded_and_fit(db_path, sample_dir):
    """The header says greedy/sampling and constrained or not; at 80x24 the per-schema table
    and the drilldown fit, failures abbreviated in words with a legend, never cut mid-word."""
    from tui.results import FAILURE_SHORT, diff_table

    run_id = seed_evaluation(db_path, sample_dir)
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(EvaluatePane)
        pane.show_run(run_id)
        await wait_for(pilot, lambda: pane.run_id == run_id)
        await pilot.pause(0.2)
        overall = text_of(app, "#ev-overall")
        assert "greedy" in overall and "unconstrained" in overall
        schemas = app.query_one("#ev-schemas", DataTable)
        assert _fits(schemas)
        shown = [f for f in column_values(schemas, 7) if f]
        assert shown and set(shown) <= set(FAILURE_SHORT.values())
        legend = text_of(app, "#ev-legend")
        for full, short in FAILURE_SHORT.items():
            if short in shown:
                assert f"{short} = {full}" in legend

        pane.show_schema("purchase_order")
        examples = app.query_one("#ev-example-table", DataTable)
        await wait_for(pilot, lambda: examples.row_count)
        await pilot.pause(0.2)
        assert _fits(examples)
        # Diff kinds are whole words even in the narrowest kind column.
        from rich.console import Console

        console = Console(width=60, record=True)
        console.print(diff_table([{"path": "$.a", "expected": 1, "got": 2, "kind": "wrong_value"}]))
        assert "wrong_value" in console.export_text()

        # The constrained checkbox shows its state without colour.
        box = app.query_one("#ev-constrained")
        assert "X" not in str(box.render())
        box.toggle()
        await pilot.pause()
        assert "X" in str(box.render())


async def test_prefill_fills_the_adapter_and_the_data_set(db_path, sample_dir, tmp_path):
    """ "Evaluate this run" fills the form: the adapter, and the data set even when it is not
    among the folders the workbench scans (it joins the choice)."""
    elsewhere = tmp_path / "held_out.jsonl"
    elsewhere.write_text((sample_dir / "test.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    app = PaneApp(EvaluatePane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(EvaluatePane)
        pane.prefill("3:step-40", str(elsewhere))  # before the data sets are read
        data = app.query_one("#ev-data", Select)
        await wait_for(pilot, lambda: len(pane._data_options) > 0)
        await pilot.pause()
        assert app.query_one("#ev-adapter", Input).value == "3:step-40"
        assert data.value == str(elsewhere)
        pane.prefill("4", str(sample_dir / "train.jsonl"))
        await pilot.pause()
        assert (app.query_one("#ev-adapter", Input).value, data.value) == (
            "4",
            str(sample_dir / "train.jsonl"),
        )
        request = pane.form_request()
        assert request is not None and request.adapter == "4"
