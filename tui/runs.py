"""The Runs pane: every run in the run log with its kind, status, start, duration and key figure.
Opening a run asks the app to show it in the pane it belongs to; deleting asks first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import get_current_worker

from tui.widgets import (
    ConfirmScreen,
    JsonView,
    TextInput,
    format_duration,
    format_time,
    open_db,
    run_duration,
    short_error,
)

REFRESH_S = 5.0
STATUS_STYLE = {
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "magenta",
}


def best_figure(run: dict) -> str:
    """`best JSONExact 41.2% @ step 120` from a training run's summary, or '' without one."""
    from tui.train_live import SELECT_BY, fmt_value

    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    step, value = summary.get("best_step"), summary.get("best_metric")
    if step is None or not isinstance(value, (int, float)):
        return ""
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    select_by = str(config.get("select_by") or "json_exact")
    _, label, kind = SELECT_BY.get(select_by, ("", select_by, "f1"))
    return f"best {label} {fmt_value(float(value), kind)} @ step {step}"


def key_figure(run: dict) -> str:
    """The one number that says how a run went: the best checkpoint's validation score (else
    the loss), exact-match score, or findings count; from the figures the run log read with
    the run (`runlog.runs_with_figures`)."""
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    figures = run.get("figures") or {}
    kind = run["kind"]
    if kind == "train" and best_figure(run):
        return best_figure(run)
    if kind == "train":
        parts = []
        for name, label in (("val_loss", "val"), ("train_loss", "loss")):
            value = summary.get(f"final_{name}", summary.get(name))
            if value is None:
                value = figures.get(name)
            if value is not None:
                parts.append(f"{label} {value:.3f}")
        return " · ".join(parts)
    if kind == "eval":
        has_row = any(figures.get(k) is not None for k in ("json_exact", "field_f1"))
        ev = figures if has_row else summary
        parts = []
        if ev.get("json_exact") is not None:
            parts.append(f"exact {100 * ev['json_exact']:.1f}%")
        if ev.get("field_f1") is not None:
            parts.append(f"F1 {ev['field_f1']:.3f}")
        return " · ".join(parts)
    if kind == "validate":
        counts = figures.get("counts") or {}
        if not counts:
            return "no findings" if run["status"] == "completed" else ""
        short = {"error": "err", "warning": "warn", "info": "info"}
        return " ".join(f"{counts[s]} {short[s]}" for s in short if s in counts)
    return ""


def adapter_label(adapter: str) -> str:
    """An adapter as a short name: a spec (`3:best`) as it is, a folder by its last two telling
    parts (`run-3/step-000062` for `.../run-3/checkpoints/step-000062/adapter`)."""
    if "/" not in adapter:
        return adapter
    parts = [p for p in Path(adapter).parts if p not in ("/", "checkpoints", "adapter")]
    return "/".join(parts[-2:]) or adapter


def run_label(run: dict) -> str:
    """What a run worked on: its name, else its data file and model. An evaluation also says
    which model and adapter it scored."""
    if run.get("name"):
        if run.get("kind") != "eval":
            return run["name"]
        scored = [str(run["model"])] if run.get("model") else []
        if run.get("adapter"):
            scored.append(adapter_label(str(run["adapter"])))
        extra = " + ".join(p for p in scored if p not in run["name"])
        return f"{run['name']} · {extra}" if extra else run["name"]
    parts = [p for p in (run.get("model"), run.get("data_path")) if p]
    if not parts and isinstance(run.get("config"), dict):
        cfg = run["config"]
        parts = [str(cfg.get(k)) for k in ("model", "data", "paths") if cfg.get(k)]
    return " · ".join(parts)


KINDS = ("train", "eval", "validate")
STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")


def run_matches(run: dict, query: str) -> bool:
    """Whether a run passes the filter `query`: each word must hold. A kind or a status word
    (`train`, `failed`) must be the run's kind or status; `kind:x` and `status:x` likewise; any
    other word must occur in its name, model, adapter, data file or key figure."""
    haystack = " ".join(
        str(run.get(k) or "") for k in ("name", "model", "adapter", "data_path", "key_figure")
    )
    cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
    haystack += " " + " ".join(
        str(cfg.get(k) or "") for k in ("model", "train_data", "val_data", "data", "adapter")
    )
    haystack = (haystack + " " + run_label(run)).lower()
    for word in query.lower().split():
        field, _, value = word.partition(":")
        if value and field in ("kind", "status"):
            if str(run.get(field) or "") != value:
                return False
        elif word in KINDS:
            if run["kind"] != word:
                return False
        elif word in STATUSES:
            if run["status"] != word:
                return False
        elif word.lstrip("#").isdigit() and word.startswith("#"):
            if str(run["id"]) != word[1:]:
                return False
        elif word not in haystack:
            return False
    return True


def eval_data_for(run: dict) -> str | None:
    """The file to evaluate a training run on: its data set's test file (beside its training
    file, same data set and version), else its validation file; None when neither exists."""
    from engine.data.load import split_from_name, version_from_name

    cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
    train = cfg.get("train_data") or run.get("data_path")
    if train:
        train_path = Path(str(train))
        key = version_from_name(train_path)
        try:
            siblings = sorted(train_path.parent.iterdir())
        except OSError:
            siblings = []
        for path in siblings:
            if (
                path.suffix == train_path.suffix
                and path != train_path
                and split_from_name(path) == "test"
                and version_from_name(path) == key
            ):
                return str(path)
    val = cfg.get("val_data")
    if val and Path(str(val)).is_file():
        return str(val)
    return None


class RunsPane(Vertical):
    """A table of runs with the selected run's config and results below it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_run", "Open"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Curves"),
        Binding("e", "evaluate_run", "Evaluate"),
        Binding("x,delete", "delete_run", "Delete"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]

    @dataclass
    class OpenRun(Message):
        """Asks the app to show a run in the pane it belongs to."""

        run_id: int
        kind: str

    @dataclass
    class EvaluateRun(Message):
        """Asks the app to open Evaluate with a training run's adapter and model, and the
        file to evaluate on (None: keep the form's choice)."""

        run_id: int
        model: str | None
        data: str | None

    @dataclass
    class Loaded(Message):
        """The runs read from the run log, each with its key figure."""

        runs: list[dict]

    @dataclass
    class Deleted(Message):
        """A delete finished: `error` is None when the run is gone."""

        run_id: int
        error: str | None

    def __init__(self, db_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_path = db_path
        self.runs: dict[int, dict] = {}
        self.query_text = ""  # the filter; '' shows every run
        self.marked: set[int] = set()  # training runs picked for the curves overlay

    def compose(self) -> ComposeResult:
        with Horizontal(id="runs-filter-row"):
            yield Label("filter ")
            yield TextInput(
                placeholder="train, failed, a name, model or data file (esc clears)",
                id="runs-filter",
                compact=True,
            )
            yield Static(id="runs-count")
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("ID", "Kind", "Status", "Started", "Duration", "Key figure", "What")
        yield table
        with VerticalScroll(id="run-detail"):
            yield Static(id="run-summary")
            yield JsonView(id="run-config")

    def on_mount(self) -> None:
        self.query_one("#run-summary", Static).update("No runs yet.")
        self.query_one("#runs-filter-row").display = False
        self.action_refresh()
        # Polls the run log only while the pane is on screen (paused on Hide, resumed on Show).
        self._poll = self.set_interval(REFRESH_S, self.action_refresh, name="runs-poll")

    def on_show(self) -> None:
        self._poll.resume()
        self.action_refresh()

    def on_hide(self) -> None:
        self._poll.pause()

    def focus_default(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    def focus_main(self) -> None:
        """Escape from the filter lands on the table (the filter stays; escape again clears)."""
        self.focus_default()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs-load", exit_on_error=False)
    def _load(self) -> None:
        from engine import runlog

        db = open_db(self.db_path)
        try:
            runs = runlog.runs_with_figures(db)  # one query, whatever the number of runs
        finally:
            runlog.close(db)
        if get_current_worker().is_cancelled:
            return
        for run in runs:
            run["key_figure"] = key_figure(run)
        self.post_message(self.Loaded(runs))

    def on_runs_pane_loaded(self, message: Loaded) -> None:
        runs = {run["id"]: run for run in message.runs}
        if runs == self.runs:
            return  # nothing changed: keep the table (and the cursor) as they are
        self.runs = runs
        self.marked &= set(runs)
        self._fill_table()

    def shown_runs(self) -> list[dict]:
        """The runs the filter lets through, newest first."""
        return [run for run in self.runs.values() if run_matches(run, self.query_text)]

    def _fill_table(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        selected = self.selected_run_id()
        table.clear()
        shown = self.shown_runs()
        for run in shown:
            status = run["status"]
            table.add_row(
                self._id_cell(run["id"]),
                run["kind"],
                f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
                format_time(run.get("started")),
                format_duration(run_duration(run)),
                run["key_figure"],
                run_label(run),
                key=str(run["id"]),
            )
        if selected is not None and any(run["id"] == selected for run in shown):
            table.move_cursor(row=table.get_row_index(str(selected)), animate=False)
        self._show_count(len(shown))
        self._show_detail()

    def _id_cell(self, run_id: int) -> str:
        return f"*{run_id}" if run_id in self.marked else str(run_id)

    def _show_count(self, n_shown: int) -> None:
        row = self.query_one("#runs-filter-row")
        editing = self.app.focused is self.query_one("#runs-filter", Input)
        row.display = bool(self.query_text) or editing
        marks = f" · {len(self.marked)} marked" if self.marked else ""
        self.query_one("#runs-count", Static).update(f"{n_shown} of {len(self.runs)}{marks}")

    # --- filter -------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter box and type into it; enter or escape goes back to the table."""
        self.query_one("#runs-filter-row").display = True
        self.query_one("#runs-filter", Input).focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self._fill_table()

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_default()
        self._show_count(len(self.shown_runs()))

    def action_clear_filter(self) -> None:
        """Show every run again."""
        self.query_one("#runs-filter", Input).value = ""
        self.query_text = ""
        self._fill_table()
        self.focus_default()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "clear_filter":
            return bool(self.query_text)
        return True

    # --- marks and curves ---------------------------------------------------------------

    def action_mark(self) -> None:
        """Mark or unmark the selected training run for the curves overlay."""
        run = self.runs.get(self.selected_run_id() or -1)
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        if run["kind"] != "train":
            self.notify("Only training runs have curves to compare.", severity="warning")
            return
        self.marked ^= {run["id"]}
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(str(run["id"]), self._id_column, self._id_cell(run["id"]))
        self._show_count(table.row_count)

    @property
    def _id_column(self):
        return self.query_one("#runs-table", DataTable).ordered_columns[0].key

    def action_compare(self) -> None:
        """The loss (and validation JSONExact) curves of the marked training runs on one chart."""
        from tui.overlay import CurvesScreen

        ids = sorted(i for i in self.marked if i in self.runs)
        if len(ids) < 2:
            self.notify("Mark two or more training runs (space), then press c.", severity="warning")
            return
        labels = {i: run_label(self.runs[i]) for i in ids}
        self.app.push_screen(CurvesScreen(self.db_path, ids, labels))

    # --- evaluate -----------------------------------------------------------------------

    def action_evaluate_run(self) -> None:
        """Open Evaluate with the selected training run's adapter (its best checkpoint), its
        model and its data set's test file."""
        run = self.runs.get(self.selected_run_id() or -1)
        if run is None or run["kind"] != "train":
            self.notify("Select a training run to evaluate its adapter.", severity="warning")
            return
        request_evaluation(self, run)

    # --- open, delete -------------------------------------------------------------------

    def selected_run_id(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except LookupError:  # cursor outside the table while it refills
            return None
        return int(key.value) if key.value is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def _show_detail(self) -> None:
        summary = self.query_one("#run-summary", Static)
        config = self.query_one("#run-config", JsonView)
        run = self.runs.get(self.selected_run_id() or -1)
        if run is None:
            if not self.runs:
                summary.update("No runs yet.")
            elif self.query_text:
                summary.update("No run matches the filter (escape shows every run).")
            else:
                summary.update("")
            config.show_text("")
            return
        lines = [f"[b]Run #{run['id']}[/b] · {run['kind']} · {run['status']}"]
        if run.get("out_dir"):
            lines.append(f"output: {run['out_dir']}")
        if isinstance(run.get("summary"), dict) and run["summary"]:
            figures = ", ".join(f"{k}={_fmt(v)}" for k, v in run["summary"].items())
            lines.append(f"results: {figures}")
        if run.get("error"):
            lines.append(f"[red]error: {run['error'].strip().splitlines()[-1]}[/red]")
        lines.append("[dim]config:[/dim]")
        summary.update("\n".join(lines))
        config.show(run.get("config") or {})

    def action_open_run(self) -> None:
        run = self.runs.get(self.selected_run_id() or -1)
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        self.post_message(self.OpenRun(run["id"], run["kind"]))

    def action_delete_run(self) -> None:
        run = self.runs.get(self.selected_run_id() or -1)
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        if run["status"] == "running":
            self.notify(
                f"Run #{run['id']} is still running; cancel it first (Train pane, key c).",
                severity="warning",
            )
            return
        run_id = run["id"]

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(run_id)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete run #{run_id} ({run['kind']}, {run['status']}) and its metrics, "
                "findings and predictions from the run log? Files on disk are kept.",
                yes="Delete",
            ),
            answered,
        )

    @work(thread=True, group="runs-delete", exit_on_error=False)
    def _delete(self, run_id: int) -> None:
        """Delete in a worker (a write that may wait for the run log's lock)."""
        from engine import runlog

        try:
            db = open_db(self.db_path)
            try:
                runlog.delete_run(db, run_id)
            finally:
                runlog.close(db)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.post_message(self.Deleted(run_id, short_error(exc)))
            return
        self.post_message(self.Deleted(run_id, None))

    def on_runs_pane_deleted(self, message: Deleted) -> None:
        if message.error:
            self.notify(
                f"Could not delete run #{message.run_id}: {message.error}", severity="error"
            )
            return
        self.marked.discard(message.run_id)
        self.notify(f"Deleted run #{message.run_id}.")
        self.action_refresh()


def request_evaluation(widget: Widget, run: dict) -> None:
    """From `widget`, ask the app (in a worker: the test file is looked up on disk) to open
    Evaluate on a training run's adapter, model and test file."""

    def find() -> None:
        cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
        model = cfg.get("model") or run.get("model")
        message = RunsPane.EvaluateRun(run["id"], str(model) if model else None, eval_data_for(run))
        widget.post_message(message)

    widget.run_worker(find, thread=True, group="runs-evaluate", exit_on_error=False)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "…"
    return str(value)
