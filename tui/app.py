"""The SchemaLab workbench: five panes as tabs, keys to switch between them, a help screen and a
command palette. This module only routes; each pane lives in its own module."""

from __future__ import annotations

import importlib
import inspect
import sys
from functools import partial
from pathlib import Path

from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.widget import Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from tui.datasets import DatasetsPane
from tui.help import ActionEntry, HelpScreen, collect_actions
from tui.runs import RunsPane
from tui.train import TrainPane
from tui.widgets import ConfirmScreen, open_db

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
    "runs-load", "train-tail", "train-check", "train-datasets", "train-running",
    "datasets-discover", "datasets-load", "datasets-tokens",
}


def _optional_pane(module: str, cls_name: str, db_path: str, dataset_paths: list[str]) -> Widget:
    """The pane from `module`, or a label saying why it is not available."""
    try:
        cls = getattr(importlib.import_module(module), cls_name)
        return cls(db_path=db_path, dataset_paths=dataset_paths)
    except Exception as exc:  # noqa: BLE001 - a missing pane must not stop the app
        return Static(
            f"This pane is not available ({module}: {exc.__class__.__name__}: {exc}).",
            classes="unavailable",
        )


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
                yield Hit(score, matcher.highlight(title), partial(self._run, entry),
                          help=f"key: {entry.keys}")

    async def _run(self, entry: ActionEntry) -> None:
        app = self.app
        assert isinstance(app, SchemaLabApp)
        if entry.pane_id:
            app.action_show_pane(entry.pane_id)
        # Call the action itself: a palette entry works even where its key is hidden (e.g.
        # Cancel while the Train form is on show); the action says when it cannot apply.
        _, name, params = parse_action(entry.action)
        method = getattr(entry.namespace, f"action_{name}", None)
        if method is None:
            await app.run_action(entry.action, entry.namespace)
            return
        result = method(*params)
        if inspect.isawaitable(result):
            await result


class SchemaLabApp(App):
    """Datasets, Train, Playground, Evaluate and Runs over one run log."""

    TITLE = "SchemaLab"
    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    COMMANDS = App.COMMANDS | {SchemaLabCommands}
    BINDINGS = [
        *[
            Binding(f"{num},{letter}", f"show_pane('{pane_id}')", title, show=False)
            for pane_id, title, num, letter in PANES
        ],
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, db_path: str = "runs.db", dataset_paths: list[str] | None = None):
        super().__init__()
        self.db_path = str(db_path)
        self.dataset_paths = [str(p) for p in (dataset_paths or ["datasets"])]
        self.sub_title = Path(self.db_path).name
        self._create_run_log()

    def _create_run_log(self) -> None:
        """Create (or migrate) the run log once, before any pane's worker opens it."""
        try:
            open_db(self.db_path).conn.close()
        except Exception:  # noqa: BLE001 - run_app reports it; panes report their own errors
            pass

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with TabbedContent(id="panes"):
            with TabPane(f"{PANES[0][2]} Datasets", id="datasets"):
                yield DatasetsPane(self.db_path, self.dataset_paths, id="datasets-pane")
            with TabPane(f"{PANES[1][2]} Train", id="train"):
                yield TrainPane(self.db_path, self.dataset_paths, id="train-pane")
            with TabPane(f"{PANES[2][2]} Playground", id="playground"):
                yield _optional_pane(
                    "tui.playground", "PlaygroundPane", self.db_path, self.dataset_paths
                )
            with TabPane(f"{PANES[3][2]} Evaluate", id="evaluate"):
                yield _optional_pane(
                    "tui.evaluate", "EvaluatePane", self.db_path, self.dataset_paths
                )
            with TabPane(f"{PANES[4][2]} Runs", id="runs"):
                yield RunsPane(self.db_path, id="runs-pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self._focus_pane, "datasets")

    # Routing between panes ---------------------------------------------------------------

    def pane_widget(self, pane_id: str) -> Widget | None:
        """The widget inside the tab `pane_id` (a pane, or the not-available label)."""
        tab = self.query_one(f"#{pane_id}", TabPane)
        return tab.children[0] if tab.children else None

    def action_show_pane(self, pane_id: str) -> None:
        self.query_one("#panes", TabbedContent).active = pane_id
        self._focus_pane(pane_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content.id == "panes":  # not a pane's own inner tabs
            self.call_after_refresh(self._focus_pane, event.pane.id)

    def _focus_pane(self, pane_id: str | None) -> None:
        """Focus inside the pane, so its bindings are live and shown in the footer."""
        pane = self.pane_widget(pane_id) if pane_id else None
        if pane is None:
            return
        if hasattr(pane, "focus_default"):
            pane.focus_default()
            return
        for widget in pane.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def on_runs_pane_open_run(self, message: RunsPane.OpenRun) -> None:
        if message.kind == "validate":
            self.action_show_pane("datasets")
            self.query_one(DatasetsPane).show_validation(message.run_id)
        elif message.kind == "train":
            self.action_show_pane("train")
            self.query_one(TrainPane).attach(message.run_id)
        elif message.kind == "eval":
            pane = self.pane_widget("evaluate")
            if pane is not None and hasattr(pane, "show_run"):
                self.action_show_pane("evaluate")
                pane.show_run(message.run_id)
            else:
                self.notify("The Evaluate pane cannot show runs yet.", severity="warning")

    def on_train_pane_model_changed(self, message: TrainPane.ModelChanged) -> None:
        self.query_one(DatasetsPane).set_token_model(message.model, message.max_seq_len)

    def on_datasets_pane_train_on(self, message: DatasetsPane.TrainOn) -> None:
        self.action_show_pane("train")
        self.query_one(TrainPane).set_dataset(message.path)

    def on_train_pane_run_changed(self, message: TrainPane.RunChanged) -> None:
        self.query_one(RunsPane).action_refresh()

    def on_datasets_pane_validated(self, message: DatasetsPane.Validated) -> None:
        self.query_one(RunsPane).action_refresh()

    # Help, palette, quit ---------------------------------------------------------------

    def action_entries(self) -> list[ActionEntry]:
        panes = []
        for pane_id, title, _, _ in PANES:
            widget = self.pane_widget(pane_id)
            if widget is not None:
                panes.append((pane_id, title, widget))
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
        for run_id in self.query_one(TrainPane).running_runs():
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
            ConfirmScreen("Work in progress:\n  " + "\n  ".join(busy) + "\nQuit anyway?",
                          yes="Quit"),
            answered,
        )


def run_app(db_path: str = "runs.db", dataset_paths: list[str] | None = None) -> int:
    """Open the workbench on `db_path`; returns an exit code."""
    from engine import runlog

    try:
        runlog.connect(db_path).conn.close()
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        print(f"schemalab: cannot open run log {db_path}: {exc}", file=sys.stderr)
        return 2
    SchemaLabApp(db_path=db_path, dataset_paths=dataset_paths).run()
    return 0
