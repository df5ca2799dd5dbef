"""One model cache for the workbench: the Evaluate and Playground panes decode with the same
loaded weights for the same (model, adapter), each with a Generator of its own."""

from __future__ import annotations

import pytest

from tui.model_cache import MODELS, ModelCache


@pytest.fixture
def empty_cache():
    MODELS.clear()
    yield MODELS
    MODELS.clear()


def test_evaluate_and_playground_share_one_loaded_model(db_path, tiny_model_path, empty_cache):
    from tui.eval_form import EvalRequest
    from tui.evaluate import EvaluatePane
    from tui.playground import ColumnRequest, PlaygroundPane

    evaluate = EvaluatePane(str(db_path), [])
    playground = PlaygroundPane(str(db_path), [])
    for_eval = evaluate._generator(
        EvalRequest(
            model="tiny",
            adapter="",
            data="test.jsonl",
            preset="greedy",
            constrained=False,
            limit=None,
            batch_size=1,
        ),
        str(db_path),
        "chat",
    )
    for_play = playground._generator(
        ColumnRequest(
            side="a",
            model="tiny",
            adapter="",
            preset="greedy",
            constrained=False,
            prompt="",
            schema_id="",
            schema=None,
            example=None,
            template="schemalab",
        )
    )
    assert for_eval.model is for_play.model and for_eval.tokenizer is for_play.tokenizer
    # Each pane keeps its own template and figures.
    assert for_eval is not for_play
    assert (for_eval.template, for_play.template) == ("chat", "schemalab")
    assert len(empty_cache._bases) == 1


def test_the_cache_keeps_the_most_recently_used_models(tiny_model_path, tmp_path):
    from engine.models.load import build_tiny

    other = build_tiny(tmp_path / "other-tiny", seed=1)
    cache = ModelCache(max_models=1)
    loads = []
    first = cache.base("tiny", on_load=lambda: loads.append("tiny"))
    assert cache.base("tiny", on_load=lambda: loads.append("again")) is first
    cache.base(str(other), on_load=lambda: loads.append("other"))
    again = cache.base("tiny", on_load=lambda: loads.append("tiny"))
    assert loads == ["tiny", "other", "tiny"] and again is not first
