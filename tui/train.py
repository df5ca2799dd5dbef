"""The Train pane: a training-config form (YAML in and out, checked as you type, with the memory
estimate and the count of too-long examples), "Launch" for a detached training run, and a live
view that tails the run's metrics from the run log: loss chart, progress, speed, status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Label, Select, Static
from textual.worker import get_current_worker

from tui.train_live import LiveView
from tui.widgets import (
    ConfirmScreen,
    PathScreen,
    open_db,
    short_error,
)

# (config key, label, widget kind); kinds: input, data (data-set select), choice.
FIELDS = [
    ("model", "Base model", "input"),
    ("train_data", "Data set", "data"),
    ("val_data", "Validation set", "data"),
    ("lora_r", "LoRA r", "input"),
    ("lora_alpha", "LoRA alpha", "input"),
    ("lora_dropout", "LoRA dropout", "input"),
    ("target_modules", "Target modules", "input"),
    ("lr", "Learning rate", "input"),
    ("epochs", "Epochs", "input"),
    ("max_steps", "Max steps", "input"),
    ("batch_size", "Batch size", "input"),
    ("grad_accum", "Grad accum", "input"),
    ("max_seq_len", "Max seq len", "input"),
    ("precision", "Precision", "choice"),
    ("eval_every", "Eval every", "input"),
    ("prompt_template", "Template", "choice"),
    ("val_eval_limit", "Val examples", "input"),
    ("val_constrained", "Val decoding", "choice"),
    ("val_max_new_tokens", "Val max tok", "input"),
    ("val_eval_batch", "Val batch", "input"),
    ("select_by", "Best by", "choice"),
    ("patience", "Patience", "input"),
    ("keep_last", "Keep last", "input"),
]
SELECT_BY = ("json_exact", "field_f1", "val_loss")  # when engine.train.config does not list them
CARDS = [4, 6, 8, 12, 16, 24, 48, 80]
NO_DATA = ""  # the "none" value of the data-set selects
CHECK_DELAY_S = 0.5


def form_fields() -> list[tuple[str, str, str]]:
    """The FIELDS this engine's TrainConfig has (keys it does not know would fail the check)."""
    from engine.train.config import KEYS

    return [field for field in FIELDS if field[0] in KEYS]


def choice_options(key: str) -> list[tuple[str, Any]]:
    """(label, value) choices of a `choice` field, from the engine's own lists."""
    from engine.train import config

    if key == "prompt_template":
        from engine.prompt import TEMPLATES

        return [(t, t) for t in TEMPLATES]
    if key == "select_by":
        return [(s, s) for s in getattr(config, "SELECT_BY", SELECT_BY)]
    if key == "val_constrained":
        return [("constrained", True), ("unconstrained", False)]
    return [(p, p) for p in config.PRECISIONS]


def _show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _problem_key(problem: str) -> str:
    """The config key a problem message is about (its first word), or ''."""
    head = problem.split(":")[0].split(" ")[0].strip()
    return head if any(head == key for key, _, _ in FIELDS) else ""


class TrainPane(Vertical):
    """The training form and the live view of a training run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+t", "toggle_view", "Form/Live"),
        Binding("ctrl+o", "load_yaml", "Open"),
        Binding("ctrl+s", "save_yaml", "Save"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("u", "resume_run", "Resume"),
        Binding("g", "toggle_lr", "LR"),
    ]
    FORM_ONLY: ClassVar[set[str]] = {"load_yaml", "save_yaml"}
    LIVE_ONLY: ClassVar[set[str]] = {"cancel_run", "resume_run", "toggle_lr"}

    @dataclass
    class ModelChanged(Message):
        """The form's model or max_seq_len changed (the Datasets stats use them)."""

        model: str
        max_seq_len: int | None

    @dataclass
    class RunChanged(Message):
        """A run was launched, cancelled or resumed."""

        run_id: int

    @dataclass
    class Datasets(Message):
        """The data-set files found, for the data-set selects."""

        options: list[tuple[str, str]]

    @dataclass
    class Checked(Message):
        """Memory estimate and length report for the form's config."""

        key: str
        memory: str
        lengths: str

    @dataclass
    class Running(Message):
        """Training runs found running when the pane started (to re-attach)."""

        run_ids: list[int]

    @dataclass
    class Done(Message):
        """An engine call finished: launched/resumed run id, or a message."""

        what: str
        run_id: int | None = None
        error: str | None = None

    def __init__(self, db_path: str, dataset_paths: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.db_path = db_path
        self.dataset_paths = dataset_paths
        self.extra: dict[str, Any] = {}  # config keys the form does not show (from YAML)
        self.yaml_path = "train.yaml"
        self._check_timer: Timer | None = None
        self._last_model: tuple | None = None
        self.problems: list[str] = []

    # Layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        from engine.train.config import DEFAULTS

        with ContentSwitcher(initial="train-form", id="train-view"):
            with Horizontal(id="train-form"):
                with VerticalScroll(id="form-fields"):
                    for key, label, kind in form_fields():
                        with Horizontal(classes="form-row", id=f"row-{key}"):
                            yield Label(label, classes="form-label")
                            if kind == "input":
                                yield Input(
                                    _show_value(DEFAULTS.get(key)),
                                    id=f"f-{key}",
                                    compact=True,
                                    classes="form-input",
                                )
                            elif kind == "data":
                                yield Select(
                                    [],
                                    prompt="(none)",
                                    id=f"f-{key}",
                                    compact=True,
                                    classes="form-input",
                                )
                            else:
                                options = choice_options(key)
                                yield Select(
                                    options,
                                    id=f"f-{key}",
                                    value=DEFAULTS.get(key, options[0][1]),
                                    allow_blank=False,
                                    compact=True,
                                    classes="form-input",
                                )
                            yield Static("", classes="form-problem", id=f"p-{key}")
                    with Horizontal(classes="form-row"):
                        yield Label("GPU card", classes="form-label")
                        yield Select(
                            [(f"{gb} GB", gb) for gb in CARDS],
                            value=16,
                            allow_blank=False,
                            compact=True,
                            id="f-card",
                            classes="form-input",
                        )
                        yield Static("", classes="form-problem")
                with VerticalScroll(id="form-info"):
                    yield Static(id="form-problems")
                    yield Static(id="form-memory")
                    yield Static(id="form-lengths")
            yield LiveView(self.db_path, id="train-live")

    def on_mount(self) -> None:
        self._find_datasets()
        self._find_running()
        self._schedule_check()

    def focus_default(self) -> None:
        view = self.query_one("#train-view", ContentSwitcher).current
        if view == "train-live":
            self.query_one(LiveView).focus()
        else:
            self.query_one("#f-model", Input).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Show each view's own actions; dim Cancel/Resume when they cannot apply."""
        live_view = self.query_one("#train-view", ContentSwitcher).current == "train-live"
        # False hides a binding; None shows it dimmed.
        if action in self.FORM_ONLY and live_view or action in self.LIVE_ONLY and not live_view:
            return False
        status = self.query_one(LiveView).status
        if action == "cancel_run":
            return True if status == "running" else None
        if action == "resume_run":
            return True if status in ("cancelled", "failed", "interrupted") else None
        return True

    def action_toggle_view(self) -> None:
        switcher = self.query_one("#train-view", ContentSwitcher)
        self.set_view("train-live" if switcher.current == "train-form" else "train-form")

    def set_view(self, view: str) -> None:
        """Show the form or the live view and focus it; the footer follows."""
        self.query_one("#train-view", ContentSwitcher).current = view
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors:
            # Only while the user is in this pane: focusing a hidden pane would switch tabs.
            self.focus_default()
        self.refresh_bindings()

    def show_live(self) -> None:
        self.set_view("train-live")

    # The form ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="train-datasets", exit_on_error=False)
    def _find_datasets(self) -> None:
        try:
            from engine.data import discover_datasets

            infos = discover_datasets(self.dataset_paths)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Could not list data sets: {short_error(exc)}", severity="error")
            return
        self.post_message(self.Datasets([(i.name, str(i.path)) for i in infos]))

    def on_train_pane_datasets(self, message: Datasets) -> None:
        for key in ("train_data", "val_data"):
            select = self.query_one(f"#f-{key}", Select)
            current = select.value
            select.set_options(message.options)
            if current != Select.NULL:
                self._select_path(key, str(current))
        if self.query_one("#f-train_data", Select).value == Select.NULL:
            train = [v for label, v in message.options if Path(v).stem == "train"]
            if train or message.options:
                self._select_path("train_data", (train or [message.options[0][1]])[0])
        if self.query_one("#f-val_data", Select).value == Select.NULL:
            val = [v for label, v in message.options if Path(v).stem in ("val", "valid", "dev")]
            if val:
                self._select_path("val_data", val[0])

    def _select_path(self, key: str, path: str | None) -> None:
        """Choose `path` in a data-set select, adding it as an option when it is new."""
        select = self.query_one(f"#f-{key}", Select)
        if not path:
            select.clear()
            return
        options = [(str(label), value) for label, value in select._options if value != Select.NULL]
        resolved = str(Path(path).resolve())
        for _, value in options:
            if str(Path(value).resolve()) == resolved:
                select.value = value
                return
        options.append((path, path))
        select.set_options(options)
        select.value = path

    def set_dataset(self, path: str) -> None:
        """Train on `path` (asked for from the Datasets pane)."""
        self._select_path("train_data", path)
        self.set_view("train-form")
        self.notify(f"Training data set: {path}")

    def form_data(self) -> dict[str, Any]:
        """The config mapping the form describes (values parsed as YAML scalars)."""
        from engine.train.config import ConfigError, parse_override

        data = dict(self.extra)
        for key, _, kind in form_fields():
            widget = self.query_one(f"#f-{key}")
            if isinstance(widget, Select):
                value = widget.value
                data[key] = None if value == Select.NULL else value
                continue
            text = widget.value.strip()
            if key == "target_modules":
                parts = [p.strip() for p in text.split(",") if p.strip()]
                data[key] = parts[0] if parts == ["all-linear"] else parts
                continue
            try:
                data[key] = parse_override(f"{key}={text}")[1]
            except ConfigError:
                data[key] = text
        return data

    def fill_form(self, config: dict[str, Any]) -> None:
        """Put a config mapping into the form; keys it has no field for are kept aside."""
        shown = {key for key, _, _ in form_fields()}
        self.extra = {k: v for k, v in config.items() if k not in shown}
        for key, _, kind in form_fields():
            if key not in config:
                continue
            value = config[key]
            if kind == "input":
                self.query_one(f"#f-{key}", Input).value = _show_value(value)
            elif kind == "data":
                self._select_path(key, value)
            elif value is not None:
                self._select_choice(key, value)
        self._schedule_check()

    def _select_choice(self, key: str, value: Any) -> None:
        """Choose `value` in a choice field; one the engine does not offer is added, so the
        check shows what is wrong with it instead of the load failing."""
        select = self.query_one(f"#f-{key}", Select)
        options = choice_options(key)
        known = any(v == value and type(v) is type(value) for _, v in options)
        select.set_options(options if known else [*options, (str(value), value)])
        select.value = value

    def on_input_changed(self, event: Input.Changed) -> None:
        self._schedule_check()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._schedule_check()

    def _schedule_check(self) -> None:
        """Validate the form now (cheap) and run the heavier checks once typing pauses."""
        self._show_problems()
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(CHECK_DELAY_S, self.run_checks)

    def _show_problems(self) -> None:
        from engine.train.config import config_problems

        data = self.form_data()
        self.problems = config_problems(data)
        by_key: dict[str, list[str]] = {}
        general = []
        for problem in self.problems:
            key = _problem_key(problem)
            (by_key.setdefault(key, []) if key else general).append(problem)
        for key, _, _ in form_fields():
            found = by_key.get(key, [])
            self.query_one(f"#p-{key}", Static).update(
                "[red]" + escape("; ".join(found)) + "[/red]" if found else ""
            )
            self.query_one(f"#f-{key}").set_class(bool(found), "-problem")
        box = self.query_one("#form-problems", Static)
        if self.problems:
            box.update(
                f"[red]{len(self.problems)} problem(s)[/red]"
                + "".join(f"\n[red]• {escape(p)}[/red]" for p in general)
            )
        else:
            box.update("[green]✓ config is valid[/green] (ctrl+l launches)")

    def run_checks(self) -> None:
        """Memory estimate and length report for the current config, in a worker."""
        data = self.form_data()
        model = (data.get("model"), data.get("max_seq_len"))
        if model != self._last_model:
            self._last_model = model
            max_len = data.get("max_seq_len") if isinstance(data.get("max_seq_len"), int) else None
            self.post_message(self.ModelChanged(str(data.get("model") or "tiny"), max_len))
        if self.problems:
            self.query_one("#form-memory", Static).update("")
            self.query_one("#form-lengths", Static).update("")
            return
        card = self.query_one("#f-card", Select).value
        self.query_one("#form-lengths", Static).update("[dim]counting too-long examples…[/dim]")
        self._check(data, float(card), repr(sorted(data.items(), key=str)) + str(card))

    @work(thread=True, exclusive=True, group="train-check", exit_on_error=False)
    def _check(self, data: dict, card_gb: float, key: str) -> None:
        from engine.train.config import config_from_dict

        try:
            cfg = config_from_dict(data)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Checked(key, "", f"[red]{escape(short_error(exc))}[/red]"))
            return
        memory = _memory_text(cfg, card_gb)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.Checked(key, memory, _lengths_text(cfg)))

    def on_train_pane_checked(self, message: Checked) -> None:
        self.query_one("#form-memory", Static).update(message.memory)
        self.query_one("#form-lengths", Static).update(message.lengths)

    def action_load_yaml(self) -> None:
        def chosen(path: str | None) -> None:
            if not path:
                return
            import yaml

            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                self.notify(f"Cannot load {path}: {short_error(exc)}", severity="error")
                return
            if not isinstance(loaded, dict):
                self.notify(
                    f"Cannot load {path}: it must hold a mapping of key: value", severity="error"
                )
                return
            self.yaml_path = path
            self.fill_form(_resolve_paths(loaded, Path(path).resolve().parent))
            self.notify(f"Loaded {path}.")

        self.app.push_screen(PathScreen("Load a training config (YAML)", self.yaml_path), chosen)

    def action_save_yaml(self) -> None:
        from engine.train.config import config_from_dict, save_config

        try:
            cfg = config_from_dict(self.form_data())
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Fix the config first: {short_error(exc)}", severity="error")
            return

        def chosen(path: str | None) -> None:
            if not path:
                return
            try:
                save_config(cfg, path)
            except OSError as exc:
                self.notify(f"Cannot save {path}: {short_error(exc)}", severity="error")
                return
            self.yaml_path = path
            self.notify(f"Saved {path}.")

        self.app.push_screen(
            PathScreen("Save the training config as (YAML)", self.yaml_path), chosen
        )

    # Runs ---------------------------------------------------------------------------------

    def action_launch(self) -> None:
        from engine.train.config import config_from_dict

        try:
            cfg = config_from_dict(self.form_data())
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Cannot launch: {short_error(exc)}", severity="error", timeout=10)
            return
        self.notify("Launching a training run…")
        self._engine_call("launch", cfg)

    @work(thread=True, exclusive=True, group="train-launch", exit_on_error=False)
    def _engine_call(self, what: str, arg: Any) -> None:
        try:
            from engine.train import process

            if what == "launch":
                run_id = process.launch_detached(arg, self.db_path)
            elif what == "resume":
                run_id = process.resume_detached(self.db_path, arg)
            else:
                process.cancel_run(self.db_path, arg)
                run_id = arg
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Done(what, None, short_error(exc)))
            return
        self.post_message(self.Done(what, run_id))

    def on_train_pane_done(self, message: Done) -> None:
        if message.error:
            self.notify(f"Could not {message.what}: {message.error}", severity="error", timeout=10)
            return
        verbs = {"launch": "Launched", "resume": "Resumed as", "cancel": "Cancelling"}
        self.notify(f"{verbs[message.what]} training run #{message.run_id}.")
        if message.what != "cancel":
            self.attach(message.run_id)
        self.post_message(self.RunChanged(message.run_id))

    def attach(self, run_id: int) -> None:
        """Follow training run `run_id` in the live view."""
        self.query_one(LiveView).attach(run_id)
        self.show_live()

    @work(thread=True, exclusive=True, group="train-running", exit_on_error=False)
    def _find_running(self) -> None:
        self.post_message(self.Running(self._running_ids()))

    def _running_ids(self) -> list[int]:
        return running_train_runs(self.db_path)

    def on_train_pane_running(self, message: Running) -> None:
        if not message.run_ids or self.query_one(LiveView).run_id is not None:
            return
        self.query_one(LiveView).attach(message.run_ids[0])
        self.set_view("train-live")
        others = f" ({len(message.run_ids) - 1} more in Runs)" if len(message.run_ids) > 1 else ""
        self.notify(f"Re-attached to training run #{message.run_ids[0]}{others}.")

    def action_cancel_run(self) -> None:
        live = self.query_one(LiveView)
        if live.run_id is None or live.status != "running":
            self.notify("No running training run on show.", severity="warning")
            return
        run_id = live.run_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._engine_call("cancel", run_id)

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel training run #{run_id}? It stops at the next step and keeps its last "
                "checkpoint, so it can be resumed.",
                yes="Cancel run",
                no="Keep running",
            ),
            answered,
        )

    def action_resume_run(self) -> None:
        live = self.query_one(LiveView)
        if live.run_id is None or live.status == "running":
            self.notify("Show a stopped training run first (Runs pane, o).", severity="warning")
            return
        self._engine_call("resume", live.run_id)

    def action_toggle_lr(self) -> None:
        self.query_one(LiveView).toggle_lr()


def running_train_runs(db_path: str) -> list[int]:
    """Ids of the training runs running now, newest first (dead ones are marked interrupted)."""
    from engine import runlog

    db = open_db(db_path)
    try:
        return [r["id"] for r in runlog.list_runs(db, kind="train") if r["status"] == "running"]
    finally:
        db.conn.close()


def _resolve_paths(config: dict, base: Path) -> dict:
    """Relative data paths in a YAML file mean the working folder, else the file's folder."""
    from engine.train.config import PATH_KEYS

    out = dict(config)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and not Path(value).exists() and (base / value).exists():
            out[key] = str((base / value).resolve())
    return out


def _memory_text(cfg, card_gb: float) -> str:
    try:
        from engine.models import estimate_memory

        est = estimate_memory(cfg.model, cfg, card_gb=card_gb)
    except Exception as exc:  # noqa: BLE001 - an estimate is advice, not a blocker
        return f"[dim]memory estimate unavailable: {escape(short_error(exc))}[/dim]"
    verdict = "[green]fits[/green]" if est.fits else "[red]does not fit[/red]"
    parts = ", ".join(
        f"{k} {v:.2f}" for k, v in est.breakdown.items() if isinstance(v, (int, float))
    )
    return f"Memory ≈ {est.total_gb:.2f} GB: {verdict} a {card_gb:g} GB card\n[dim]{parts}[/dim]"


def _lengths_text(cfg) -> str:
    try:
        from engine.train.data import length_report

        rep = length_report(cfg)
    except Exception as exc:  # noqa: BLE001
        return f"[dim]length check unavailable: {escape(short_error(exc))}[/dim]"
    if rep.n_too_long:
        return (
            f"[yellow]{rep.n_too_long} of {rep.n_total} examples are longer than "
            f"max_seq_len {cfg.max_seq_len} and would be dropped[/yellow]"
        )
    return f"[green]all {rep.n_total} examples fit max_seq_len {cfg.max_seq_len}[/green]"
