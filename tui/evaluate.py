"""The Evaluate pane: a form that runs an evaluation in a worker (progress bar, running
JSONExact), the results (overall, by complexity, a sortable per-schema table), a drilldown to a
schema's examples and one example's diff, past evaluations, and a side-by-side comparison.

Every figure comes from engine.evaluate.run and runs.db; this pane only lays them out. The pane is
put together from tui.eval_form (form and launch), tui.eval_results (results tab),
tui.eval_drilldown (examples tab) and tui.eval_compare (past evaluations and compare); every
run-log read runs in a worker (tui.runlog_reads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState

from tui.adapters import AUTO, template_options
from tui.eval_compare import HistoryAndCompare
from tui.eval_drilldown import Drilldown
from tui.eval_form import EvalForm, EvalRequest
from tui.eval_results import SCHEMA_COLUMNS, SORTS, ResultsView
from tui.playground import preset_names
from tui.results import ExampleDetail, error_message
from tui.runlog_reads import RunLogReads, SerialReads
from tui.scoring import protocol_options
from tui.widgets import QuietProgressBar, StateCheckbox, TextInput, stop_progress

__all__ = ["SCHEMA_COLUMNS", "SORTS", "EvalRequest", "EvaluatePane"]


class EvaluatePane(EvalForm, ResultsView, Drilldown, HistoryAndCompare, RunLogReads, Vertical):
    """Run, read and compare evaluations."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "run", "Run"),  # a control key works while typing in the form
        Binding("escape,c", "cancel", "Cancel", key_display="esc"),
        Binding("ctrl+r", "pick_adapter", "Adapter"),
        Binding("ctrl+f", "score", "Score file"),
        Binding("s", "sort", "Sort"),
        Binding("h", "history", "Past evals"),
        Binding("m", "mark", "Mark"),
        Binding("x", "compare", "Compare"),
        Binding("b", "back", "Back"),
    ]
    DEFAULT_CSS = """
    EvaluatePane { height: 1fr; }
    EvaluatePane .form-row { height: 1; }
    EvaluatePane .form-row Label { width: auto; padding: 0 1 0 0; }
    EvaluatePane .form-row Input { width: 1fr; margin-right: 1; }
    EvaluatePane #ev-data { width: 2fr; }
    EvaluatePane #ev-preset { width: 1fr; margin-right: 1; }
    EvaluatePane #ev-limit, EvaluatePane #ev-max-tokens { width: 7; }
    EvaluatePane #ev-batch { width: 4; }
    EvaluatePane #ev-template { width: 24; margin-right: 1; }
    EvaluatePane #ev-protocol { width: 14; }
    EvaluatePane .form-row Checkbox { width: auto; margin-right: 1; }
    EvaluatePane .form-row Button { min-width: 8; }
    EvaluatePane #ev-progress-row { height: 1; }
    EvaluatePane #ev-progress { width: auto; display: none; }
    EvaluatePane.running #ev-progress { display: block; }
    EvaluatePane #ev-running { width: 1fr; padding-left: 1; }
    EvaluatePane #ev-tabs { height: 1fr; }
    EvaluatePane TabPane { padding: 0; }
    EvaluatePane #ev-overall { height: auto; }
    EvaluatePane #ev-complexity { height: auto; max-height: 5; }
    EvaluatePane #ev-schemas { height: 1fr; }
    EvaluatePane #ev-legend { height: auto; }
    EvaluatePane .split { height: 1fr; }
    EvaluatePane .split > * { width: 1fr; height: 1fr; }
    EvaluatePane.narrow .split { layout: vertical; }
    EvaluatePane #ev-compare-summary { height: auto; }
    EvaluatePane .titled { border-top: solid $primary 40%; border-title-color: $text-muted; }
    """

    @dataclass
    class Progress(Message):
        """The running evaluation scored `done` of `total` examples."""

        done: int
        total: int
        running_exact: float | None

    @dataclass
    class Finished(Message):
        """The evaluation ended and its results are in runs.db as `run_id`."""

        run_id: int | None
        cancelled: bool

    @dataclass
    class Failed(Message):
        """The evaluation (or scoring) failed with a message a person can act on."""

        message: str
        title: str = "Evaluation failed"

    @dataclass
    class Warned(Message):
        """The evaluation runs, with something worth knowing (a template mismatch)."""

        message: str

    @dataclass
    class Scored(Message):
        """A predictions file was scored and recorded as evaluation `run_id`."""

        run_id: int
        predictions: str

    def __init__(self, db_path: str, dataset_paths: list[str], id: str | None = None) -> None:
        super().__init__(id=id)
        self.db_path = str(db_path)
        self.dataset_paths = [str(p) for p in dataset_paths]
        self.run_id: int | None = None  # the evaluation on the results tab
        self._requested_run: int | None = None  # the evaluation last asked for (maybe loading)
        self.schema_rows: list[dict] = []
        self.sort_index = 0
        self.predictions: list[dict] = []
        self.marked: list[int] = []  # up to two evaluations picked for Compare
        self._cancel = threading.Event()
        self._reads = SerialReads(self.db_path)
        self._progress_text = ""
        self._data_options: list[tuple[str, str]] = []
        self._prefill_data: str | None = None

    def compose(self) -> ComposeResult:
        presets = preset_names()
        with Horizontal(classes="form-row"):
            yield Label("model")
            yield TextInput("tiny", id="ev-model", compact=True)
            yield Label("adapter")
            yield TextInput(placeholder="run id or path", id="ev-adapter", compact=True)
            yield Select([], id="ev-data", prompt="data set", compact=True)
        with Horizontal(classes="form-row"):
            yield Select(
                [(p, p) for p in presets],
                value="greedy" if "greedy" in presets else presets[0],
                allow_blank=False,
                id="ev-preset",
                compact=True,
            )
            yield StateCheckbox("constrained", id="ev-constrained", compact=True)
            yield Label("limit")
            yield TextInput(placeholder="all", type="integer", id="ev-limit", compact=True)
            yield Label("batch")
            yield TextInput("8", type="integer", id="ev-batch", compact=True)
            yield Label("max tok")
            yield TextInput(placeholder="preset", type="integer", id="ev-max-tokens", compact=True)
            yield Button("Run", id="ev-run", variant="primary", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("template")
            yield Select(
                template_options(), value=AUTO, allow_blank=False, id="ev-template", compact=True
            )
            yield Label("protocol")
            protocols = protocol_options()
            yield Select(
                protocols, value=protocols[0][1], allow_blank=False, id="ev-protocol", compact=True
            )
        with Horizontal(id="ev-progress-row"):
            yield QuietProgressBar(id="ev-progress")
            yield Label("no evaluation running", id="ev-running")
        with TabbedContent(id="ev-tabs", initial="ev-results"):
            with TabPane("Results", id="ev-results"):
                yield Static("Run an evaluation (ctrl+g) or open a past one (h).", id="ev-overall")
                yield DataTable(id="ev-complexity", cursor_type="none", zebra_stripes=True)
                yield DataTable(id="ev-schemas", cursor_type="row", zebra_stripes=True)
                yield Static("", id="ev-legend")
            with TabPane("Examples", id="ev-examples"), Horizontal(classes="split"):
                yield DataTable(id="ev-example-table", cursor_type="row", zebra_stripes=True)
                yield ExampleDetail(id="ev-detail")
            with TabPane("Past evaluations", id="ev-history"):
                yield DataTable(id="ev-history-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Compare", id="ev-compare"):
                yield Static(
                    "Mark two evaluations (m) in Past evaluations, then x.", id="ev-compare-summary"
                )
                with Vertical(classes="split"):  # stacked: the deltas table needs the width
                    yield DataTable(id="ev-compare-schemas", cursor_type="row", classes="titled")
                    yield DataTable(id="ev-compare-flips", cursor_type="row", classes="titled")

    def on_mount(self) -> None:
        stop_progress(self.query_one("#ev-progress", ProgressBar))
        self.query_one("#ev-compare-schemas").border_title = "per schema (B - A)"
        self.query_one("#ev-compare-flips").border_title = "flipped examples"
        self.load_datasets()
        self.refresh_history()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "narrow")

    def focus_default(self) -> None:
        """Where focus goes when the pane is shown: the results once there are some, else the form."""
        if self.run_id is not None:
            self.query_one("#ev-schemas", DataTable).focus()
        else:
            self.query_one("#ev-model", Input).focus()

    def escape_cancels(self) -> bool:
        """While an evaluation runs, escape cancels it even from a text field."""
        return self.has_class("running")

    def focus_main(self) -> None:
        """Escape from a text field lands here: the results once there are some, else Run."""
        if self.run_id is not None:
            self.query_one("#ev-schemas", DataTable).focus()
        else:
            self.query_one("#ev-run", Button).focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died outside its own error handling still ends as a notification."""
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.notify(error_message(event.worker.error), severity="error")
        if (
            event.state in (WorkerState.ERROR, WorkerState.CANCELLED)
            and event.worker.node is self
            and event.worker.group in ("ev-run", "ev-score")
        ):
            self._stop_running()

    # --- events routed to the parts ---------------------------------------------------------

    @on(Button.Pressed, "#ev-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    @on(DataTable.HeaderSelected, "#ev-schemas")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by_column(str(event.column_key.value))

    @on(DataTable.RowSelected, "#ev-schemas")
    def _schema_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.show_schema(str(event.row_key.value))

    @on(DataTable.RowHighlighted, "#ev-example-table")
    @on(DataTable.RowSelected, "#ev-example-table")
    def _example_selected(self, event) -> None:
        event.stop()
        self.show_prediction(int(event.row_key.value))

    @on(DataTable.RowSelected, "#ev-history-table")
    def _history_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.show_run(int(event.row_key.value))

    # Tab switches inside this pane are its own business, not the app's.
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
