"""Evaluation runs in runs.db: predictions, aggregates, cancellation, compare, seed export."""

from __future__ import annotations

import json
import threading
import time

import pytest

from engine import runlog
from engine.decode.generate import Cancelled, Generation, decoding_from
from engine.decode.prompt import render_target
from engine.evaluate import run as evaluate
from engine.paths import SAMPLE_DIR

TEST = SAMPLE_DIR / "test.jsonl"


class Oracle:
    """A stand-in generator answering from the expected outputs: right when `right(i)`."""

    adapter_run_id = None

    def __init__(self, right, answers):
        self.right, self.answers = right, answers

    def generate(
        self, items, cfg, constrained=False, batch_size=8, cancel=None, *, formats, on_batch=None
    ):
        out = []
        for start in range(0, len(items), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            idx = list(range(start, min(start + batch_size, len(items))))
            gens = []
            for i in idx:
                text = self.answers[i] if self.right(i) else '{"nope": '
                gens.append(Generation(text, 10, 0.01, not self.right(i)))
            on_batch(idx, gens)
            out += gens
        return out


@pytest.fixture(scope="module")
def answers():
    examples, _registry, _ = evaluate.load_data(TEST)
    return [render_target(e.expected) for e in examples]


def test_oracle_run_rows_and_report(db_path, answers):
    calls = []
    oracle = Oracle(lambda i: i % 2 == 0, answers)
    run_id = evaluate.run_evaluation(
        db_path,
        "oracle",
        TEST,
        limit=6,
        batch_size=4,
        generator=oracle,
        progress=lambda *a: calls.append(a),
    )
    db = runlog.connect(db_path)
    run = runlog.get_run(db, run_id)
    assert run["kind"] == "eval" and run["status"] == "completed"
    assert run["config"]["limit"] == 6 and run["config"]["formats"] == "lenient"
    assert [c[:2] for c in calls] == [(4, 6), (6, 6)] and calls[-1][2] == pytest.approx(0.5)
    report = evaluate.load_report(db, run_id)
    assert report["overall"]["n"] == 6 and report["overall"]["json_exact"] == pytest.approx(0.5)
    assert report["by_failure"] == {"truncated": 3}
    assert sum(g["n"] for g in report["by_complexity"].values()) == 6
    assert "lenient" == report["formats"] and "time zone" in report["formats_reason"]
    row = db.execute(
        "SELECT n_examples, json_exact FROM evaluations WHERE run_id = ?", [run_id]
    ).fetchone()
    assert row == (6, 0.5)
    preds = evaluate.predictions(db, run_id)
    assert len(preds) == 6 and preds[0]["json_exact"] == 1 and preds[0]["parsed"] is not None
    failing = evaluate.predictions(db, run_id, failure="failing")
    assert {p["failure"] for p in failing} == {"truncated"} and len(failing) == 3
    one_schema = preds[0]["schema_id"]
    assert all(
        p["schema_id"] == one_schema for p in evaluate.predictions(db, run_id, schema=one_schema)
    )


def test_compare_flips_and_seed_export(db_path, answers, tmp_path):
    a = evaluate.run_evaluation(
        db_path, "oracle", TEST, limit=6, generator=Oracle(lambda i: True, answers)
    )
    b = evaluate.run_evaluation(
        db_path, "oracle", TEST, limit=6, generator=Oracle(lambda i: i != 2, answers)
    )
    result = evaluate.compare(db_path, a, b)
    assert [f["failure_b"] for f in result["pass_to_fail"]] == ["truncated"]
    assert result["fail_to_pass"] == [] and result["n_common"] == 6
    assert result["overall"]["json_exact"]["delta"] == pytest.approx(-1 / 6)
    path = evaluate.export_seed_format(db_path, b, tmp_path / "seed.json")
    seed = json.loads(path.read_text())
    agg = seed["aggregate"]
    assert agg["total_examples"] == 6 and agg["json_exact_score"] == pytest.approx(5 / 6)
    assert set(agg) >= {
        "model_name",
        "avg_field_f1",
        "schema_compliance_rate",
        "avg_latency_ms",
        "tokens_per_sec",
        "by_complexity",
        "by_schema",
    }
    first = seed["individual_results"][0]
    assert set(first) == {
        "prompt",
        "expected_output",
        "model_output",
        "model_output_parsed",
        "json_exact",
        "field_f1",
        "schema_compliance",
        "latency_ms",
        "complexity",
        "schema_name",
        "error",
    }
    with pytest.raises(evaluate.EvaluationError, match="no run 99"):
        evaluate.load_report(db_path, 99)


def test_cancel_keeps_done_batches(db_path, answers):
    stop = threading.Event()
    run_id = evaluate.run_evaluation(
        db_path,
        "oracle",
        TEST,
        limit=6,
        batch_size=2,
        cancel=stop,
        generator=Oracle(lambda i: True, answers),
        progress=lambda *a: stop.set(),
    )
    db = runlog.connect(db_path)
    assert runlog.get_run(db, run_id)["status"] == "cancelled"
    assert len(evaluate.predictions(db, run_id)) == 2
    assert evaluate.load_report(db, run_id)["overall"]["n"] == 2


def test_tiny_model_run_and_bad_data(db_path, tmp_path):
    cfg = decoding_from("greedy", ["max_new_tokens=8"])
    run_id = evaluate.run_evaluation(db_path, "tiny", TEST, decoding=cfg, limit=3, constrained=True)
    report = evaluate.load_report(db_path, run_id)
    assert report["overall"]["n_tokens"] == 24 and report["overall"]["tokens_per_s"] > 0
    assert report["grammar_disagrees"]["count"] == 0
    assert report["by_failure"] == {"truncated": 3}
    with pytest.raises(evaluate.EvaluationError, match="no such data file"):
        evaluate.run_evaluation(db_path, "tiny", tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not json\n")
    with pytest.raises(evaluate.EvaluationError, match="no usable examples"):
        evaluate.run_evaluation(db_path, "tiny", empty)


class Shuffled(Oracle):
    """An oracle that, like the real generator, runs batches out of data-set order (here in
    reverse) and generates a different number of tokens per example."""

    def generate(
        self, items, cfg, constrained=False, batch_size=8, cancel=None, *, formats, on_batch=None
    ):
        self.cfg = cfg
        order = list(reversed(range(len(items))))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            time.sleep(0.01)
            on_batch(idx, [Generation(self.answers[i], 1 + i, 99.0, False) for i in idx])


def test_seed_export_is_in_data_set_order_with_per_example_latency(db_path, answers, tmp_path):
    run_id = evaluate.run_evaluation(
        db_path, "oracle", TEST, limit=6, batch_size=4, generator=Shuffled(lambda i: True, answers)
    )
    preds = evaluate.predictions(db_path, run_id)
    examples = evaluate.load_data(TEST)[0][:6]
    assert [p["example_id"] for p in preds] == [e.id for e in reversed(examples)]  # batch order
    seed = json.loads(evaluate.export_seed_format(db_path, run_id, tmp_path / "s.json").read_text())
    assert [r["prompt"] for r in seed["individual_results"]] == [e.prompt for e in examples]
    # Latency: each batch's time split by tokens, not the generation's own (per-batch) figure.
    by_id = {p["example_id"]: p for p in preds}
    lat = [by_id[e.id]["latency_s"] for e in examples]
    assert all(0 < x < 99.0 for x in lat)
    assert lat[1] / lat[0] == pytest.approx(2.0)  # one batch: indices 1 and 0, 2 and 1 tokens
    assert lat[5] / lat[4] == pytest.approx(6 / 5)
    report = evaluate.load_report(db_path, run_id)
    assert sum(lat) == pytest.approx(report["overall"]["generation_s"])
    assert [r["latency_ms"] for r in seed["individual_results"]] == pytest.approx(
        [1000 * x for x in lat]
    )


def test_edgejson_protocol_fixes_decoding_and_template(db_path, answers):
    oracle = Shuffled(lambda i: True, answers)
    run_id = evaluate.run_evaluation(
        db_path, "oracle", TEST, limit=3, generator=oracle, protocol="edgejson"
    )
    config = runlog.get_run(runlog.connect(db_path), run_id)["config"]
    assert config["protocol"] == "edgejson" and config["prompt_template"] == "edgejson"
    assert (config["decoding"]["stop"], config["decoding"]["max_new_tokens"]) == ("eos", 512)
    assert oracle.cfg.stop == "eos" and not oracle.cfg.do_sample
    report = evaluate.load_report(db_path, run_id)
    assert report["protocol"] == "edgejson" and report["overall"]["json_exact"] == 1.0
    with pytest.raises(evaluate.EvaluationError, match="drop --constrained"):
        evaluate.run_evaluation(
            db_path, "oracle", TEST, generator=oracle, protocol="edgejson", constrained=True
        )
    with pytest.raises(evaluate.EvaluationError, match="harness"):
        evaluate.run_evaluation(
            db_path,
            "oracle",
            TEST,
            generator=oracle,
            protocol="edgejson",
            decoding=decoding_from("greedy"),
        )
    with pytest.raises(evaluate.EvaluationError, match="template edgejson"):
        evaluate.run_evaluation(
            db_path,
            "oracle",
            TEST,
            generator=oracle,
            protocol="edgejson",
            prompt_template="schemalab",
        )
    with pytest.raises(evaluate.EvaluationError, match="unknown protocol"):
        evaluate.run_evaluation(db_path, "oracle", TEST, generator=oracle, protocol="harness")


def test_prompt_template_follows_the_adapters_training_run(db_path, answers):
    db = runlog.connect(db_path)
    trained = runlog.create_run(db, "train", {"prompt_template": "schema-in-prompt"})
    oracle = Oracle(lambda i: True, answers)
    a = evaluate.run_evaluation(db, "oracle", TEST, adapter=str(trained), limit=2, generator=oracle)
    assert runlog.get_run(db, a)["config"]["prompt_template"] == "schema-in-prompt"
    assert evaluate.load_report(db, a)["template_warning"] is None
    b = evaluate.run_evaluation(
        db,
        "oracle",
        TEST,
        adapter=str(trained),
        limit=2,
        generator=oracle,
        prompt_template="schemalab",
    )
    warning = evaluate.load_report(db, b)["template_warning"]
    assert "schema-in-prompt" in warning and "'schemalab'" in warning
    c = evaluate.run_evaluation(db, "oracle", TEST, limit=2, generator=oracle)
    assert runlog.get_run(db, c)["config"]["prompt_template"] == "schemalab"


class Scripted:
    """Wraps the tiny model so that every row is forced to write `script` (token ids)."""

    def __init__(self, model, script: list[int]):
        self.model, self.script, self.calls = model, script, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, **kwargs):
        out = self.model(**kwargs)
        token = self.script[min(self.calls, len(self.script) - 1)]
        out.logits[:, -1, :] = -1e4
        out.logits[:, -1, token] = 1e4
        self.calls += 1
        return out


def test_stop_rules_on_a_scripted_tiny_model(db_path):
    from engine.decode.generate import Generator

    base = Generator("tiny")
    tok = base.tokenizer
    text = ' Fields {title, body} follow: {"a": 1} and more'
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def scripted(template):
        return Generator("tiny", model=Scripted(base.model, ids), tokenizer=tok, template=template)

    # SchemaLab's stop rule: past the brace pair in prose, up to the object's close.
    gen = scripted("schemalab").generate([("p", "s", None)], decoding_from("greedy"))[0]
    assert gen.text == ' Fields {title, body} follow: {"a": 1}' and gen.finish == "json_closed"
    # The harness's: to EOS; the evaluation stores the stripped output.
    run_id = evaluate.run_evaluation(
        db_path, "tiny", TEST, limit=1, protocol="edgejson", generator=scripted("edgejson")
    )
    pred = evaluate.predictions(db_path, run_id)[0]
    assert pred["output_text"] == text.strip() and pred["n_tokens"] == len(ids)
    assert pred["truncated"] == 0
