"""Curves of several training runs on one chart: their training loss, and their validation
JSONExact where they logged one. Opened from the Runs pane with the marked runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets import open_db, short_error

# One colour per run, in the order the runs are listed.
COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white")
SERIES = ("train_loss", "val_loss", "val_json_exact")


def run_color(index: int) -> str:
    return COLORS[index % len(COLORS)]


class CurvesScreen(ModalScreen):
    """The loss curves of `run_ids` overlaid, and their validation JSONExact when present."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("v", "toggle_val_loss", "Val loss"),
    ]
    DEFAULT_CSS = """
    CurvesScreen { align: center middle; }
    CurvesScreen > Vertical {
        width: 100%; height: 100%; border: round $primary; background: $surface;
    }
    CurvesScreen #curves-legend { height: auto; max-height: 6; padding: 0 1; }
    CurvesScreen #curves-charts { height: 1fr; }
    CurvesScreen #curves-loss, CurvesScreen #curves-exact { width: 1fr; height: 1fr; }
    """

    @dataclass
    class Read(Message):
        """Each run's series {name: {step: value}}, or the error that stopped the read."""

        series: dict[int, dict[str, dict[int, float]]]
        error: str | None = None

    def __init__(self, db_path: str, run_ids: list[int], labels: dict[int, str]) -> None:
        super().__init__()
        self.db_path = db_path
        self.run_ids = list(run_ids)
        self.labels = dict(labels)
        self.series: dict[int, dict[str, dict[int, float]]] = {}
        self.show_val_loss = False

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        with Vertical() as box:
            box.border_title = "Curves of runs " + ", ".join(f"#{i}" for i in self.run_ids)
            box.border_subtitle = "v val loss · esc close"
            yield Static("reading the runs' metrics…", id="curves-legend")
            with Horizontal(id="curves-charts"):
                yield PlotextPlot(id="curves-loss")
                yield PlotextPlot(id="curves-exact")

    def on_mount(self) -> None:
        self.query_one("#curves-exact").display = False
        self._read()

    @work(thread=True, exclusive=True, group="curves-read", exit_on_error=False)
    def _read(self) -> None:
        from engine import runlog

        series: dict[int, dict[str, dict[int, float]]] = {}
        try:
            db = open_db(self.db_path)
            try:
                for run_id in self.run_ids:
                    runs = series.setdefault(run_id, {})
                    for row in runlog.metrics(db, run_id):
                        if row["name"] in SERIES:
                            runs.setdefault(row["name"], {})[row["step"]] = row["value"]
            finally:
                runlog.close(db)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.post_message(self.Read({}, short_error(exc)))
            return
        self.post_message(self.Read(series))

    def on_curves_screen_read(self, message: Read) -> None:
        if message.error:
            self.query_one("#curves-legend", Static).update(
                f"[red]Could not read the runs' metrics: {escape(message.error)}[/red]"
            )
            return
        self.series = message.series
        self._draw()

    def has_exact(self) -> bool:
        return any(s.get("val_json_exact") for s in self.series.values())

    def _draw(self) -> None:
        from textual_plotext import PlotextPlot

        legend = []
        loss = self.query_one("#curves-loss", PlotextPlot)
        plt = loss.plt
        plt.clear_data()
        plt.xlabel("step")
        exact_chart = self.query_one("#curves-exact", PlotextPlot)
        exact_chart.display = self.has_exact()
        ex = exact_chart.plt
        ex.clear_data()
        ex.xlabel("step")
        for index, run_id in enumerate(self.run_ids):
            color = run_color(index)
            runs = self.series.get(run_id, {})
            parts = [f"[{color}]■[/] #{run_id} {escape(self.labels.get(run_id, ''))}"]
            names = ["train_loss"] + (["val_loss"] if self.show_val_loss else [])
            for name in names:
                values = runs.get(name)
                if values:
                    steps = sorted(values)
                    suffix = "" if name == "train_loss" else " val"
                    plt.plot(
                        steps,
                        [values[s] for s in steps],
                        label=f"#{run_id}{suffix}",
                        color=color,
                        marker="braille" if name == "train_loss" else "dot",
                    )
            train = runs.get("train_loss")
            if train:
                parts.append(f"loss {train[max(train)]:.4f} @ {max(train)}")
            else:
                parts.append("no logged loss")
            exact = runs.get("val_json_exact")
            if exact:
                steps = sorted(exact)
                ex.plot(
                    steps,
                    [100 * exact[s] for s in steps],
                    label=f"#{run_id}",
                    color=color,
                    marker="braille",
                )
                best = max(steps, key=lambda s: exact[s])
                parts.append(f"best JSONExact {100 * exact[best]:.1f}% @ {best}")
            legend.append(" · ".join(parts))
        plt.title("train loss" + (" and val loss (dots)" if self.show_val_loss else ""))
        ex.ylim(0, 100)
        ex.title("val JSONExact (%)")
        loss.refresh()
        exact_chart.refresh()
        self.query_one("#curves-legend", Static).update("\n".join(legend))

    def action_toggle_val_loss(self) -> None:
        self.show_val_loss = not self.show_val_loss
        self._draw()

    def action_close(self) -> None:
        self.dismiss()
