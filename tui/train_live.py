"""The Train pane's live view: follows one training run by tailing its metric rows from the run
log once a second. Loss on one chart, the validation schema metrics (JSONExact, field F1) on a
second, progress and speed, the last in-training evaluation and how long it took, and which
checkpoint is best (the one `RUN_ID` means to the Playground, Evaluate and export)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from tui.widgets import QuietProgressBar, format_duration, open_db, run_duration

TAIL_EVERY_S = 1.0
STATUS_STYLE = {
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "magenta",
}
# The validation schema metrics the training loop logs at each evaluation: (name, label, kind);
# kind "rate" shows a 0..1 share as a percentage, "f1" as three decimals.
VAL_METRICS = (
    ("val_json_exact", "JSONExact", "rate"),
    ("val_field_f1", "field F1", "f1"),
    ("val_schema_valid", "valid", "rate"),
    ("val_parse_rate", "parses", "rate"),
    ("val_truncated", "truncated", "rate"),
)
# select_by -> (metric name in the series and in a checkpoint's metrics, label, kind)
SELECT_BY = {
    "json_exact": ("val_json_exact", "JSONExact", "rate"),
    "field_f1": ("val_field_f1", "field F1", "f1"),
    "val_loss": ("val_loss", "val loss", "loss"),
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def fmt_value(value: float | None, kind: str) -> str:
    """A metric the engine computed, formatted by kind ("-" when absent)."""
    if value is None:
        return "-"
    if kind == "rate":
        return f"{100 * value:.1f}%"
    if kind == "f1":
        return f"{value:.3f}"
    return f"{value:.4f}"


def best_text(run: dict | None, best: dict | None) -> str:
    """`best: step 120 · JSONExact 41.2%` from the run's summary (after the run) or the run
    log's best checkpoint (during it); '' when neither says."""
    run = run or {}
    cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    select_by = str(cfg.get("select_by") or "json_exact")
    name, label, kind = SELECT_BY.get(select_by, (f"val_{select_by}", select_by, "f1"))
    step, value = summary.get("best_step"), summary.get("best_metric")
    if step is None and best:
        step = best.get("step")
        metrics = best.get("metrics")
        if isinstance(metrics, str):
            import json

            try:
                metrics = json.loads(metrics)
            except ValueError:
                metrics = None
        if isinstance(metrics, dict):
            value = metrics.get(name, metrics.get(select_by))
    if step is None:
        return ""
    parts = [f"[b]best: step {step}[/b]"]
    if isinstance(value, (int, float)):
        parts[0] += f" [b]· {label} {fmt_value(float(value), kind)}[/b]"
    if summary.get("stopped_early"):
        parts.append("[yellow]stopped early[/yellow]")
    share = summary.get("val_eval_share")
    if isinstance(share, (int, float)):
        parts.append(f"evals {100 * share:.0f}% of run time")
    return " · ".join(parts)


class LiveView(Vertical, can_focus=True):
    """Follows one training run: reads only new metric rows once a second and redraws."""

    @dataclass
    class Tailed(Message):
        """The run's row, its metric rows after the last step read, and its best checkpoint."""

        run_id: int
        run: dict | None
        rows: list[dict]
        best: dict | None = None
        n_checkpoints: int = 0

    def __init__(self, db_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_path = db_path
        self.run_id: int | None = None
        self.run: dict | None = None
        self.best: dict | None = None  # the run log's best checkpoint row, if marked
        self.status: str | None = None
        self.series: dict[str, dict[int, float]] = {}
        self.show_lr = False
        self.n_checkpoints = 0  # checkpoints on disk: resume needs one
        self.cancel_sent_for: int | None = None  # the run a cancel was sent to
        self._done = False  # the run has ended and its last rows are read

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield Static(id="live-title")
        with Horizontal(id="live-progress-row"):
            yield QuietProgressBar(id="live-progress")
            yield Static(id="live-stats")
        yield Static(id="live-val")
        with Horizontal(id="live-charts"):
            yield PlotextPlot(id="live-chart")
            yield PlotextPlot(id="live-schema-chart")
        yield Static(id="live-error")

    def on_mount(self) -> None:
        self.query_one("#live-title", Static).update(
            "No training run on show: launch one from the form (ctrl+l), or open one in Runs."
        )
        # Tails only while on screen (paused on Hide); showing it again reads at once.
        self._follow = self.set_interval(TAIL_EVERY_S, self._tick, name="live-tail", pause=True)
        self._bindings_key: tuple | None = None
        self._draw()

    def on_show(self) -> None:
        self._follow.resume()
        self._tick()

    def on_hide(self) -> None:
        self._follow.pause()

    def attach(self, run_id: int) -> None:
        self.run_id, self.run, self.status, self.best = run_id, None, None, None
        self.series = {}
        self.n_checkpoints = 0
        self._done = False
        self._tail(run_id, -1)  # read at once, on screen or not

    def can_cancel(self) -> bool:
        """A run is on show that is running, or not read yet (just re-attached): the engine
        reads its status again before it signals anything."""
        return self.run_id is not None and self.status in (None, "running")

    def can_resume(self) -> bool:
        """A stopped run with a checkpoint to continue from."""
        return (
            self.run_id is not None
            and self.n_checkpoints > 0
            and self.status in ("cancelled", "failed", "interrupted")
        )

    def cancel_requested(self, run_id: int) -> None:
        """A cancel went to `run_id`: say so until the run stops."""
        if run_id == self.run_id:
            self.cancel_sent_for = run_id
            self._draw_text()

    def toggle_lr(self) -> None:
        self.show_lr = not self.show_lr
        self._draw()

    def last_step(self) -> int:
        return max((max(s) for s in self.series.values() if s), default=-1)

    def _tick(self) -> None:
        if not self.region:  # not on screen (a hidden tab or view): nothing to draw
            return
        if self.run_id is not None and not self._done:
            # Re-read the last step: its validation rows may land after its training rows.
            self._tail(self.run_id, self.last_step() - 1)

    @work(thread=True, exclusive=True, group="train-tail", exit_on_error=False)
    def _tail(self, run_id: int, after_step: int) -> None:
        from engine import runlog

        try:
            db = open_db(self.db_path)
            try:
                run = runlog.get_run(db, run_id)
                rows = runlog.metrics(db, run_id, after_step=after_step)
                # The best checkpoint is an engine read added with in-training evaluation; a
                # run log without it simply has no best to show.
                best_checkpoint = getattr(runlog, "best_checkpoint", None)
                best = best_checkpoint(db, run_id) if best_checkpoint else None
                saved = [c for c in runlog.checkpoints(db, run_id) if Path(c["path"]).is_dir()]
            finally:
                runlog.close(db)
        except Exception as exc:  # noqa: BLE001 - a busy or damaged log; try again next tick
            self.log.warning(f"tailing run {run_id}: {exc}")
            return
        self.post_message(self.Tailed(run_id, run, rows, best, len(saved)))

    def on_live_view_tailed(self, message: Tailed) -> None:
        if message.run_id != self.run_id:
            return
        for row in message.rows:
            self.series.setdefault(row["name"], {})[row["step"]] = row["value"]
        self.run = message.run
        self.best = message.best
        self.n_checkpoints = message.n_checkpoints
        self.status = message.run["status"] if message.run else "deleted"
        # Rows are written before a run is closed, so one read after the end has them all.
        self._done = self.status != "running"
        self._draw()
        key = (self.run_id, self.status, self.n_checkpoints)
        if key != self._bindings_key:  # Cancel/Resume follow the status (not every tick:
            self._bindings_key = key  # each refresh rebuilds the footer)
            self.screen.refresh_bindings()

    def best_step(self) -> int | None:
        """The best checkpoint's step: the run's summary once it ended, else the run log's mark."""
        summary = (self.run or {}).get("summary")
        if isinstance(summary, dict) and summary.get("best_step") is not None:
            return int(summary["best_step"])
        return int(self.best["step"]) if self.best else None

    def _latest(self, name: str) -> float | None:
        values = self.series.get(name)
        return values[max(values)] if values else None

    def _draw(self) -> None:
        self._draw_text()
        self._draw_val()
        self._draw_chart()
        self._draw_schema_chart()

    def _draw_text(self) -> None:
        if self.run_id is None:
            return
        run = self.run or {}
        cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
        style = STATUS_STYLE.get(self.status or "", "")
        data = (
            Path(cfg["train_data"]).parent.name + "/" + Path(cfg["train_data"]).stem
            if cfg.get("train_data")
            else ""
        )
        status = self.status or "…"
        if self.status == "running" and self.cancel_sent_for == self.run_id:
            status = "cancelling (saving a checkpoint)"
        title = [
            f"[b]Run #{self.run_id}[/b]",
            f"[{style}]{escape(status)}[/]" if style else escape(status),
            escape(str(cfg.get("model", run.get("model") or ""))),
            escape(data),
        ]
        if cfg:
            title.append(
                f"r{_num(cfg.get('lora_r'))} α{_num(cfg.get('lora_alpha'))} "
                f"lr {_num(cfg.get('lr'))} "
                f"batch {cfg.get('batch_size')}×{cfg.get('grad_accum')}"
            )
        self.query_one("#live-title", Static).update(" · ".join(t for t in title if t))
        total = self._latest("total_steps")
        step = max(self.series.get("train_loss", {0: 0}))
        bar = self.query_one("#live-progress", ProgressBar)
        if total or self.status in (None, "running"):
            bar.update(total=total or None, progress=step)
        else:
            # Ended before its step count was known: a still bar, not an endless animation.
            bar.update(total=max(step, 1), progress=step)
        parts = [f"step {step}/{int(total) if total else '?'}"]
        for name, fmt in (
            ("epoch", "epoch {:.2f}"),
            ("tokens_per_s", "{:,.0f} tok/s"),
            ("train_loss", "loss {:.4f}"),
            ("val_loss", "val {:.4f}"),
        ):
            value = self._latest(name)
            if value is not None:
                parts.append(fmt.format(value))
        if self.status == "running" and self._latest("eta_s") is not None:
            parts.append(f"ETA {format_duration(self._latest('eta_s'))}")
        elif self.status and self.status != "running":
            parts.append(f"took {format_duration(run_duration(run))}")
        if self._latest("gpu_mem_gb") is not None:
            peak = self._latest("gpu_peak_gb")
            parts.append(
                f"GPU {self._latest('gpu_mem_gb'):.1f} GB"
                + (f" (peak {peak:.1f})" if peak is not None else "")
            )
        self.query_one("#live-stats", Static).update(" · ".join(parts))
        error = (run.get("error") or "").strip()
        self.query_one("#live-error", Static).update(
            f"[red]{escape(error.splitlines()[-1])}[/red]" if error else ""
        )

    def _draw_val(self) -> None:
        """The last in-training evaluation (its step, schema metrics, time) and the best."""
        box = self.query_one("#live-val", Static)
        exact = self.series.get("val_json_exact")
        if self.run_id is None or not exact:
            text = best_text(self.run, self.best) if self.run_id is not None else ""
            box.update(text)
            box.display = bool(text)
            return
        step = max(exact)
        parts = [f"val @ {step}:"]
        for name, label, kind in VAL_METRICS:
            value = self.series.get(name, {}).get(step)
            if value is not None:
                parts.append(f"{label} {fmt_value(value, kind)}")
        seconds = self.series.get("val_eval_s", {}).get(step)
        if seconds is not None:
            parts.append(f"eval took {format_duration(seconds)}")
        line = " ".join(parts[:2]) + "".join(f" · {p}" for p in parts[2:])
        best = best_text(self.run, self.best)
        box.update(line + (f"\n{best}" if best else ""))
        box.display = True

    def _draw_chart(self) -> None:
        from textual_plotext import PlotextPlot

        chart = self.query_one("#live-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.xlabel("step")
        drawn = False
        for name, label, color in (
            ("train_loss", "train loss", "cyan"),
            ("val_loss", "val loss", "orange"),
        ):
            values = self.series.get(name)
            if values:
                steps = sorted(values)
                plt.plot(
                    steps, [values[s] for s in steps], label=label, color=color, marker="braille"
                )
                drawn = True
        lr = self.series.get("lr")
        if self.show_lr and lr:
            steps = sorted(lr)
            plt.plot(
                steps,
                [lr[s] for s in steps],
                label="lr",
                color="gray",
                yside="right",
                marker="braille",
            )
        plt.title("loss" if drawn else "loss (waiting for the first logged step)")
        chart.refresh()

    def _draw_schema_chart(self) -> None:
        """JSONExact and field F1 (as %) per evaluation step; hidden until the first one."""
        from textual_plotext import PlotextPlot

        chart = self.query_one("#live-schema-chart", PlotextPlot)
        exact = self.series.get("val_json_exact")
        chart.display = bool(exact)
        if not exact:
            return
        plt = chart.plt
        plt.clear_data()
        plt.xlabel("step")
        for name, label, color in (
            ("val_json_exact", "JSONExact", "green"),
            ("val_field_f1", "field F1", "magenta"),
        ):
            values = self.series.get(name)
            if values:
                steps = sorted(values)
                plt.plot(
                    steps,
                    [100 * values[s] for s in steps],
                    label=label,
                    color=color,
                    marker="braille",
                )
        plt.ylim(0, 100)
        best = self.best_step()
        if best is not None:
            plt.vline(best, "yellow")
        plt.title("val schema metrics (%)" + (f" · best @ {best}" if best is not None else ""))
        chart.refresh()
