"""The Runs pane: every run in the run log with its kind, status, start, duration and key figure.
Opening a run asks the app to show it in the pane it belongs to; deleting asks first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from tui.widgets import (
    ConfirmScreen,
    JsonView,
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


def _last_metric(db, run_id: int, name: str) -> float | None:
    from engine import runlog

    rows = runlog.metrics(db, run_id, name=name)
    return rows[-1]["value"] if rows else None


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


def key_figure(db, run: dict) -> str:
    """The one number that says how a run went: the best checkpoint's validation score (else
    the loss), exact-match score, or findings count."""
    from engine import runlog

    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    kind = run["kind"]
    if kind == "train" and best_figure(run):
        return best_figure(run)
    if kind == "train":
        parts = []
        for name, label in (("val_loss", "val"), ("train_loss", "loss")):
            value = summary.get(f"final_{name}", summary.get(name))
            if value is None:
                value = _last_metric(db, run["id"], name)
            if value is not None:
                parts.append(f"{label} {value:.3f}")
        return " · ".join(parts)
    if kind == "eval":
        ev = runlog.evaluation(db, run["id"]) or summary
        parts = []
        if ev.get("json_exact") is not None:
            parts.append(f"exact {100 * ev['json_exact']:.1f}%")
        if ev.get("field_f1") is not None:
            parts.append(f"F1 {ev['field_f1']:.3f}")
        return " · ".join(parts)
    if kind == "validate":
        counts = runlog.validation_counts(db, run["id"])
        if not counts:
            return "no findings" if run["status"] == "completed" else ""
        short = {"error": "err", "warning": "warn", "info": "info"}
        return " ".join(f"{counts[s]} {short[s]}" for s in short if s in counts)
    return ""


def run_label(run: dict) -> str:
    """What a run worked on: its name, else its data file and model."""
    if run.get("name"):
        return run["name"]
    parts = [p for p in (run.get("model"), run.get("data_path")) if p]
    if not parts and isinstance(run.get("config"), dict):
        cfg = run["config"]
        parts = [str(cfg.get(k)) for k in ("model", "data", "paths") if cfg.get(k)]
    return " · ".join(parts)


class RunsPane(Vertical):
    """A table of runs with the selected run's config and results below it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_run", "Open"),
        Binding("x,delete", "delete_run", "Delete"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    @dataclass
    class OpenRun(Message):
        """Asks the app to show a run in the pane it belongs to."""

        run_id: int
        kind: str

    @dataclass
    class Loaded(Message):
        """The runs read from the run log, each with its key figure."""

        runs: list[dict]

    def __init__(self, db_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_path = db_path
        self.runs: dict[int, dict] = {}

    def compose(self) -> ComposeResult:
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("ID", "Kind", "Status", "Started", "Duration", "Key figure", "What")
        yield table
        with VerticalScroll(id="run-detail"):
            yield Static(id="run-summary")
            yield JsonView(id="run-config")

    def on_mount(self) -> None:
        self.query_one("#run-summary", Static).update("No runs yet.")
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

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs-load", exit_on_error=False)
    def _load(self) -> None:
        from engine import runlog

        db = open_db(self.db_path)
        try:
            runs = runlog.list_runs(db)
            for run in runs:
                if get_current_worker().is_cancelled:
                    return
                run["key_figure"] = key_figure(db, run)
        finally:
            db.conn.close()
        self.post_message(self.Loaded(runs))

    def on_runs_pane_loaded(self, message: Loaded) -> None:
        runs = {run["id"]: run for run in message.runs}
        if runs == self.runs and self.query_one("#runs-table", DataTable).row_count == len(runs):
            return  # nothing changed: keep the table (and the cursor) as they are
        table = self.query_one("#runs-table", DataTable)
        selected = self.selected_run_id()
        self.runs = runs
        table.clear()
        for run in message.runs:
            status = run["status"]
            table.add_row(
                str(run["id"]),
                run["kind"],
                f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
                format_time(run.get("started")),
                format_duration(run_duration(run)),
                run["key_figure"],
                run_label(run),
                key=str(run["id"]),
            )
        if selected in self.runs:
            table.move_cursor(row=table.get_row_index(str(selected)), animate=False)
        self._show_detail()

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
            summary.update("No runs yet." if not self.runs else "")
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

    def _delete(self, run_id: int) -> None:
        from engine import runlog

        db = open_db(self.db_path)
        try:
            runlog.delete_run(db, run_id)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.notify(f"Could not delete run #{run_id}: {short_error(exc)}", severity="error")
            return
        finally:
            db.conn.close()
        self.notify(f"Deleted run #{run_id}.")
        self.action_refresh()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "…"
    return str(value)
