"""The Evaluate pane: a form that runs an evaluation in a worker (progress bar, running
JSONExact), the results (overall, by complexity, a sortable per-schema table), a drilldown to a
schema's examples and one example's diff, past evaluations, and a side-by-side comparison.

Every figure comes from engine.evaluate and runs.db; this pane only lays them out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState, get_current_worker

from tui.adapters import AUTO, AdapterChoice, AdapterPicker, template_options
from tui.playground import preset_names
from tui.results import (
    OVERALL_METRICS,
    ExampleDetail,
    constrained_label,
    count_of,
    decoding_mode,
    error_message,
    failure_legend,
    failure_short,
    fill_compare,
    fmt_metric,
    fmt_ratio,
    rows_of,
    short,
    yes_no,
)
from tui.scoring import ScoreRequest, ScoreScreen, protocol_options
from tui.widgets import QuietProgressBar, StateCheckbox, TextInput, middle_cut, stop_progress

# Per-schema sort orders the `s` key cycles through: (row key, label); all descending.
SORTS = (("json_exact", "JSONExact"), ("field_f1", "field F1"), ("schema_valid", "validity"),
         ("n", "count"))
SCHEMA_COLUMNS = (("schema_id", "schema"), ("n", "n"), ("json_exact", "exact"),
                  ("field_f1", "field F1"), ("leaf_f1", "leaf F1"), ("schema_valid", "valid"),
                  ("parse_rate", "parses"), ("top_failure", "failure"))


@dataclass(frozen=True)
class EvalRequest:
    """The form's values, read on the UI thread and handed to the worker."""

    model: str
    adapter: str
    data: str
    preset: str
    constrained: bool
    limit: int | None
    batch_size: int
    max_new_tokens: int | None = None  # overrides the preset's limit when set
    template: str = AUTO  # a prompt template, or AUTO: the adapter's training template
    protocol: str = "schemalab"  # or edgejson: the published harness's prompt, decoding, parse


class EvaluatePane(Vertical):
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
        self.schema_rows: list[dict] = []
        self.sort_index = 0
        self.predictions: list[dict] = []
        self.marked: list[int] = []  # up to two evaluations picked for Compare
        self._cancel = threading.Event()
        self._db = None
        self._generators: dict = {}
        self._progress_text = ""

    @property
    def db(self):
        if self._db is None:
            from engine import runlog

            self._db = runlog.connect(self.db_path)
        return self._db

    def compose(self) -> ComposeResult:
        presets = preset_names()
        with Horizontal(classes="form-row"):
            yield Label("model")
            yield TextInput("tiny", id="ev-model", compact=True)
            yield Label("adapter")
            yield TextInput(placeholder="run id or path", id="ev-adapter", compact=True)
            yield Select([], id="ev-data", prompt="data set", compact=True)
        with Horizontal(classes="form-row"):
            yield Select([(p, p) for p in presets], value="greedy" if "greedy" in presets
                         else presets[0], allow_blank=False, id="ev-preset", compact=True)
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
            yield Select(template_options(), value=AUTO, allow_blank=False, id="ev-template",
                         compact=True)
            yield Label("protocol")
            protocols = protocol_options()
            yield Select(protocols, value=protocols[0][1], allow_blank=False, id="ev-protocol",
                         compact=True)
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
                yield Static("Mark two evaluations (m) in Past evaluations, then x.",
                             id="ev-compare-summary")
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

    # --- the form and the run ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="ev-datasets", exit_on_error=False)
    def load_datasets(self) -> None:
        """Fill the data set choice from the data set folders (read in a worker)."""
        from engine.data import discover_datasets

        try:
            found = discover_datasets(self.dataset_paths)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.app.call_from_thread(self.notify, error_message(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._set_datasets, found)

    def _set_datasets(self, found: list) -> None:
        select = self.query_one("#ev-data", Select)
        options = [(f"{info.name} ({info.n_examples})", str(info.path)) for info in found]
        select.set_options(options)
        preferred = [info for info in found if info.split == "test"] or found
        if preferred and select.value is Select.NULL:
            select.value = str(preferred[0].path)

    def form_request(self) -> EvalRequest | None:
        data = self.query_one("#ev-data", Select).value
        if data is Select.NULL or not data:
            self.notify("Choose a data set to evaluate on.", severity="warning")
            return None
        limit = self.query_one("#ev-limit", Input).value.strip()
        batch = self.query_one("#ev-batch", Input).value.strip()
        max_tokens = self.query_one("#ev-max-tokens", Input).value.strip()
        return EvalRequest(
            model=self.query_one("#ev-model", Input).value.strip() or "tiny",
            adapter=self.query_one("#ev-adapter", Input).value.strip(),
            data=str(data),
            preset=str(self.query_one("#ev-preset", Select).value),
            constrained=self.query_one("#ev-constrained", Checkbox).value,
            limit=int(limit) if limit.lstrip("-").isdigit() and int(limit) > 0 else None,
            batch_size=max(1, int(batch)) if batch.isdigit() else 8,
            max_new_tokens=int(max_tokens) if max_tokens.isdigit() and int(max_tokens) else None,
            template=str(self.query_one("#ev-template", Select).value),
            protocol=str(self.query_one("#ev-protocol", Select).value),
        )

    @on(Button.Pressed, "#ev-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    def action_run(self) -> None:
        """Evaluate the chosen model on the chosen data set."""
        request = self.form_request()
        if request is None:
            return
        self._cancel.set()
        self._cancel = threading.Event()
        bar = self.query_one("#ev-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.add_class("running")
        self._progress_text = "nothing scored"
        self.query_one("#ev-running", Label).update(f"loading {request.model}…")
        self.run_evaluation(request, self._cancel)

    def action_cancel(self) -> None:
        """Stop the running evaluation (what it scored so far is kept)."""
        self._cancel.set()
        self.workers.cancel_group(self, "ev-run")

    @work(thread=True, exclusive=True, group="ev-run", exit_on_error=False)
    def run_evaluation(self, request: EvalRequest, cancel: threading.Event) -> None:
        """Worker: run engine.evaluate.run_evaluation, posting progress as it scores."""
        worker = get_current_worker()

        def progress(done: int, total: int, running_exact: float | None = None) -> None:
            if worker.is_cancelled:
                cancel.set()
            self.post_message(self.Progress(done, total, running_exact))

        try:
            from engine import runlog
            from engine.decoding import decoding_from
            from engine.evaluate import choose_template, run_evaluation

            db = runlog.connect(self.db_path)
            limit = request.max_new_tokens
            overrides = [f"max_new_tokens={limit}"] if limit else []
            adapter = request.adapter or None
            chosen = None if request.template == AUTO else request.template
            # The generator encodes prompts, so it is built with the template the run will use.
            template, warning = choose_template(db, adapter, chosen, request.protocol)
            if warning:
                self.post_message(self.Warned(warning))
            run_id = run_evaluation(
                db, request.model, request.data,
                adapter=adapter,
                decoding=decoding_from(request.preset, overrides), constrained=request.constrained,
                limit=request.limit, batch_size=request.batch_size,
                progress=progress, cancel=cancel,
                generator=self._generator(request, db, template),
                protocol=request.protocol, prompt_template=chosen,
            )
        except TypeError as exc:
            self.post_message(self.Failed(_keyword_message(exc, "run_evaluation")))
            return
        except Exception as exc:  # noqa: BLE001 - the engine's message becomes a notification
            self.post_message(self.Failed(error_message(exc)))
            return
        self.post_message(self.Finished(run_id, cancel.is_set() or worker.is_cancelled))

    def _generator(self, request: EvalRequest, db, template: str):
        """The Generator for (model, adapter, template), loaded in the worker once and kept for
        reruns."""
        from engine.decoding import Generator

        key = (request.model, request.adapter or None, template)
        if key not in self._generators:
            self._generators.clear()  # one model in memory at a time
            self._generators[key] = Generator(
                request.model, request.adapter or None, db=db, template=template
            )
        return self._generators[key]

    def on_evaluate_pane_progress(self, message: Progress) -> None:
        self.query_one("#ev-progress", ProgressBar).update(
            total=message.total, progress=message.done
        )
        running = fmt_ratio(message.running_exact)
        self._progress_text = f"{message.done}/{message.total} scored  JSONExact {running}"
        self.query_one("#ev-running", Label).update(self._progress_text)

    def _stop_running(self) -> None:
        """Hide the progress bar and stop its animation (a hidden one would still redraw)."""
        self.remove_class("running")
        stop_progress(self.query_one("#ev-progress", ProgressBar))

    def on_evaluate_pane_finished(self, message: Finished) -> None:
        self._stop_running()
        label = self.query_one("#ev-running", Label)
        state = "cancelled" if message.cancelled else "finished"
        label.update(f"evaluation {message.run_id} {state}: {self._progress_text}")
        self.refresh_history()
        if message.run_id is not None:
            self.show_run(message.run_id)

    def on_evaluate_pane_failed(self, message: Failed) -> None:
        self._stop_running()
        self.query_one("#ev-running", Label).update(Text(message.title.lower(), style="red"))
        self.notify(message.message, title=message.title, severity="error")

    def on_evaluate_pane_warned(self, message: Warned) -> None:
        self.notify(message.message, severity="warning", timeout=10)

    # --- adapters and scoring outputs made elsewhere ----------------------------------------

    def action_pick_adapter(self) -> None:
        """Pick the adapter from the run log's training runs (RUN_ID is the best checkpoint)."""

        def picked(choice: AdapterChoice | None) -> None:
            if choice is None:
                return
            self.query_one("#ev-adapter", Input).value = choice.spec
            template = str(self.query_one("#ev-template", Select).value)
            used = choice.template if template == AUTO else template
            self.notify(f"Adapter {choice.spec}, template {used}"
                        + (" (its training template)" if template == AUTO else ""))

        self.app.push_screen(AdapterPicker(self.db_path, "Adapter to evaluate"), picked)

    def action_score(self) -> None:
        """Score a predictions file made elsewhere against a data set, as an evaluation."""
        data = self.query_one("#ev-data", Select).value
        default = "" if data is Select.NULL or not data else str(data)

        def chosen(request: ScoreRequest | None) -> None:
            if request is None:
                return
            bar = self.query_one("#ev-progress", ProgressBar)
            bar.update(total=None, progress=0)
            self.add_class("running")
            self._progress_text = "nothing scored"
            self.query_one("#ev-running", Label).update(
                f"scoring {Path(request.predictions).name} ({request.protocol})…"
            )
            self.score_predictions(request)

        self.app.push_screen(ScoreScreen(default), chosen)

    @work(thread=True, exclusive=True, group="ev-score", exit_on_error=False)
    def score_predictions(self, request: ScoreRequest) -> None:
        """Worker: engine.evaluate.run_scoring records the outputs as an evaluation run."""

        def progress(done: int, total: int, running_exact: float | None = None) -> None:
            self.post_message(self.Progress(done, total, running_exact))

        try:
            from engine import runlog
            from engine.evaluate import run_scoring

            db = runlog.connect(self.db_path)
            try:
                run_id = run_scoring(db, request.data, request.predictions,
                                     protocol=request.protocol, progress=progress)
            finally:
                db.conn.close()
        except ImportError:
            self.post_message(self.Failed(
                "this engine has no engine.evaluate.run_scoring yet", "Scoring failed"))
            return
        except TypeError as exc:
            self.post_message(self.Failed(_keyword_message(exc, "run_scoring"), "Scoring failed"))
            return
        except Exception as exc:  # noqa: BLE001 - the engine's message becomes a notification
            self.post_message(self.Failed(error_message(exc), "Scoring failed"))
            return
        self.post_message(self.Scored(run_id, request.predictions))

    def on_evaluate_pane_scored(self, message: Scored) -> None:
        self._stop_running()
        self.query_one("#ev-running", Label).update(
            f"scored {Path(message.predictions).name} as evaluation {message.run_id}: "
            f"{self._progress_text}"
        )
        self.refresh_history()
        self.show_run(message.run_id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died outside its own error handling still ends as a notification."""
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.notify(error_message(event.worker.error), severity="error")
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED) and event.worker.node is self \
                and event.worker.group in ("ev-run", "ev-score"):
            self._stop_running()

    # --- results ----------------------------------------------------------------------------

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

    def show_run(self, run_id: int) -> None:
        """Open an evaluation's results (overall, by complexity, by schema)."""
        from engine.evaluate import load_report

        try:
            report = load_report(self.db, int(run_id))
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.notify(f"evaluation {run_id}: {error_message(exc)}", severity="error")
            return
        self.run_id = int(run_id)
        self._show_overall(report)
        self._show_complexity(report)
        failures = report.get("by_schema_failure") or {}
        self.schema_rows = rows_of(report.get("by_schema"), "schema_id")
        for row in self.schema_rows:
            row.setdefault("n", count_of(row))
            row["top_failure"] = _top_failure(failures, row["schema_id"])
        self._fill_schemas()
        self.query_one("#ev-tabs", TabbedContent).active = "ev-results"
        self.query_one("#ev-schemas", DataTable).focus()

    def _show_overall(self, report: dict) -> None:
        overall = report.get("overall") or {}
        run = self.db["runs"].get(self.run_id) if self.run_id else None
        title = Text(f"Evaluation {self.run_id}", style="bold")
        if run is not None:
            config = _json(run.get("config"))
            title.append(f"  {run.get('model') or config.get('model', '?')}")
            if run.get("adapter"):
                title.append(f" + {Path(str(run['adapter'])).name}")
            title.append(f"  on {Path(str(run.get('data_path') or '?')).name}")
            ev = self._evaluation_row()
            decoding = _json(ev.get("decoding")) or config.get("decoding") or {}
            constrained = ev.get("constrained", config.get("constrained"))
            title.append(f"  {preset_label(decoding)}: {decoding_mode(decoding)}, "
                         f"{constrained_label(constrained)}")
            if config.get("protocol") or config.get("prompt_template"):
                title.append(f"  {config.get('protocol') or 'schemalab'} protocol, template "
                             f"{config.get('prompt_template') or 'schemalab'}", style="dim")
            title.append(f"  {run.get('status')}", style="yellow" if run.get("status")
                         != "completed" else "green")
        line = Text()
        for key, label in OVERALL_METRICS:
            line.append(f"{label} ", style="dim")
            line.append(fmt_metric(key, overall.get(key)) + "   ", style="bold")
        line.append(f"n {count_of(overall)}", style="dim")
        self.query_one("#ev-overall", Static).update(Text("\n").join([title, line]))

    def _evaluation_row(self) -> dict:
        """The evaluations row of the run on show (its decoding and constrained flag)."""
        from engine import runlog

        return runlog.evaluation(self.db, self.run_id) or {}

    def _show_complexity(self, report: dict) -> None:
        table = self.query_one("#ev-complexity", DataTable)
        table.clear(columns=True)
        table.add_columns("complexity", "n", *(label for _, label in OVERALL_METRICS[:5]))
        for row in rows_of(report.get("by_complexity"), "complexity"):
            table.add_row(str(row["complexity"]), str(count_of(row)),
                          *(fmt_metric(k, row.get(k)) for k, _ in OVERALL_METRICS[:5]))

    def _fill_schemas(self) -> None:
        key, label = SORTS[self.sort_index]
        rows = sorted(self.schema_rows, key=lambda r: (r.get(key) is None, -(r.get(key) or 0)))
        table = self.query_one("#ev-schemas", DataTable)
        table.clear(columns=True)
        for col_key, header in SCHEMA_COLUMNS:
            shown = f"{header} ▼" if col_key == key else header
            table.add_column(shown, key=col_key)
        for row in rows:
            cells = [middle_cut(str(row["schema_id"]), 20), str(row.get("n", 0))]
            cells += [fmt_metric(k, row.get(k)) for k, _ in SCHEMA_COLUMNS[2:-1]]
            cells.append(failure_short(row.get("top_failure")))
            table.add_row(*cells, key=str(row["schema_id"]))
        table.border_title = f"sorted by {label}"
        legend = failure_legend(row.get("top_failure") for row in rows)
        self.query_one("#ev-legend", Static).update(
            Text(f"failure (the most common): {legend}", style="dim") if legend else "")

    def action_sort(self) -> None:
        """Sort the per-schema table by the next of JSONExact / field F1 / validity / count."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._fill_schemas()

    @on(DataTable.HeaderSelected, "#ev-schemas")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        keys = [k for k, _ in SORTS]
        if event.column_key.value in keys:
            self.sort_index = keys.index(event.column_key.value)
            self._fill_schemas()

    @on(DataTable.RowSelected, "#ev-schemas")
    def _schema_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.show_schema(str(event.row_key.value))

    def show_schema(self, schema_id: str) -> None:
        """Drill down to one schema's examples with their failure categories."""
        from engine.evaluate import predictions

        if self.run_id is None:
            return
        self.predictions = predictions(self.db, self.run_id, schema=schema_id)
        table = self.query_one("#ev-example-table", DataTable)
        table.clear(columns=True)
        table.add_columns("example", "exact", "field F1", "valid", "failure")
        for index, pred in enumerate(self.predictions):
            table.add_row(
                middle_cut(str(pred.get("example_id")), 18), yes_no(pred.get("json_exact")),
                fmt_ratio(pred.get("field_f1")), yes_no(pred.get("schema_valid")),
                Text(str(pred.get("failure") or "—"),
                     style="magenta" if pred.get("failure") else "green"),
                key=str(index),
            )
        table.border_title = f"{schema_id}: {len(self.predictions)} examples"
        self.query_one("#ev-tabs", TabbedContent).active = "ev-examples"
        table.focus()
        if self.predictions:
            self.show_prediction(0)

    @on(DataTable.RowHighlighted, "#ev-example-table")
    @on(DataTable.RowSelected, "#ev-example-table")
    def _example_selected(self, event) -> None:
        event.stop()
        self.show_prediction(int(event.row_key.value))

    def show_prediction(self, index: int) -> None:
        """Show one example's prompt, expected, got and path-level diff."""
        if 0 <= index < len(self.predictions):
            self.query_one("#ev-detail", ExampleDetail).show(self.predictions[index])

    def action_back(self) -> None:
        """From an example back to the per-schema results."""
        self.query_one("#ev-tabs", TabbedContent).active = "ev-results"
        self.query_one("#ev-schemas", DataTable).focus()

    # --- past evaluations and compare -------------------------------------------------------

    def refresh_history(self) -> None:
        """List every evaluation in runs.db, newest first."""
        from engine import runlog

        scores = runlog.evaluations_by_run(self.db)
        table = self.query_one("#ev-history-table", DataTable)
        table.clear(columns=True)
        table.add_columns("", "id", "status", "model", "adapter", "data", "decoding", "n",
                          "JSONExact", "field F1")
        for run in runlog.list_runs(self.db, kind="eval"):
            ev = scores.get(run["id"], {})
            config = _json(run.get("config"))
            decoding = preset_label(_json(ev.get("decoding")) or config.get("decoding") or {})
            constrained = ev.get("constrained") or config.get("constrained")
            decoding = f"{decoding}, {'constr.' if constrained else 'unconstr.'}"
            table.add_row(
                self._mark_label(run["id"]), str(run["id"]), str(run.get("status")),
                short(str(run.get("model") or ev.get("model") or ""), 20),
                short(Path(str(run.get("adapter") or "")).name or "-", 16),
                Path(str(run.get("data_path") or ev.get("data_path") or "")).name,
                decoding, str(ev.get("n_examples") or "-"),
                fmt_ratio(ev.get("json_exact")), fmt_ratio(ev.get("field_f1")),
                key=str(run["id"]),
            )

    def _mark_label(self, run_id: int) -> Text:
        if run_id in self.marked:
            return Text("AB"[self.marked.index(run_id)], style="bold reverse")
        return Text(" ")

    def action_history(self) -> None:
        """Show the list of past evaluations."""
        self.refresh_history()
        self.query_one("#ev-tabs", TabbedContent).active = "ev-history"
        self.query_one("#ev-history-table", DataTable).focus()

    @on(DataTable.RowSelected, "#ev-history-table")
    def _history_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.show_run(int(event.row_key.value))

    def _highlighted_history_run(self) -> int | None:
        table = self.query_one("#ev-history-table", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value)

    def action_mark(self) -> None:
        """Mark the highlighted past evaluation as A or B for Compare (again to unmark)."""
        if self.query_one("#ev-tabs", TabbedContent).active != "ev-history":
            self.action_history()
            return
        run_id = self._highlighted_history_run()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = (self.marked + [run_id])[-2:]
        table = self.query_one("#ev-history-table", DataTable)
        for rid in table.rows:
            table.update_cell(rid, table.ordered_columns[0].key, self._mark_label(int(rid.value)))

    def action_compare(self, a: int | None = None, b: int | None = None) -> None:
        """Compare the two marked evaluations (A, then B) side by side."""
        if a is None or b is None:
            if len(self.marked) != 2:
                self.notify("Mark two evaluations with m in Past evaluations first.",
                            severity="warning")
                self.action_history()
                return
            a, b = self.marked
        self.compare(a, b)

    def compare(self, a: int, b: int) -> None:
        from engine.evaluate import compare

        try:
            result = compare(self.db, int(a), int(b))
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.notify(f"compare {a} with {b}: {error_message(exc)}", severity="error")
            return
        fill_compare(self, result)
        self.query_one("#ev-tabs", TabbedContent).active = "ev-compare"
        self.query_one("#ev-compare-schemas", DataTable).focus()

    # Tab switches inside this pane are its own business, not the app's.
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()


def _keyword_message(exc: TypeError, function: str) -> str:
    """A TypeError from an engine call that does not take a keyword yet, said plainly."""
    text = str(exc)
    if "unexpected keyword" in text:
        return (f"engine.evaluate.{function} in this install does not accept a setting the "
                f"workbench sent ({text}); update the engine")
    return error_message(exc)


def preset_label(decoding: dict) -> str:
    """The preset a stored decoding config matches, else "custom"."""
    try:
        from engine.decoding import PRESETS
    except ImportError:
        return "?"
    for name, cfg in PRESETS.items():
        if all(decoding.get(k) == v for k, v in cfg.to_dict().items()):
            return name
    return "custom" if decoding else "?"


def _top_failure(failures, schema_id: str) -> str:
    """The most common failure category of one schema, from the report's schema x failure table."""
    counts = failures.get(schema_id) if isinstance(failures, dict) else None
    if not counts and isinstance(failures, list):
        counts = {r.get("failure"): count_of(r) for r in failures
                  if r.get("schema_id") == schema_id}
    counts = {k: v for k, v in (counts or {}).items() if k}
    if not counts:
        return ""
    return max(counts.items(), key=lambda kv: kv[1])[0]


def _json(value) -> dict:
    import json

    if isinstance(value, dict):
        return value
    try:
        decoded = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
