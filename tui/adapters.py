"""Choosing what to decode with, shared by the Playground and Evaluate panes: an adapter from the
run log's training runs (`RUN_ID` is its best checkpoint, else its final adapter; `RUN_ID:final`
and `RUN_ID:step-N` name one), and the prompt template (by default the one the adapter was
trained with, from its run's stored config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from tui.train_live import SELECT_BY, fmt_value
from tui.widgets import open_db, short_error

AUTO = "auto"  # the template choice that means "the adapter's training template"
DEFAULT_TEMPLATE = "schemalab"


def template_options() -> list[tuple[str, str]]:
    """(label, value) for a template Select: the adapter's own first, then the engine's list."""
    from engine.decode.prompt import TEMPLATES

    return [("adapter's template", AUTO), *((t, t) for t in TEMPLATES)]


def resolve_template(
    db_path: str, template: str, adapter: str | None, protocol: str = "schemalab"
) -> tuple[str, str | None]:
    """(the template to decode with, a warning or None), by engine.evaluate.run.choose_template: the
    choice, or for AUTO the adapter's training template (else schemalab); a template other than
    the adapter's training template gets the warning. Reads the run log: call it from a worker."""
    from engine import runlog
    from engine.evaluate.run import choose_template

    db = open_db(db_path)
    try:
        return choose_template(
            db, adapter or None, None if template == AUTO else template, protocol
        )
    finally:
        runlog.close(db)


@dataclass(frozen=True)
class AdapterChoice:
    """One pickable adapter: its spec (`3`, `3:final`, `3:step-40`), a label, and the prompt
    template its training run used."""

    spec: str
    label: str
    template: str


def _metrics_label(metrics: dict | None) -> str:
    parts = []
    for key in ("json_exact", "field_f1"):
        name, label, kind = SELECT_BY[key]
        value = (metrics or {}).get(name)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {fmt_value(float(value), kind)}")
    return " · ".join(parts)


def adapter_choices(db_path: str) -> list[AdapterChoice | str]:
    """Training runs, newest first: a heading per run, then `ID` (the best checkpoint, else the
    final adapter), `ID:final` when the run completed, and `ID:step-N` per checkpoint on record,
    the best one starred. Reads the run log: call it from a worker."""
    from engine import runlog

    db = open_db(db_path)
    try:
        runs = runlog.list_runs(db, kind="train")
        checkpoints = {run["id"]: runlog.checkpoints(db, run["id"]) for run in runs}
    finally:
        runlog.close(db)
    out: list[AdapterChoice | str] = []
    for run in runs:
        rid = run["id"]
        config = run.get("config") if isinstance(run.get("config"), dict) else {}
        template = str(config.get("prompt_template") or DEFAULT_TEMPLATE)
        ckpts = [c for c in checkpoints[rid] if not c.get("is_final")]
        best = next((c for c in ckpts if c.get("is_best")), None)
        out.append(
            f"#{rid} {run.get('name') or run.get('model') or ''} · {run['status']}"
            f" · template {template}"
        )
        if best is not None:
            default = f"best checkpoint (step {best['step']})"
            metrics = _metrics_label(best.get("metrics"))
            default += f" · {metrics}" if metrics else ""
        else:
            default = "final adapter" if run["status"] == "completed" else "latest checkpoint"
        out.append(AdapterChoice(str(rid), f"  {rid}  {default}", template))
        if run["status"] == "completed":
            out.append(
                AdapterChoice(f"{rid}:final", f"  {rid}:final  the adapter at the end", template)
            )
        for ckpt in ckpts:
            star = "★ best" if ckpt.get("is_best") else ""
            metrics = _metrics_label(ckpt.get("metrics"))
            label = " · ".join(p for p in (star, metrics) if p)
            out.append(
                AdapterChoice(
                    f"{rid}:step-{ckpt['step']}",
                    f"  {rid}:step-{ckpt['step']}  {label}".rstrip(),
                    template,
                )
            )
    return out


class AdapterPicker(ModalScreen["AdapterChoice | None"]):
    """The run log's training runs and their checkpoints; dismisses with an AdapterChoice."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close")]
    DEFAULT_CSS = """
    AdapterPicker { align: center middle; }
    AdapterPicker > Vertical {
        width: 90%; height: 80%; border: thick $primary; background: $surface;
    }
    AdapterPicker OptionList { height: 1fr; }
    """

    @dataclass
    class Loaded(Message):
        """The adapter choices were read from the run log."""

        choices: list
        error: str | None

    def __init__(self, db_path: str, title: str = "Adapter") -> None:
        super().__init__()
        self.db_path = db_path
        self.title_text = title
        self.choices: list[AdapterChoice | str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"{self.title_text}: enter picks, escape closes. RUN_ID alone means its "
                "best checkpoint."
            )
            yield OptionList(id="adapter-options")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="adapter-picker", exit_on_error=False)
    def load(self) -> None:
        try:
            choices, error = adapter_choices(self.db_path), None
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            choices, error = [], short_error(exc)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(choices, error))

    def on_adapter_picker_loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(f"Cannot list training runs: {message.error}", severity="error")
        self.choices = message.choices
        options = self.query_one("#adapter-options", OptionList)
        options.clear_options()
        for index, choice in enumerate(self.choices):
            if isinstance(choice, AdapterChoice):
                options.add_option(Option(choice.label, id=str(index)))
            else:
                options.add_option(Option(choice, disabled=True))
        if not any(isinstance(c, AdapterChoice) for c in self.choices):
            options.add_option(Option("no training runs in this run log", disabled=True))
        else:
            options.highlighted = next(
                i for i, c in enumerate(self.choices) if isinstance(c, AdapterChoice)
            )
        options.focus()

    @on(OptionList.OptionSelected, "#adapter-options")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(self.choices[int(event.option.id)])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
