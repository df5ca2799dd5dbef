"""Pilot tests of the Playground pane, mounted alone in a small app: pick a data set example,
generate in both columns with the tiny model (one constrained), and cancel."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pilot_helpers import PaneApp, wait_for
from textual.widgets import Input, OptionList, TextArea

from tui.playground import ExamplePicker, PlaygroundPane

pytestmark = pytest.mark.anyio


def example_from(sample_dir, schema_id: str | None = None):
    from engine.data.load import load_examples

    examples = load_examples(sample_dir / "test.jsonl").examples
    return next(e for e in examples if schema_id in (None, e.schema_id))


async def test_pick_example_fills_prompt_schema_and_expected(db_path, sample_dir):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        app.query_one("#pg-prompt").focus()  # the key works while typing
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ExamplePicker)
        picker = app.screen
        await wait_for(pilot, lambda: picker.datasets)
        names = [info.name for info in picker.datasets]
        sets = picker.query_one("#picker-sets", OptionList)
        sets.highlighted = next(i for i, n in enumerate(names) if n.endswith("test"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: picker.examples)
        # Filtering narrows the list to matching examples; enter picks the first one shown.
        wanted = picker.examples[3]
        picker.query_one("#picker-filter", Input).value = wanted.id
        await pilot.pause(0.1)
        listing = picker.query_one("#picker-examples", OptionList)
        listing.focus()
        listing.highlighted = 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ExamplePicker))

        assert pane.example is not None and pane.example.id.startswith(wanted.id)
        assert app.query_one("#pg-prompt", TextArea).text == pane.example.prompt
        assert app.query_one("#pg-schema", Input).value == pane.example.schema_id
        assert isinstance(pane.schema, dict) and pane.schema.get("type") == "object"
        assert "expected" in str(app.query_one("#pg-expected").render())


async def test_generate_streams_into_both_columns(db_path, sample_dir, tiny_model_path):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        pane.set_example(example_from(sample_dir, "contact_card"))
        app.query_one("#pg-max-tokens", Input).value = "40"  # a random model rarely closes
        assert not app.query_one("#constrained-a").value
        assert app.query_one("#constrained-b").value
        app.query_one("#pg-prompt").focus()  # the key works while typing
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: all(_finished(pane, s) for s in "ab"), timeout=80)

        for side in "ab":
            column = pane.column(side)
            assert column.text, f"column {side} got no text"
            status = str(app.query_one(f"#status-{side}").render())
            assert "parses" in status and "valid" in status and "tok/s" in status
        # Constrained decoding holds even a random model to the schema's object syntax.
        assert pane.column("b").text.lstrip().startswith("{")
        assert "40 tokens" in str(app.query_one("#status-a").render())
        from tui.model_cache import MODELS

        assert MODELS._bases, "the model is cached for the next Generate"


def _finished(pane, side: str) -> bool:
    status = str(pane.app.query_one(f"#status-{side}").render())
    if status.startswith("streaming"):  # the live count says tok/s too
        return False
    return "tok/s" in status or "cancelled" in status or "rror" in status


class SlowGenerator:
    """Stands in for engine.decode.generate.Generator: one piece every 20 ms until cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.cancels: list[threading.Event] = []

    def stream(self, prompt, schema_id, schema, cfg, constrained=False, cancel=None):
        self.cancels.append(cancel)
        for i in range(2000):
            if cancel is not None and cancel.is_set():
                self.cancelled.set()
                return
            time.sleep(0.02)
            yield "{" if i == 0 else " "


async def test_cancel_stops_both_columns(db_path, sample_dir):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        fake = SlowGenerator()
        pane._generator = lambda request: fake
        pane.query_one("#pg-prompt", TextArea).text = "Call Ada Lovelace at 555-0100."
        pane.query_one("#pg-schema", Input).value = "contact_card"
        app.query_one("#pg-prompt").focus()  # the key works while typing
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: pane.column("a").text and pane.column("b").text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: all(_finished(pane, s) for s in "ab"), timeout=10)
        await asyncio.sleep(0.1)
        # Both columns were handed a cancel event, and Cancel set both.
        assert len(fake.cancels) == 2 and all(c.is_set() for c in fake.cancels)
        for side in "ab":
            assert "cancelled" in str(app.query_one(f"#status-{side}").render())
        assert not [w for w in app.workers if w.group in ("col-a", "col-b") and w.is_running]


class QuickGenerator:
    """Stands in for engine.decode.generate.Generator: streams a fixed answer at once."""

    last = None

    def stream(self, prompt, schema_id, schema, cfg, constrained=False, cancel=None):
        yield '{"name": "Ada"}'


async def test_adapter_picker_and_template_reach_the_generator(db_path, sample_dir, monkeypatch):
    """ctrl+r fills the focused column's adapter from the run log; the column decodes with the
    adapter's training template by default, or the one chosen (with a warning)."""
    from test_tui_train import seed_val_run
    from textual.widgets import Select

    from tui.adapters import AdapterPicker

    monkeypatch.chdir(sample_dir.parent.parent)
    run_id = seed_val_run(db_path)  # trained with prompt_template edgejson
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        requests = []
        pane._generator = lambda request: requests.append(request) or QuickGenerator()
        app.query_one("#adapter-b", Input).focus()
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, AdapterPicker)
        picker = app.screen
        await wait_for(pilot, lambda: picker.choices)
        assert "Adapter for column B" in str(picker.query_one("Label").render())
        await pilot.press("enter")  # the run id: its best checkpoint
        await wait_for(pilot, lambda: not isinstance(app.screen, AdapterPicker))
        assert app.query_one("#adapter-b", Input).value == str(run_id)
        assert app.query_one("#adapter-a", Input).value == ""

        pane.query_one("#pg-prompt", TextArea).text = "Call Ada Lovelace at 555-0100."
        pane.query_one("#pg-schema", Input).value = "contact_card"
        app.query_one("#template-a", Select).value = "chat"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: all(_finished(pane, s) for s in "ab"), timeout=20)
        templates = {r.side: r.template for r in requests}
        assert templates == {"a": "chat", "b": "edgejson"}
        assert pane.column("b").border_subtitle == "template edgejson"
        assert pane.column("a").border_subtitle == "template chat"

        # Column B with a template its adapter was not trained with: decoded, with a warning.
        app.query_one("#template-b", Select).value = "schemalab"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(requests) == 4, timeout=20)
        await wait_for(
            pilot,
            lambda: any(
                "trained with prompt template 'edgejson'" in n.message for n in app._notifications
            ),
        )


async def test_streaming_shows_a_live_token_count_and_rate(db_path, sample_dir):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        fake = SlowGenerator()
        pane._generator = lambda request: fake
        pane.query_one("#pg-prompt", TextArea).text = "Call Ada Lovelace at 555-0100."
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(pane.column("a").text) > 5)
        status = str(app.query_one("#status-a").render())
        assert "streaming" in status and "tokens" in status and "tok/s" in status
        await pilot.press("escape")
        await wait_for(pilot, lambda: all(_finished(pane, s) for s in "ab"), timeout=10)


class ByteSplitGenerator:
    """Streams an answer token by token through the engine's detokenizer, with the tiny
    model's byte-level BPE (multi-byte characters are split across tokens)."""

    TEXT = '{"name": "Zoë 漢字 😀 “café” — ok"}'
    last = None

    def stream(self, prompt, schema_id, schema, cfg, constrained=False, cancel=None):
        from engine.decode.generate import _Detokenizer
        from engine.models.load import load_tokenizer

        tok = load_tokenizer("tiny")
        detok = _Detokenizer(tok)
        for token_id in tok.encode(self.TEXT, add_special_tokens=False):
            time.sleep(0.005)
            piece = detok.add(token_id)
            if piece:
                yield piece


async def test_streamed_text_never_shows_a_split_character(db_path, sample_dir, tiny_model_path):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        pane._generator = lambda request: ByteSplitGenerator()
        seen: list[str] = []
        column = pane.column("a")
        original = column.append
        column.append = lambda piece: (seen.append(piece), original(piece))
        pane.query_one("#pg-prompt", TextArea).text = "Zoë"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: all(_finished(pane, s) for s in "ab"), timeout=30)
        assert seen and not any("\ufffd" in piece for piece in seen)
        assert column.text == ByteSplitGenerator.TEXT


async def test_columns_say_how_they_decode_and_the_checkbox_shows_its_state(db_path, sample_dir):
    from textual.widgets import Select

    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        a, b = pane.column("a"), pane.column("b")
        assert "greedy" in a.border_title and "unconstrained" in a.border_title
        assert "· constrained" in b.border_title
        box_a, box_b = app.query_one("#constrained-a"), app.query_one("#constrained-b")
        # Checked and unchecked differ in their characters, not only in colour (NO_COLOR).
        assert "X" in str(box_b.render()) and "X" not in str(box_a.render())
        box_a.toggle()
        app.query_one("#preset-a", Select).value = "sample"
        await pilot.pause()
        assert "X" in str(box_a.render())
        assert "sampling" in a.border_title and "· constrained" in a.border_title


async def test_picker_filters_as_you_type(db_path, sample_dir):
    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await pilot.press("ctrl+o")
        picker = app.screen
        await wait_for(pilot, lambda: picker.datasets)
        names = [info.name for info in picker.datasets]
        sets = picker.query_one("#picker-sets", OptionList)
        sets.highlighted = next(i for i, n in enumerate(names) if n.endswith("test"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: picker.examples)
        wanted = picker.examples[7]
        assert picker.focused is picker.query_one("#picker-examples", OptionList)
        suffix = wanted.id[-4:]
        await pilot.press(*suffix)  # typed on the list: goes to the filter
        await pilot.pause(0.1)
        assert picker.query_one("#picker-filter", Input).value == suffix
        first = picker.examples[
            int(picker.query_one("#picker-examples", OptionList).get_option_at_index(0).id)
        ]
        await pilot.press("enter")  # the first example shown
        await wait_for(pilot, lambda: not isinstance(app.screen, ExamplePicker))
        assert pane.example is first and suffix in first.id + first.prompt


async def test_top_bar_is_whole_at_80x24(db_path, sample_dir):
    """Every control of the top row lies inside the screen at its full width, and where the
    prompt came from is readable to its end (it was cut to `typed` beside the controls)."""
    from textual.widgets import Button, Label

    app = PaneApp(PlaygroundPane, db_path, [sample_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await pilot.pause()
        screen = app.screen.region
        top = list(pane.query_one("#pg-top").children)
        assert {w.id for w in top} >= {"pg-schema", "pg-max-tokens", "pg-generate", "pg-cancel"}
        for widget in top:
            assert screen.contains_region(widget.region), widget
            if isinstance(widget, (Button, Label)):
                assert widget.region.width >= len(
                    str(widget.label if isinstance(widget, Button) else widget.render()).strip()
                ), widget
        assert pane.query_one("#pg-max-tokens").region.width >= len("preset") + 1
        hint = pane.query_one("#pg-example")
        assert screen.contains_region(hint.region)
        assert hint.region.width >= len(str(hint.render()))

        example = example_from(sample_dir)
        pane.set_example(example)
        await pilot.pause()
        text = str(hint.render())
        assert text.startswith(f"example {example.id}") and text.endswith(")")
        assert hint.region.width >= len(text)
