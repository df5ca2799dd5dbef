"""Asking what to score for the Evaluate pane's "score a predictions file": outputs produced
elsewhere (an API, llama.cpp, vLLM, another harness), one `{"id", "output"}` per line, scored
against a data set by engine.evaluate.run.run_scoring under a protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from tui.widgets import TextInput

PROTOCOLS = ("schemalab", "edgejson")  # when engine.evaluate.protocols does not list them


def protocol_options() -> list[tuple[str, str]]:
    try:
        from engine.evaluate.protocols import PROTOCOLS as found
    except ImportError:
        found = PROTOCOLS
    return [(p, p) for p in found]


@dataclass(frozen=True)
class ScoreRequest:
    """What to score: the predictions JSONL, the data set it answers, and the protocol."""

    predictions: str
    data: str
    protocol: str


class ScoreScreen(ModalScreen["ScoreRequest | None"]):
    """Asks for a predictions file, the data file and the protocol; dismisses with a
    ScoreRequest, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ScoreScreen { align: center middle; }
    ScoreScreen > Vertical {
        width: 76; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    ScoreScreen Label { width: 100%; }
    ScoreScreen .row { height: 1; margin-top: 1; }
    ScoreScreen .row Label { width: 12; }
    ScoreScreen .row Input, ScoreScreen .row Select { width: 1fr; }
    ScoreScreen #score-buttons { height: 1; margin-top: 1; align-horizontal: right; }
    ScoreScreen Button { margin-left: 2; }
    """

    def __init__(self, data: str = "", predictions: str = "") -> None:
        super().__init__()
        self.data = data
        self.predictions = predictions

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                'Score outputs made elsewhere: one {"id": ..., "output": "raw text"} per '
                "line. Enter scores, escape cancels."
            )
            with Horizontal(classes="row"):
                yield Label("predictions")
                yield TextInput(
                    self.predictions,
                    placeholder="predictions.jsonl",
                    id="score-predictions",
                    compact=True,
                )
            with Horizontal(classes="row"):
                yield Label("data")
                yield TextInput(
                    self.data, placeholder="data set .jsonl", id="score-data", compact=True
                )
            with Horizontal(classes="row"):
                yield Label("protocol")
                options = protocol_options()
                yield Select(
                    options,
                    value=options[0][1],
                    allow_blank=False,
                    id="score-protocol",
                    compact=True,
                )
            with Horizontal(id="score-buttons"):
                yield Button("Cancel (esc)", id="score-cancel", compact=True)
                yield Button("Score", id="score-ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#score-predictions", Input).focus()

    def request(self) -> ScoreRequest | None:
        predictions = self.query_one("#score-predictions", Input).value.strip()
        data = self.query_one("#score-data", Input).value.strip()
        if not predictions or not data:
            self.notify("Give both the predictions file and the data file.", severity="warning")
            return None
        protocol = str(self.query_one("#score-protocol", Select).value)
        return ScoreRequest(predictions, data, protocol)

    def _submit(self) -> None:
        request = self.request()
        if request is not None:
            self.dismiss(request)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#score-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#score-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
