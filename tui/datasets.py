"""The Datasets pane: the data sets found under the given paths, a filterable table of a data
set's examples with each example's prompt, expected JSON and findings, a stats view with a
token-length histogram, and "Validate", which runs the engine's validation and records it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, ProgressBar, Select, Static
from textual.worker import get_current_worker

from tui.widgets import (
    JsonView,
    PathScreen,
    QuietProgressBar,
    middle_cut,
    open_db,
    short_error,
    stop_progress,
)

ALL = ""  # the "no filter" value of every filter
SEVERITY_MARK = {"error": "[red]✗[/red]", "warning": "[yellow]![/yellow]", "info": "[blue]i[/blue]"}
# What the example detail shows of a large record: longer strings and arrays are cut (with a
# note of how much), so a 50 MB value never stalls the screen.
PREVIEW_CHARS = 200
PREVIEW_ITEMS = 50
PREVIEW_PROMPT = 20_000
MESSAGE_CHARS = 400


class _Cancelled(Exception):
    """Raised from a progress callback to stop the engine when the worker is cancelled."""


class DatasetsPane(Vertical):
    """Data sets, their examples and findings, their statistics, and validation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # The footer has room for the most used at 80 columns; help (F1) and the palette list all.
        Binding("v", "validate", "Validate"),
        Binding("V", "validate_folder", "Validate all", show=False),
        Binding("s", "toggle_stats", "Stats"),
        Binding("slash", "find_example", "Find id"),
        Binding("n", "next_finding", "Next finding"),
        Binding("N", "next_finding(-1)", "Previous finding", show=False),
        Binding("f", "only_findings", "Findings only", show=False),
        Binding("c", "cycle_complexity", "Next complexity", show=False),
        Binding("a", "clear_filters", "All rows", show=False),
        Binding("escape", "close_stats", "Close stats", show=False),
        Binding("T", "train_on", "Train on", show=False),
        Binding("ctrl+r", "rediscover", "Rescan", show=False),
    ]

    @dataclass
    class Discovered(Message):
        """The data sets found, each with its validation status."""

        infos: list[Any]
        statuses: dict[str, str]

    @dataclass
    class Loaded(Message):
        """A data set's examples and the findings to show with them."""

        path: str
        examples: list[Any]
        findings: list[dict]
        run_id: int | None

    @dataclass
    class ValidateProgress(Message):
        """How far validation has got."""

        done: int
        total: int

    @dataclass
    class Validated(Message):
        """Validation finished and was recorded as run `run_id`."""

        run_id: int
        paths: list[str]
        counts: dict[str, int]

    @dataclass
    class Lengths(Message):
        """Token lengths of the current data set's examples for one tokenizer."""

        key: tuple
        lengths: list[int]

    @dataclass
    class Failed(Message):
        """An engine call failed; `message` says why."""

        what: str
        message: str

    @dataclass
    class TrainOn(Message):
        """Asks the app to put this data set into the Train form."""

        path: str

    def __init__(
        self, db_path: str, dataset_paths: list[str], *, auto_validate: bool = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.db_path = db_path
        self.dataset_paths = dataset_paths
        # Validate, once, the folders whose data sets this run log has never validated.
        self.auto_validate = auto_validate
        self._pending_validation: list[list[str]] = []
        self.infos: dict[str, Any] = {}
        self.path: str | None = None  # the data set on show
        self.examples: list[Any] = []
        self.findings: list[dict] = []
        self.rows: dict[str, tuple[Any, list[dict]]] = {}  # table row key -> (example, findings)
        self.pinned_run: int | None = None  # a validate run opened from the Runs pane
        # Tokenizer and length limit of the stats: the Train form's (see train_settings), else
        # the `tiny` tokenizer, which is always available offline, and the engine's default limit.
        self.token_model = "tiny"
        self.max_seq_len = default_max_seq_len()
        self.token_source = "the default; the Train form's model is used once Train is open"
        self.train_settings: Callable[[], tuple[str, int | None] | None] | None = None
        self.lengths: dict[tuple, list[int]] = {}
        self.filter_values: dict[str, list[str]] = {}  # each filter's values (besides "all")
        self._filled_width = 0  # the pane width the example table was last filled for
        self._last_focus = None

    def compose(self) -> ComposeResult:
        table = DataTable(id="dataset-table", cursor_type="row")
        table.add_columns("Data set", "Examples", "Schemas", "Complexity mix", "Validation")
        yield table
        with Horizontal(id="filters"):
            for name in ("schema", "complexity", "split", "finding"):
                yield Select(
                    [(f"{name}: all", ALL)],
                    value=ALL,
                    allow_blank=False,
                    compact=True,
                    id=f"filter-{name}",
                )
            yield Static("", id="example-count")
        yield QuietProgressBar(id="validate-progress")
        with ContentSwitcher(initial="examples-view", id="dataset-view"):
            with Vertical(id="examples-view"):
                ex_table = DataTable(id="example-table", cursor_type="row", zebra_stripes=True)
                ex_table.add_columns("Example", "Schema", "Cx", "Split", "Findings")
                yield ex_table
                with Vertical(id="example-detail"):
                    # Findings span the full width, so a long message is read whole at 80x24.
                    yield Static(id="example-findings")
                    with Horizontal(id="example-panes"):
                        with VerticalScroll(id="prompt-box"):
                            yield Static(id="example-prompt")
                        with VerticalScroll(id="json-box"):
                            yield JsonView(id="example-expected")
            with VerticalScroll(id="stats-view"):
                yield Static(id="stats-counts")
                yield Static(id="stats-lengths")

    def on_mount(self) -> None:
        self._hide_progress()
        self.query_one("#example-prompt", Static).update("Reading data sets…")
        # After the first frame: reading files in a thread still competes for the CPU.
        self.call_after_refresh(self._discover)

    def focus_default(self) -> None:
        """Focus where the user last was in this pane; the data-set list at first."""
        last = self._last_focus
        if last is not None and last.is_attached and last.display and last.focusable:
            last.focus()
        else:
            self.query_one("#dataset-table", DataTable).focus()

    def focus_main(self) -> None:
        """The pane's main widget (escape from a text field lands here): the examples."""
        self.query_one("#example-table", DataTable).focus()

    def on_descendant_focus(self, event) -> None:
        self._last_focus = event.widget

    # Discovery and loading ----------------------------------------------------------------

    def action_rediscover(self) -> None:
        self._discover()

    @work(thread=True, exclusive=True, group="datasets-discover", exit_on_error=False)
    def _discover(self) -> None:
        try:
            from engine.data.load import discover_datasets

            infos = discover_datasets(self.dataset_paths)
            from engine import runlog

            db = open_db(self.db_path)
            try:
                statuses = {
                    str(i.path): "[red]unreadable[/red]"
                    if getattr(i, "error", None)
                    else validation_status(db, i.path)
                    for i in infos
                }
            finally:
                runlog.close(db)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            self.post_message(self.Failed("finding data sets", short_error(exc)))
            return
        self.post_message(self.Discovered(infos, statuses))

    def on_datasets_pane_discovered(self, message: Discovered) -> None:
        table = self.query_one("#dataset-table", DataTable)
        self.infos = {str(i.path): i for i in message.infos}
        table.clear()
        for info in message.infos:
            mix = " ".join(f"{k[:3]} {v}" for k, v in sorted(info.complexity_mix.items()))
            table.add_row(
                info.name,
                str(info.n_examples),
                str(len(info.schema_ids)),
                mix,
                message.statuses.get(str(info.path), ""),
                key=str(info.path),
            )
        if not message.infos:
            self.query_one("#example-prompt", Static).update(
                "No .jsonl data sets under "
                + ", ".join(self.dataset_paths)
                + ". Pass a folder with --datasets DIR."
            )
            return
        target = self.path if self.path in self.infos else str(message.infos[0].path)
        table.move_cursor(row=table.get_row_index(target), animate=False)
        if target != self.path:
            self.load(target)
        if self.auto_validate:
            self.auto_validate = False
            self._validate_new(message)

    def _validate_new(self, message: Discovered) -> None:
        """Validate each folder none of whose data sets has a validate run yet (together, so
        train/test leaks show), so a first look at a data set already shows its findings."""
        folders: dict[Path, list[str]] = {}
        for info in message.infos:
            folders.setdefault(Path(info.path).parent, []).append(str(info.path))
        fresh = [
            paths
            for paths in folders.values()
            if all("not validated" in message.statuses.get(p, "") for p in paths)
        ]
        if fresh:
            self._start_validation(fresh[0])  # one worker at a time; the rest follow below
            self._pending_validation = fresh[1:]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.data_table.id == "dataset-table":
            key = event.row_key.value
            if key and key != self.path:
                self.pinned_run = None
                self.load(key)
        elif event.data_table.id == "example-table":
            self._show_example(event.row_key.value)

    def load(self, path: str, run_id: int | None = None) -> None:
        """Show data set `path`, with the findings of validate run `run_id` (default: the last)."""
        self.path = path
        self._load(path, run_id)

    @work(thread=True, exclusive=True, group="datasets-load", exit_on_error=False)
    def _load(self, path: str, run_id: int | None) -> None:
        try:
            from engine.data.load import SchemaRegistry, find_schemas_dir, load_examples

            registry = SchemaRegistry.from_dir(find_schemas_dir(path))
            loaded = load_examples(path, registry)
            from engine import runlog

            db = open_db(self.db_path)
            try:
                findings, used_run = file_findings(db, path, loaded.findings, run_id)
            finally:
                runlog.close(db)
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed(f"loading {path}", short_error(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(path, loaded.examples, findings, used_run))

    def on_datasets_pane_loaded(self, message: Loaded) -> None:
        if message.path != self.path:
            return
        self.examples = message.examples
        self.findings = message.findings
        kinds = sorted({f["kind"] for f in message.findings})
        self._set_filter("schema", sorted({e.schema_id for e in self.examples}))
        self._set_filter("complexity", sorted({e.complexity or "unknown" for e in self.examples}))
        self._set_filter("split", sorted({e.split or "none" for e in self.examples}))
        self._set_filter("finding", ["any", "none", *kinds])
        self.fill_examples()
        if self.query_one(ContentSwitcher).current == "stats-view":
            self._show_stats()

    def _set_filter(self, name: str, values: list[str]) -> None:
        select = self.query_one(f"#filter-{name}", Select)
        current = select.value
        self.filter_values[name] = values
        select.set_options([(f"{name}: all", ALL), *[(v, v) for v in values]])
        select.value = current if current in values else ALL

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self.examples or self.findings:
            self.fill_examples()

    def _filters(self) -> dict[str, str]:
        return {
            name: str(self.query_one(f"#filter-{name}", Select).value)
            for name in ("schema", "complexity", "split", "finding")
        }

    def fill_examples(self) -> None:
        """Refill the example table from the loaded examples and the filters."""
        want = self._filters()
        table = self.query_one("#example-table", DataTable)
        table.clear()
        self.rows = {}
        by_example = findings_for_example(self.examples, self.findings)
        id_width = self._id_width()
        self._filled_width = self.size.width
        for i, ex in enumerate(self.examples):
            found = by_example.get(i, [])
            if not _matches(want, ex.schema_id, ex.complexity, ex.split, found):
                continue
            key = f"ex:{i}"
            self.rows[key] = (ex, found)
            table.add_row(
                escape(middle_cut(ex.id, id_width)),
                escape(middle_cut(ex.schema_id, SCHEMA_WIDTH)),
                (ex.complexity or "?")[:3],
                ex.split or "-",
                _finding_cell(found),
                key=key,
            )
        # Findings that belong to no loaded example (a line that did not parse, a schema).
        for j, f in enumerate(by_example.get(None, [])):
            if not _matches(want, None, None, None, [f]):
                continue
            key = f"finding:{j}"
            self.rows[key] = (None, [f])
            where = f"line {f['line']}" if f.get("line") else (f.get("example_id") or "file")
            table.add_row(escape(where), "-", "-", "-", _finding_cell([f]), key=key)
        shown = sum(1 for ex, _ in self.rows.values() if ex is not None)
        flagged = sum(1 for _, found in self.rows.values() if found)
        self.query_one("#example-count", Static).update(
            f"{shown}/{len(self.examples)} · {flagged} flagged"
        )
        if table.row_count:
            table.move_cursor(row=0, animate=False)
            self._show_example(next(iter(self.rows)))
        else:
            self._show_example(None)

    # Finding one record fast ------------------------------------------------------------------

    def _jump_to_row(self, index: int) -> None:
        table = self.query_one("#example-table", DataTable)
        self.query_one(ContentSwitcher).current = "examples-view"
        table.move_cursor(row=index, animate=False)
        table.focus()

    def action_find_example(self) -> None:
        """Ask for an example id (or part of one) and jump to the first row that has it."""

        def chosen(text: str | None) -> None:
            if text:
                self.find_example(text)

        self.app.push_screen(
            PathScreen("Jump to example id (exact, else first containing)"), chosen
        )

    def find_example(self, text: str) -> bool:
        """Jump to the row of example id `text` (else the first id containing it); clears the
        filters when only they hide it. Returns whether one was found."""
        needle = text.strip().lower()
        for attempt in range(2):
            keys = list(self.rows)
            ids = [str(ex.id).lower() if ex is not None else "" for ex, _ in self.rows.values()]
            index = (
                ids.index(needle)
                if needle in ids
                else next((i for i, ex_id in enumerate(ids) if needle in ex_id), None)
            )
            if index is not None:
                self._jump_to_row(index)
                self._show_example(keys[index])
                return True
            if attempt == 0 and any(self._filters().values()):
                self.action_clear_filters()
        self.notify(f"No example id contains {text!r}.", severity="warning")
        return False

    def action_next_finding(self, step: int = 1) -> None:
        """Move to the next (step 1) or previous (-1) row with a finding, wrapping around."""
        table = self.query_one("#example-table", DataTable)
        flagged = [i for i, (_, found) in enumerate(self.rows.values()) if found]
        if not flagged:
            self.notify("No findings in the rows shown.")
            return
        here = table.cursor_row if table.row_count else -1
        later = [i for i in flagged if (i - here) * step > 0]
        target = (
            (min(later) if step > 0 else max(later))
            if later
            else (flagged[0] if step > 0 else flagged[-1])
        )
        self._jump_to_row(target)

    def action_only_findings(self) -> None:
        """Show only examples with a finding; again: every example."""
        select = self.query_one("#filter-finding", Select)
        select.value = ALL if select.value == "any" else "any"

    def action_cycle_complexity(self) -> None:
        """Filter by the next complexity (all, then each one in turn)."""
        select = self.query_one("#filter-complexity", Select)
        values = [ALL, *self.filter_values.get("complexity", [])]
        here = values.index(select.value) if select.value in values else 0
        select.value = values[(here + 1) % len(values)]

    def action_clear_filters(self) -> None:
        """Drop every filter."""
        for name in ("schema", "complexity", "split", "finding"):
            self.query_one(f"#filter-{name}", Select).value = ALL
        self.fill_examples()

    def _id_width(self) -> int:
        """Room for the Example column once Schema, Cx, Split and Findings have theirs, so long
        ids never push those off screen (ids are cut in the middle: their ends differ)."""
        width = self.size.width or 80
        return max(10, width - SCHEMA_WIDTH - 3 - 5 - FINDINGS_WIDTH - 2 * 5 - 2)

    def on_resize(self, event) -> None:
        # Only a new width changes the id column (a refill on every Resize could feed itself).
        if event.size.width == self._filled_width:
            return
        if self.rows and self.query_one(ContentSwitcher).current == "examples-view":
            self.call_after_refresh(self._refill_keeping_cursor)

    def _refill_keeping_cursor(self) -> None:
        table = self.query_one("#example-table", DataTable)
        row = table.cursor_row
        self.fill_examples()
        if 0 <= row < table.row_count:
            table.move_cursor(row=row, animate=False)

    def _show_example(self, key: str | None) -> None:
        prompt = self.query_one("#example-prompt", Static)
        expected = self.query_one("#example-expected", JsonView)
        findings_box = self.query_one("#example-findings", Static)
        ex, found = self.rows.get(key or "", (None, []))
        if ex is None and not found:
            prompt.update("No examples match the filters." if self.path else "")
            expected.show_text("")
            findings_box.update("")
            return
        if ex is not None:
            where = f"{Path(ex.file or self.path or '').name}:{ex.line}" if ex.line else ""
            text = (
                ex.prompt
                if len(ex.prompt) <= PREVIEW_PROMPT
                else (
                    ex.prompt[:PREVIEW_PROMPT] + f"… ({len(ex.prompt) - PREVIEW_PROMPT} more "
                    "characters)"
                )
            )
            prompt.update(f"[b]{escape(ex.id)}[/b] [dim]{where}[/dim]\n{escape(text)}")
            first = expected.show(preview(ex.expected), [f["path"] for f in found if f.get("path")])
            # Bring the offending lines into view, with two lines of context above them.
            box = self.query_one("#json-box", VerticalScroll)
            self.call_after_refresh(box.scroll_to, y=max(0, (first or 0) - 2), animate=False)
        else:
            prompt.update("[dim](no example loaded from this line)[/dim]")
            expected.show_text("")
        lines = []
        for f in found:
            mark = SEVERITY_MARK.get(f["severity"], "")
            at = f" at {escape(middle_cut(str(f['path']), 80))}" if f.get("path") else ""
            message = middle_cut(str(f["message"]), MESSAGE_CHARS)
            lines.append(f"{mark} [b]{f['kind']}[/b]{at}: {escape(message)}")
        findings_box.update("\n".join(lines) if lines else "[green]No findings.[/green]")

    def show_validation(self, run_id: int) -> None:
        """Show the findings of validate run `run_id` (opened from the Runs pane)."""
        self._show_validation(run_id)

    @work(thread=True, exclusive=True, group="datasets-load", exit_on_error=False)
    def _show_validation(self, run_id: int) -> None:
        from engine import runlog

        db = open_db(self.db_path)
        try:
            files = run_files(db, run_id)
        finally:
            runlog.close(db)
        self.post_message(self.ShowRun(run_id, files))

    @dataclass
    class ShowRun(Message):
        """The files a validate run covered, to show its findings."""

        run_id: int
        files: list[str]

    def on_datasets_pane_show_run(self, message: ShowRun) -> None:
        resolved = {str(Path(p).resolve()): p for p in self.infos}
        target = next((resolved[f] for f in message.files if f in resolved), None)
        if target is None:
            target = message.files[0] if message.files else None
        if target is None:
            self.notify(f"Validate run #{message.run_id} names no data file.", severity="warning")
            return
        table = self.query_one("#dataset-table", DataTable)
        self.pinned_run = message.run_id
        self.path = target  # so the highlight below does not reload with the latest run
        if target in self.infos:
            table.move_cursor(row=table.get_row_index(target), animate=False)
        self.load(target, message.run_id)
        self.notify(f"Showing findings of validate run #{message.run_id}.")

    # Validation ---------------------------------------------------------------------------

    def action_validate(self) -> None:
        if self.path:
            self._start_validation([self.path])
        else:
            self.notify("Select a data set first.", severity="warning")

    def action_validate_folder(self) -> None:
        """Validate every data set in the selected one's folder together (finds leakage)."""
        if not self.path:
            self.notify("Select a data set first.", severity="warning")
            return
        folder = Path(self.path).parent
        self._start_validation([p for p in self.infos if Path(p).parent == folder])

    def _start_validation(self, paths: list[str]) -> None:
        bar = self.query_one("#validate-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.notify(f"Validating {', '.join(Path(p).name for p in paths)}…")
        self._validate(paths)

    @work(thread=True, exclusive=True, group="validate", exit_on_error=False)
    def _validate(self, paths: list[str]) -> None:
        worker = get_current_worker()

        def progress(done: int, total: int) -> None:
            if worker.is_cancelled:
                raise _Cancelled()
            self.post_message(self.ValidateProgress(done, total))

        try:
            from engine.data.load import find_schemas_dir
            from engine.data.validate import record_validation, validate_files

            schemas_dir = find_schemas_dir(paths[0])
            report = validate_files(paths, schemas_dir=schemas_dir, progress=progress)
            config = {
                "paths": [str(Path(p).resolve()) for p in paths],
                "schemas_dir": str(schemas_dir) if schemas_dir else None,
                "rules": report.rules_sources,
            }
            from engine import runlog

            db = open_db(self.db_path)
            try:
                run_id = record_validation(db, report, config)
            finally:
                runlog.close(db)
        except _Cancelled:
            return
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed("validation", short_error(exc)))
            return
        self.post_message(self.Validated(run_id, paths, dict(report.by_severity)))

    def on_datasets_pane_validate_progress(self, message: ValidateProgress) -> None:
        self.query_one("#validate-progress", ProgressBar).update(
            total=max(message.total, 1), progress=message.done
        )

    def _hide_progress(self) -> None:
        bar = self.query_one("#validate-progress", ProgressBar)
        bar.display = False
        stop_progress(bar)  # a hidden indeterminate bar still redraws 15 times a second

    def on_datasets_pane_validated(self, message: Validated) -> None:
        self._hide_progress()
        counts = ", ".join(f"{n} {k}" for k, n in message.counts.items() if n) or "no findings"
        self.notify(f"Validation run #{message.run_id}: {counts}.")
        self.pinned_run = None
        if self.path in message.paths:
            self.load(self.path)
        if self._pending_validation:
            self._start_validation(self._pending_validation.pop(0))
        self._discover()

    def on_datasets_pane_failed(self, message: Failed) -> None:
        if message.what == "validation":
            self._hide_progress()
        if message.what == "finding data sets" and not self.infos:
            self.query_one("#example-prompt", Static).update(
                f"[red]Cannot list the data sets:[/red] {escape(message.message)}"
            )
        if message.what == "counting tokens":
            self.query_one("#stats-lengths", Static).update(
                f"[red]Cannot count tokens with {escape(self.token_model)!r}:[/red] "
                f"{escape(message.message)}\n[dim]Choose another model in the Train pane "
                "(e.g. `tiny`).[/dim]"
            )
        self.notify(f"Error {message.what}: {message.message}", severity="error", timeout=10)

    # Stats --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "close_stats":  # escape means something only while stats are on show
            return self.query_one(ContentSwitcher).current == "stats-view"
        return True

    def action_close_stats(self) -> None:
        if self.query_one(ContentSwitcher).current == "stats-view":
            self.action_toggle_stats()

    def action_toggle_stats(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        if switcher.current == "stats-view":
            switcher.current = "examples-view"
            self.query_one("#example-table", DataTable).focus()
        else:
            switcher.current = "stats-view"
            self.query_one("#stats-view", VerticalScroll).focus()
            self._sync_train_settings()
            self._show_stats()
        self.refresh_bindings()

    def _sync_train_settings(self) -> None:
        """Take the tokenizer and max_seq_len from the Train form when the app has one."""
        settings = self.train_settings() if self.train_settings is not None else None
        if settings is not None:
            model, max_seq_len = settings
            self.token_model = model or "tiny"
            if max_seq_len:
                self.max_seq_len = int(max_seq_len)
            self.token_source = "the Train form"

    def set_token_model(self, model: str, max_seq_len: int | None) -> None:
        """Use `model`'s tokenizer and `max_seq_len` (both from the Train form) for the stats."""
        self.token_model = model or "tiny"
        if max_seq_len:
            self.max_seq_len = int(max_seq_len)
        self.token_source = "the Train form"
        if self.query_one(ContentSwitcher).current == "stats-view":
            self._show_stats()

    def _show_stats(self) -> None:
        self.query_one("#stats-counts", Static).update(render_counts(self.examples))
        key = (self.path, self.token_model, len(self.examples))
        if key in self.lengths:
            self._show_lengths(self.lengths[key])
        elif self.examples:
            self.query_one("#stats-lengths", Static).update(
                f"Counting tokens with the {self.token_model!r} tokenizer…"
            )
            self._count_tokens(key, list(self.examples), self.token_model)

    @work(thread=True, exclusive=True, group="datasets-tokens", exit_on_error=False)
    def _count_tokens(self, key: tuple, examples: list, model: str) -> None:
        try:
            from engine.data.validate import token_lengths
            from engine.models.load import load_tokenizer

            lengths = token_lengths(examples, load_tokenizer(model))
        except Exception as exc:  # noqa: BLE001
            if not get_current_worker().is_cancelled:
                self.post_message(self.Failed("counting tokens", short_error(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Lengths(key, lengths))

    def on_datasets_pane_lengths(self, message: Lengths) -> None:
        self.lengths[message.key] = message.lengths
        if message.key == (self.path, self.token_model, len(self.examples)):
            self._show_lengths(message.lengths)

    def _show_lengths(self, lengths: list[int]) -> None:
        self.query_one("#stats-lengths", Static).update(
            render_histogram(lengths, self.max_seq_len, self.token_model)
            + f"\n[dim]tokenizer and max_seq_len from {escape(self.token_source)}[/dim]"
        )

    def action_train_on(self) -> None:
        if self.path:
            self.post_message(self.TrainOn(self.path))


def default_max_seq_len() -> int:
    """The engine's default max_seq_len (what a new Train form shows); 512 if unreadable."""
    try:
        from engine.train.config import DEFAULTS

        return int(DEFAULTS.get("max_seq_len") or 512)
    except Exception:  # noqa: BLE001 - a fallback for the stats view only
        return 512


def _too_big(value: Any) -> bool:
    """Whether a value has a string or array longer than the preview shows, looking at no
    more than a few thousand nodes."""
    stack, seen = [value], 0
    while stack and seen < 5000:
        node = stack.pop()
        seen += 1
        if isinstance(node, str) and len(node) > PREVIEW_CHARS:
            return True
        if isinstance(node, (list, dict)):
            if len(node) > PREVIEW_ITEMS:
                return True
            stack.extend(node.values() if isinstance(node, dict) else node)
    return bool(stack)


def preview(value: Any, depth: int = 0) -> Any:
    """`value` itself when small; else a copy with long strings cut and long arrays and
    objects ending in a note of how many items are left out."""
    if depth == 0 and not _too_big(value):
        return value
    if isinstance(value, str) and len(value) > PREVIEW_CHARS:
        return value[:PREVIEW_CHARS] + f"… ({len(value) - PREVIEW_CHARS} more characters)"
    if depth > 30:
        return "…"
    if isinstance(value, list):
        out = [preview(v, depth + 1) for v in value[:PREVIEW_ITEMS]]
        if len(value) > PREVIEW_ITEMS:
            out.append(f"… {len(value) - PREVIEW_ITEMS} more items")
        return out
    if isinstance(value, dict):
        out = {k: preview(v, depth + 1) for k, v in islice(value.items(), PREVIEW_ITEMS)}
        if len(value) > PREVIEW_ITEMS:
            out["…"] = f"{len(value) - PREVIEW_ITEMS} more keys"
        return out
    return value


def _matches(want: dict[str, str], schema, complexity, split, found: list[dict]) -> bool:
    if want["schema"] and schema != want["schema"]:
        return False
    if want["complexity"] and (complexity or "unknown") != want["complexity"]:
        return False
    if want["split"] and (split or "none") != want["split"]:
        return False
    kind = want["finding"]
    if kind == "any":
        return bool(found)
    if kind == "none":
        return not found
    return not kind or any(f["kind"] == kind for f in found)


SCHEMA_WIDTH = 18
FINDINGS_WIDTH = 18


def _finding_cell(found: list[dict]) -> str:
    if not found:
        return ""
    worst = min(
        found,
        key=lambda f: (
            ("error", "warning", "info").index(f["severity"])
            if f["severity"] in ("error", "warning", "info")
            else 3
        ),
    )
    kinds = sorted({f["kind"] for f in found})
    more = f" +{len(kinds) - 1}" if len(kinds) > 1 else ""
    kind = middle_cut(kinds[0], FINDINGS_WIDTH - 2 - len(more))
    return f"{SEVERITY_MARK.get(worst['severity'], '')} {kind}{more}"


# Reading validation results and summarising a data set (pure functions, run in workers) ------


def _resolved(path: str | Path | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def run_files(db, run_id: int) -> list[str]:
    """The data files (resolved paths) a validate run covered, from its config and findings."""
    from engine import runlog

    run = runlog.run_row(db, run_id)
    if run is None:
        return []
    files: list[str] = []
    config = run.get("config") or {}
    for key in ("paths", "files", "data", "data_paths"):
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, str):
            value = [value]
        files.extend(str(v) for v in value or [])
    if run.get("data_path"):
        files.extend(run["data_path"].replace(",", ";").split(";"))
    files.extend(runlog.validation_files(db, run_id))
    out: list[str] = []
    for f in files:
        r = _resolved(f.strip())
        if r and r not in out:
            out.append(r)
    return out


def last_validation_run(db, path: str | Path) -> int | None:
    """The newest finished validate run that covered `path`."""
    from engine import runlog

    target = _resolved(path)
    for run_id in runlog.completed_validate_run_ids(db):
        if target in run_files(db, run_id):
            return run_id
    return None


def _issues(db, run_id: int, path: str | Path) -> list[dict]:
    from engine import runlog

    target = _resolved(path)
    rows = runlog.validation_findings(db, run_id)
    return [r for r in rows if r["file"] is None or _resolved(r["file"]) == target]


def validation_status(db, path: str | Path) -> str:
    """`not validated`, or the last validate run's id with its errors and warnings for `path`."""
    run_id = last_validation_run(db, path)
    if run_id is None:
        return "[dim]not validated[/dim]"
    counts = Counter(f["severity"] for f in _issues(db, run_id, path))
    if not counts.get("error") and not counts.get("warning"):
        return f"[green]✓ clean[/green] #{run_id}"
    parts = []
    if counts.get("error"):
        parts.append(f"[red]{counts['error']} err[/red]")
    if counts.get("warning"):
        parts.append(f"[yellow]{counts['warning']} warn[/yellow]")
    return " ".join(parts) + f" #{run_id}"


def file_findings(db, path: str, load_findings: list, run_id: int | None):
    """Findings for `path`: those from loading it plus those stored by validate run `run_id`
    (default: the last run that covered it), without duplicates. Returns (findings, run id)."""
    run_id = run_id or last_validation_run(db, path)
    found = [f.to_dict() for f in load_findings]
    if run_id is not None:
        found.extend(_issues(db, run_id, path))
    seen, out = set(), []
    for f in found:
        key = (f["kind"], f.get("example_id"), f.get("line"), f.get("path"), f["message"])
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out, run_id


def findings_for_example(examples: list, findings: list[dict]) -> dict[int | None, list[dict]]:
    """Findings grouped by example index (by line, else by id); None holds the rest."""
    by_line = {ex.line: i for i, ex in enumerate(examples) if ex.line is not None}
    by_id = {}
    for i, ex in enumerate(examples):
        by_id.setdefault(ex.id, i)
    out: dict[int | None, list[dict]] = {}
    for f in findings:
        index = by_line.get(f.get("line")) if f.get("line") is not None else None
        if index is None and f.get("example_id") is not None:
            index = by_id.get(f["example_id"])
        out.setdefault(index, []).append(f)
    return out


def _bar(n: int, most: int, width: int = 30) -> str:
    return "█" * max(1 if n else 0, round(width * n / most)) if most else ""


def render_counts(examples: list) -> str:
    """Examples per complexity and per schema, as bars."""
    if not examples:
        return "No examples loaded."
    lines = [f"[b]{len(examples)} examples[/b]", "", "[b]Per complexity[/b]"]
    by_cx = Counter(e.complexity or "unknown" for e in examples)
    most = max(by_cx.values())
    for cx in ("simple", "medium", "complex", "unknown"):
        if cx in by_cx:
            lines.append(f"  {cx:<8} {by_cx[cx]:>6}  {_bar(by_cx[cx], most)}")
    by_schema = Counter(e.schema_id for e in examples)
    most = max(by_schema.values())
    lines += ["", f"[b]Per schema[/b] ({len(by_schema)})"]
    for schema, n in sorted(by_schema.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {escape(schema[:28]):<28} {n:>6}  {_bar(n, most, 24)}")
    return "\n".join(lines)


def render_histogram(lengths: list[int], max_seq_len: int, model: str, bins: int = 12) -> str:
    """A token-length histogram; bins past `max_seq_len` are red, with the count dropped."""
    if not lengths:
        return "No token lengths."
    top = max(max(lengths), max_seq_len)
    width = max(1, -(-top // bins))
    counts = Counter(min(n // width, bins - 1) for n in lengths)
    most = max(counts.values())
    dropped = sum(n > max_seq_len for n in lengths)
    ordered = sorted(lengths)
    lines = [
        (
            f"[b]Token lengths[/b] ({escape(model)} tokenizer, prompt + JSON + EOS): "
            f"min {ordered[0]}, median {ordered[len(ordered) // 2]}, max {ordered[-1]}"
        ),
        f"[red]{dropped} of {len(lengths)} longer than max_seq_len {max_seq_len}[/red]"
        if dropped
        else f"[green]all {len(lengths)} fit max_seq_len {max_seq_len}[/green]",
        "",
    ]
    for b in range(bins):
        lo, hi = b * width, (b + 1) * width - 1
        n = counts.get(b, 0)
        style = "red" if hi > max_seq_len else "cyan"
        lines.append(f"  {lo:>5}-{hi:<5} {n:>6}  [{style}]{_bar(n, most)}[/{style}]")
    return "\n".join(lines)
