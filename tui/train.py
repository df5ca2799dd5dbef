"""The Train pane: the training-config form (tui/train_form.py: YAML in and out, checked as you
type, the memory estimate and the too-long count), "Launch" for a detached training run, cancel
and resume, and the live view (tui/train_live.py) that tails the run's metrics from the run log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Label, Select, Static

from tui.train_form import CARDS, TrainForm, form_fields
from tui.train_live import LiveView
from tui.widgets import ConfirmScreen, open_db, short_error


class TrainPane(TrainForm, Vertical):
    """The training form and the live view of a training run."""

    # The form at 80x24: a label column wide enough for its longest label plus a gap, and a
    # field's problem on its own line under the field (never cut beside it).
    DEFAULT_CSS = """
    TrainPane #train-form { height: 1fr; }
    TrainPane #form-fields { width: 1fr; height: 1fr; }
    TrainPane #form-info {
        width: 40%; max-width: 40; height: 1fr; padding: 0 1; border-left: solid $primary 40%;
    }
    TrainPane .form-field { height: auto; }
    TrainPane .form-row { height: 1; }
    TrainPane .form-label { width: 17; padding: 0 1; }
    TrainPane .form-input { width: 1fr; max-width: 32; }
    TrainPane .form-input.-problem { background: $error 30%; }
    TrainPane .form-field .form-problem {
        height: auto; width: 1fr; padding: 0 1 0 17; display: none;
    }
    TrainPane .form-field .form-problem.-shown { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+t", "toggle_view", "Form/Live"),
        Binding("ctrl+o", "load_yaml", "Open"),
        Binding("ctrl+s", "save_yaml", "Save"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("u", "resume_run", "Resume"),
        Binding("g", "toggle_lr", "LR"),
        Binding("l", "show_log", "Log"),
        Binding("e", "evaluate_run", "Evaluate"),
    ]
    FORM_ONLY: ClassVar[set[str]] = {"load_yaml", "save_yaml"}
    LIVE_ONLY: ClassVar[set[str]] = {
        "cancel_run",
        "resume_run",
        "toggle_lr",
        "show_log",
        "evaluate_run",
    }

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
    class ModelChecked(Message):
        """Whether the form's model resolves here and has its target modules."""

        key: tuple
        problems: list[str]

    @dataclass
    class Restored(Message):
        """A model that can be loaded here, for a form still showing the default one."""

        model: str

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
        # The heavier checks (model files, memory estimate, lengths: torch and transformers
        # imports) wait until the pane is first shown; a user may never open Train.
        self._checks_started = False
        self.problems: list[str] = []
        # (model, target modules) -> what engine.models.load found; filled by a worker.
        self._model_checks: dict[tuple, list[str]] = {}

    # Layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        from engine.train.config import DEFAULTS

        with ContentSwitcher(initial="train-form", id="train-view"):
            with Horizontal(id="train-form"):
                with VerticalScroll(id="form-fields"):
                    for key, label, kind in form_fields():
                        with Vertical(classes="form-field", id=f"field-{key}"):
                            with Horizontal(classes="form-row", id=f"row-{key}"):
                                yield Label(label, classes="form-label")
                                yield self._field_widget(key, kind, DEFAULTS)
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
                with VerticalScroll(id="form-info"):
                    yield Static(id="form-problems")
                    yield Static(id="form-memory")
                    yield Static(id="form-lengths")
            yield LiveView(self.db_path, id="train-live")

    def on_mount(self) -> None:
        self._find_datasets()
        self._find_running()
        if not self._restore_last_config():
            self._pick_default_model()
        self._schedule_check()

    def on_show(self) -> None:
        if not self._checks_started:
            self._checks_started = True
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
        live = self.query_one(LiveView)
        if action == "cancel_run":
            return True if live.can_cancel() else None
        if action == "resume_run":
            return True if live.can_resume() else None
        if action in ("show_log", "evaluate_run"):
            # With a run on show `e` answers for it (a running one: not yet), never falling
            # through to the app's `e` for the Evaluate pane.
            return True if live.run_id is not None else None
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

    # Runs ---------------------------------------------------------------------------------

    def action_launch(self) -> None:
        from engine.train.config import config_from_dict

        try:
            cfg = config_from_dict(self.form_data())
        except Exception as exc:  # noqa: BLE001
            self.notify(f"Cannot launch: {short_error(exc)}", severity="error", timeout=10)
            return
        if self.problems:  # the model checks found what the config check cannot
            self.notify(f"Cannot launch: {self.problems[0]}", severity="error", timeout=10)
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
        if message.what == "cancel":
            self.query_one(LiveView).cancel_requested(message.run_id)
        else:
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
        if not live.can_cancel():
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
        if live.run_id is None or live.status in (None, "running"):
            self.notify("Show a stopped training run first (Runs pane, o).", severity="warning")
            return
        if not live.can_resume():
            self.notify(
                f"Run #{live.run_id} has no checkpoint to resume from: launch it again "
                "from the form (ctrl+t).",
                severity="warning",
            )
            return
        self._engine_call("resume", live.run_id)

    def action_toggle_lr(self) -> None:
        self.query_one(LiveView).toggle_lr()

    def action_show_log(self) -> None:
        """The run's train.log, following it while the run runs."""
        from tui.log_view import TrainLogScreen, log_path

        live = self.query_one(LiveView)
        if live.run_id is None:
            self.notify("No training run on show.", severity="warning")
            return
        self.app.push_screen(TrainLogScreen(self.db_path, live.run_id, log_path(live.run or {})))

    def action_evaluate_run(self) -> None:
        """Open Evaluate on this run's best checkpoint, model and test file."""
        from tui.runs import request_evaluation

        live = self.query_one(LiveView)
        if live.status != "completed" or not live.run:
            self.notify("Evaluate a training run once it has completed.", severity="warning")
            return
        request_evaluation(self, live.run)


def running_train_runs(db_path: str) -> list[int]:
    """Ids of the training runs running now, newest first (dead ones are marked interrupted)."""
    from engine import runlog

    db = open_db(db_path)
    try:
        return [r["id"] for r in runlog.list_runs(db, kind="train") if r["status"] == "running"]
    finally:
        runlog.close(db)
