"""The SchemaLab workbench: five panes as tabs, keys to switch between them, a help screen and a
command palette. This module only routes; each pane lives in its own module."""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Header, Static, TabbedContent, TabPane, Tabs

from tui.datasets import DatasetsPane
from tui.help import FOOTER_ONLY, ActionEntry, HelpScreen, collect_actions
from tui.runs import RunsPane
from tui.train import TrainPane, running_train_runs
from tui.widgets import AppKeysFirstFooter, ConfirmScreen, is_text_field, keep_text_on_focus

MIN_SIZE = (60, 16)  # columns, rows below which the panes are not drawn

# (tab id, title, number key, letter key)
PANES = [
    ("datasets", "Datasets", "1", "d"),
    ("train", "Train", "2", "t"),
    ("playground", "Playground", "3", "p"),
    ("evaluate", "Evaluate", "4", "e"),
    ("runs", "Runs", "5", "r"),
]

# Worker groups that only read the run log or files; anything else running counts as work
# in progress when quitting.
QUIET_GROUPS = {
    "app-running",
    "runlog-read",
    "ev-datasets",
    "runs-load",
    "train-tail",
    "train-check",
    "train-datasets",
    "train-running",
    "datasets-discover",
    "datasets-load",
    "datasets-tokens",
    "runs-evaluate",
    "curves-read",
    "train-log",
}


# Pane id -> (module, class). Modules are imported on the pane's first use, so start-up stays fast.
PANE_CLASSES = {
    "datasets": ("tui.datasets", "DatasetsPane"),
    "train": ("tui.train", "TrainPane"),
    "playground": ("tui.playground", "PlaygroundPane"),
    "evaluate": ("tui.evaluate", "EvaluatePane"),
    "runs": ("tui.runs", "RunsPane"),
}


def _pane_class(pane_id: str) -> type[Widget]:
    module, cls_name = PANE_CLASSES[pane_id]
    return getattr(importlib.import_module(module), cls_name)


class SchemaLabCommands(Provider):
    """A palette entry for every bound action of the app and of each pane."""

    def _entries(self) -> list[ActionEntry]:
        app = self.app
        assert isinstance(app, SchemaLabApp)
        return app.action_entries()

    def _title(self, entry: ActionEntry) -> str:
        return f"{entry.pane}: {entry.description}" if entry.pane else entry.description

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(self._title(entry), partial(self._run, entry), help=entry.keys)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            title = self._title(entry)
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(self._run, entry),
                    help=f"key: {entry.keys}",
                )

    async def _run(self, entry: ActionEntry) -> None:
        app = self.app
        assert isinstance(app, SchemaLabApp)
        namespace = entry.namespace
        if entry.pane_id:
            await app.action_show_pane(entry.pane_id)
            namespace = app.pane_widget(entry.pane_id)
        # Call the action itself: a palette entry works even where its key is hidden (e.g.
        # Cancel while the Train form is on show); the action says when it cannot apply.
        _, name, params = parse_action(entry.action)
        method = getattr(namespace, f"action_{name}", None)
        if method is None:
            await app.run_action(entry.action, namespace)
            return
        result = method(*params)
        if inspect.isawaitable(result):
            await result


class SchemaLabApp(App):
    """Datasets, Train, Playground, Evaluate and Runs over one run log."""

    TITLE = "SchemaLab"
    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (30, "-tall")]
    COMMANDS = App.COMMANDS | {SchemaLabCommands}
    # Digits, letters, `?` and `q` are text inside a text field, so each has a key that works
    # from any focus too (priority bindings run before the focused widget sees the key).
    BINDINGS: ClassVar[list[BindingType]] = [
        *[
            Binding(f"{num},{letter}", f"show_pane('{pane_id}')", title, show=False)
            for pane_id, title, num, letter in PANES
        ],
        # One footer entry for the pane keys (help and the palette list them one by one). F2..F6
        # reach the app through tmux and most terminals; alt+N only where the terminal sends
        # alt as an escape prefix (tmux's default sends a different character).
        Binding(
            "f2",
            "show_pane('datasets')",
            "Panes",
            key_display="F2…6",
            priority=True,
            id=FOOTER_ONLY,
        ),
        *[
            Binding(
                f"f{int(num) + 1},alt+{num}",
                f"show_pane('{pane_id}')",
                title,
                show=False,
                priority=True,
            )
            for pane_id, title, num, _ in PANES
        ],
        Binding("f1", "help", "Help", key_display="F1", priority=True),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("escape", "leave_field", "Leave field", show=False, priority=True),
    ]

    def __init__(
        self,
        db_path: str = "runs.db",
        dataset_paths: list[str] | None = None,
        *,
        auto_validate: bool = False,
    ):
        super().__init__()
        self.auto_validate = auto_validate  # validate never-validated data sets on first open
        self.db_path = str(db_path)
        self.dataset_paths = [str(p) for p in (dataset_paths or ["datasets"])]
        self.sub_title = Path(self.db_path).name

    def compose(self) -> ComposeResult:
        # Only the first pane is built now; the others on first use (keeps start-up fast).
        yield Header(icon="")
        with TabbedContent(id="panes"):
            for pane_id, title, num, _ in PANES:
                with TabPane(f"{num} {title}", id=pane_id):
                    if pane_id == "datasets":
                        yield self._make_pane(pane_id)
        yield AppKeysFirstFooter(compact=True)
        yield Static(id="too-small")

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(*event.size)

    def _check_size(self, width: int, height: int) -> None:
        """Below MIN_SIZE the panes cannot lay out: say so instead of drawing a broken layout."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"Terminal too small ({width}x{height}).\n"
                f"SchemaLab needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]} (80x24 is best).\n"
                "Enlarge the window, or ctrl+q to quit."
            )

    def on_mount(self) -> None:
        keep_text_on_focus(self.screen)
        self._check_size(*self.size)
        self.call_after_refresh(self._focus_pane, "datasets")
        self._check_running()

    @work(thread=True, exclusive=True, group="app-running", exit_on_error=False)
    def _check_running(self) -> None:
        try:
            # Also creates the run log (open_db serialises that with the panes' workers).
            running = running_train_runs(self.db_path)
        except Exception:  # noqa: BLE001 - the Train pane reports run-log errors itself
            return
        if running:
            self.post_message(self.TrainingRunning(running))

    @dataclass
    class TrainingRunning(Message):
        """Training runs were running when the app started."""

        run_ids: list[int]

    async def on_schema_lab_app_training_running(self, message: TrainingRunning) -> None:
        # Build the Train pane now so it re-attaches and follows the run in the background.
        await self.ensure_pane("train")

    # Routing between panes ---------------------------------------------------------------

    def _make_pane(self, pane_id: str) -> Widget:
        cls = _pane_class(pane_id)
        if pane_id == "runs":
            return cls(self.db_path, id="runs-pane")
        if pane_id == "datasets":
            pane = cls(
                self.db_path,
                self.dataset_paths,
                id="datasets-pane",
                auto_validate=self.auto_validate,
            )
            pane.train_settings = self.train_settings
            return pane
        return cls(self.db_path, self.dataset_paths, id=f"{pane_id}-pane")

    def pane_widget(self, pane_id: str) -> Widget | None:
        """The widget inside the tab `pane_id` (a pane, or the not-available label), if built."""
        tab = self.query_one(f"#{pane_id}", TabPane)
        return tab.children[0] if tab.children else None

    async def ensure_pane(self, pane_id: str) -> Widget:
        """The pane in tab `pane_id`, built and mounted if this is its first use."""
        widget = self.pane_widget(pane_id)
        if widget is None:
            widget = self._make_pane(pane_id)
            await self.query_one(f"#{pane_id}", TabPane).mount(widget)
            keep_text_on_focus(widget)  # opening a pane never selects a field for overwriting
        return widget

    async def action_show_pane(self, pane_id: str) -> None:
        await self.ensure_pane(pane_id)
        self.query_one("#panes", TabbedContent).active = pane_id
        self._focus_pane(pane_id)

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id == "panes":  # not a pane's own inner tabs
            try:
                await self.ensure_pane(event.pane.id)
            except NoMatches:  # the app is closing: its tabs are already gone
                return
            self.call_after_refresh(self._focus_pane, event.pane.id)

    def _focus_pane(self, pane_id: str | None) -> None:
        """Focus inside the pane, so its bindings are live and shown in the footer."""
        try:
            pane = self.pane_widget(pane_id) if pane_id else None
        except NoMatches:  # the app is closing
            return
        if pane is None:
            return
        # Only the pane on show: focusing inside another tab makes that tab active, whose
        # activation queues a focus of its own; after quick switches two such calls in flight
        # kept swapping tabs and focus (and redrawing the footer) for ever while idle.
        if self.query_one("#panes", TabbedContent).active != pane_id:
            return
        if hasattr(pane, "focus_default"):
            pane.focus_default()
            return
        for widget in pane.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # Escape leaves a text field on the main screen; anywhere else it goes on to the focused
        # widget's, the pane's or a dialog's own escape binding.
        if action == "leave_field":
            if not is_text_field(self.focused) or isinstance(self.screen, ModalScreen):
                return False
            # A pane that is busy (decoding, evaluating) takes escape as Cancel, even in a field.
            pane = self._pane_of(self.focused)
            return not (pane is not None and getattr(pane, "escape_cancels", lambda: False)())
        return True

    def _pane_of(self, widget: Widget | None) -> Widget | None:
        """The pane (the widget in a top-level tab) that holds `widget`, if any."""
        for node in widget.ancestors if widget is not None else []:
            if isinstance(node, TabPane) and node.id in PANE_CLASSES:
                return self.pane_widget(node.id)
        return None

    def action_leave_field(self) -> None:
        """Move focus out of a text field to its pane's main widget, so pane keys work again."""
        pane = self._pane_of(self.focused)
        if pane is not None and hasattr(pane, "focus_main"):
            pane.focus_main()
            return
        for widget in self.screen.focus_chain if pane is not None else []:
            if pane in widget.ancestors and not is_text_field(widget):
                widget.focus()
                return
        self.query_one("#panes", TabbedContent).query_one(Tabs).focus()

    async def on_runs_pane_open_run(self, message: RunsPane.OpenRun) -> None:
        if message.kind == "validate":
            await self.action_show_pane("datasets")
            self.query_one(DatasetsPane).show_validation(message.run_id)
        elif message.kind == "train":
            await self.action_show_pane("train")
            self.query_one(TrainPane).attach(message.run_id)
        elif message.kind == "eval":
            pane = await self.ensure_pane("evaluate")
            if hasattr(pane, "show_run"):
                await self.action_show_pane("evaluate")
                pane.show_run(message.run_id)
            else:
                self.notify("The Evaluate pane cannot show runs.", severity="warning")

    async def on_runs_pane_evaluate_run(self, message: RunsPane.EvaluateRun) -> None:
        """Evaluate a training run: its adapter (best checkpoint), model and test file."""
        pane = await self.ensure_pane("evaluate")
        await self.action_show_pane("evaluate")
        if not hasattr(pane, "prefill"):
            self.notify("The Evaluate pane cannot be filled in from a run.", severity="warning")
            return
        pane.prefill(str(message.run_id), message.data)
        if message.model:  # the adapter's base model
            for field in pane.query("#ev-model"):
                field.value = message.model
        where = Path(message.data).name if message.data else "the data set chosen in the form"
        self.notify(
            f"Evaluate run #{message.run_id}'s best checkpoint on {where}: ctrl+g runs it."
            + ("" if message.data else " (no test file found beside its training data)")
        )

    def train_settings(self) -> tuple[str, int | None] | None:
        """The Train form's model and max_seq_len, once the Train pane exists (for Stats)."""
        pane = self.pane_widget("train")
        if not isinstance(pane, TrainPane):
            return None
        data = pane.form_data()
        max_seq_len = data.get("max_seq_len")
        return str(data.get("model") or "tiny"), max_seq_len if isinstance(
            max_seq_len, int
        ) else None

    def on_train_pane_model_changed(self, message: TrainPane.ModelChanged) -> None:
        # Panes mount lazily: before Datasets exists it reads the form when it opens its stats.
        try:
            datasets = self.pane_widget("datasets")
        except NoMatches:  # the app is closing: its tabs are already gone
            return
        if isinstance(datasets, DatasetsPane):
            datasets.set_token_model(message.model, message.max_seq_len)

    async def on_datasets_pane_train_on(self, message: DatasetsPane.TrainOn) -> None:
        await self.action_show_pane("train")
        self.query_one(TrainPane).set_dataset(message.path)

    def _refresh_runs(self) -> None:
        runs = self.pane_widget("runs")
        if isinstance(runs, RunsPane):
            runs.action_refresh()

    def on_train_pane_run_changed(self, message: TrainPane.RunChanged) -> None:
        self._refresh_runs()

    def on_datasets_pane_validated(self, message: DatasetsPane.Validated) -> None:
        self._refresh_runs()

    # Help, palette, quit ---------------------------------------------------------------

    def action_entries(self) -> list[ActionEntry]:
        """Every bound action; pane bindings come from the pane classes (built or not)."""
        panes = []
        for pane_id, title, _, _ in PANES:
            cls = _pane_class(pane_id)
            if not isinstance(cls, str):
                panes.append((pane_id, title, cls))
        return collect_actions(self, panes)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.action_entries()))

    def work_in_progress(self) -> list[str]:
        """What quitting would stop (workers) or leave running (training runs)."""
        busy = [
            f"{w.group} ({w.name})"
            for w in self.workers
            if w.is_running and w.group not in QUIET_GROUPS
        ]
        try:
            running = running_train_runs(self.db_path)
        except Exception:  # noqa: BLE001 - quitting must work even with a broken run log
            running = []
        for run_id in running:
            busy.append(f"training run #{run_id} (keeps running; reopen SchemaLab to follow it)")
        return busy

    async def action_quit(self) -> None:
        busy = self.work_in_progress()
        if not busy:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.workers.cancel_all()
                self.exit()

        self.push_screen(
            ConfirmScreen(
                "Work in progress:\n  " + "\n  ".join(busy) + "\nQuit anyway?", yes="Quit"
            ),
            answered,
        )


def run_app(db_path: str = "runs.db", dataset_paths: list[str] | None = None) -> int:
    """Open the workbench on `db_path`; returns an exit code."""
    from engine import runlog

    try:
        db = runlog.connect(db_path)
        runlog.reap_interrupted(db)  # record runs whose process is gone (reads only show it)
        runlog.close(db)
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        print(f"schemalab: cannot open run log {db_path}: {exc}", file=sys.stderr)
        return 2
    SchemaLabApp(db_path=db_path, dataset_paths=dataset_paths, auto_validate=True).run()
    return 0
