"""The Playground pane: one prompt, two columns of model settings, tokens streamed into both at
once, then each column's parse / validity / speed and its diff against the expected output.

Decoding runs in one thread worker per column; workers post small messages and the handlers
here own the widgets. Models load inside the workers and are cached per (model, adapter).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from tui.adapters import AUTO, AdapterChoice, AdapterPicker, resolve_template, template_options
from tui.results import (
    DiffView,
    constrained_label,
    error_message,
    preset_mode,
    short,
    yes_no,
)
from tui.widgets import StateCheckbox, TextInput

SIDES = ("a", "b")
FALLBACK_PRESETS = ("greedy", "loop-guard")
# Streamed pieces are batched so a fast model does not flood the message queue.
POST_EVERY_S = 0.03
TYPED_PROMPT = "typed prompt (ctrl+o picks a data set example)"


def preset_names() -> list[str]:
    """Decoding presets from the engine (its module level is light); a fallback if absent."""
    try:
        from engine.decode.generate import PRESETS
    except ImportError:
        return list(FALLBACK_PRESETS)
    return list(PRESETS)


@dataclass(frozen=True)
class ColumnRequest:
    """What one column decodes: the prompt, the schema, and that column's settings."""

    side: str
    model: str
    adapter: str
    preset: str
    constrained: bool
    prompt: str
    schema_id: str
    schema: dict | None
    example: Any  # engine.data.types.Example with the expected output, or None
    max_new_tokens: int | None = None  # overrides the preset's limit when set
    template: str = AUTO  # a prompt template, or AUTO: the adapter's training template


class PlaygroundColumn(Vertical):
    """One side: model, adapter, preset, constrained on/off and prompt template, the output,
    and its scores."""

    DEFAULT_CSS = """
    PlaygroundColumn { width: 1fr; height: 1fr; border: round $primary 50%; padding: 0 1; }
    PlaygroundColumn .settings { height: 1; }
    PlaygroundColumn .settings Input { width: 1fr; }
    PlaygroundColumn .settings Select { width: 1fr; }
    PlaygroundColumn .settings Checkbox { width: auto; }
    PlaygroundColumn .settings Label { width: auto; color: $text-muted; }
    PlaygroundColumn .output-scroll { height: 1fr; min-height: 2; }
    PlaygroundColumn .status { height: auto; color: $text-muted; }
    PlaygroundColumn DiffView { height: auto; max-height: 8; }
    """

    def __init__(self, side: str, presets: list[str], *, constrained: bool = False) -> None:
        super().__init__(id=f"col-{side}")
        self.side = side
        self.presets = presets
        self.initial_constrained = constrained
        self.text = ""
        self.border_title = f"Column {side.upper()}"

    def compose(self) -> ComposeResult:
        side = self.side
        default = "greedy" if "greedy" in self.presets else self.presets[0]
        with Horizontal(classes="settings"):
            yield TextInput("tiny", placeholder="model", id=f"model-{side}", compact=True)
            yield TextInput(placeholder="adapter (ctrl+r)", id=f"adapter-{side}", compact=True)
        with Horizontal(classes="settings"):
            yield Select(
                [(p, p) for p in self.presets],
                value=default,
                allow_blank=False,
                id=f"preset-{side}",
                compact=True,
            )
            yield StateCheckbox(
                "constrained", self.initial_constrained, id=f"constrained-{side}", compact=True
            )
        with Horizontal(classes="settings"):
            yield Label("template ")
            yield Select(
                template_options(),
                value=AUTO,
                allow_blank=False,
                id=f"template-{side}",
                compact=True,
            )
        with VerticalScroll(classes="output-scroll"):
            yield Static("", id=f"output-{side}", classes="output")
        yield Static("", id=f"status-{side}", classes="status")
        yield DiffView("", id=f"diff-{side}")

    def on_mount(self) -> None:
        self.update_title()

    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _settings_changed(self, event) -> None:
        self.update_title()

    def update_title(self) -> None:
        """The border says how this column decodes: greedy or sampling, constrained or not."""
        _, _, preset, constrained = self.settings()
        self.border_title = (
            f"Column {self.side.upper()} · {preset_mode(preset)} · {constrained_label(constrained)}"
        )

    def settings(self) -> tuple[str, str, str, bool]:
        side = self.side
        return (
            self.query_one(f"#model-{side}", Input).value.strip() or "tiny",
            self.query_one(f"#adapter-{side}", Input).value.strip(),
            str(self.query_one(f"#preset-{side}", Select).value),
            self.query_one(f"#constrained-{side}", Checkbox).value,
        )

    def template(self) -> str:
        """The chosen prompt template, or AUTO (the adapter's training template)."""
        return str(self.query_one(f"#template-{self.side}", Select).value)

    def set_adapter(self, choice: AdapterChoice) -> None:
        """Use a picked adapter; the template follows the adapter's unless one was chosen."""
        self.query_one(f"#adapter-{self.side}", Input).value = choice.spec

    def reset(self) -> None:
        self.text = ""
        self.query_one(f"#output-{self.side}", Static).update("")
        self.query_one(f"#diff-{self.side}", DiffView).update("")
        self.set_status("")

    def append(self, piece: str) -> None:
        self.text += piece
        self.query_one(f"#output-{self.side}", Static).update(Text(self.text))
        self.query_one(".output-scroll", VerticalScroll).scroll_end(animate=False)

    def set_status(self, status: str | Text) -> None:
        self.query_one(f"#status-{self.side}", Static).update(status)

    def show_result(self, result: dict) -> None:
        """The scores of a finished output: parses, schema-valid, tokens/s, and the diff."""
        status = Text.assemble(
            "parses ",
            yes_no(result.get("parsed") is not None),
            "  valid ",
            yes_no(result.get("schema_valid")),
            f"  {result.get('tokens_per_s', 0.0):.1f} tok/s  {result.get('n_tokens', 0)} tokens",
        )
        if result.get("cancelled"):
            status.append("  cancelled", style="yellow")
        if result.get("json_exact") is not None:
            status.append("  exact ")
            status.append_text(yes_no(result["json_exact"]))
        self.set_status(status)
        diff = self.query_one(f"#diff-{self.side}", DiffView)
        if result.get("has_expected"):
            diff.show(result.get("diff"), result.get("parse_error"))
        else:
            diff.update(Text("no expected output to compare with", style="dim"))


class ExamplePicker(ModalScreen):
    """Pick a data set, then one of its examples; dismisses with the Example or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close")]
    DEFAULT_CSS = """
    ExamplePicker { align: center middle; }
    ExamplePicker > Vertical {
        width: 90%; height: 90%; border: thick $primary; background: $surface;
    }
    ExamplePicker #picker-sets { height: 6; }
    ExamplePicker #picker-examples { height: 1fr; }
    """

    @dataclass
    class Loaded(Message):
        """Examples of the chosen data set were read."""

        examples: list
        error: str | None

    def __init__(self, dataset_paths: list[str]) -> None:
        super().__init__()
        self.dataset_paths = dataset_paths
        self.datasets: list = []
        self.examples: list = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                "Data set (enter opens it), then an example (enter uses it; type to "
                "filter); escape closes"
            )
            yield OptionList(id="picker-sets")
            yield TextInput(
                placeholder="filter: id, schema or text", id="picker-filter", compact=True
            )
            yield OptionList(id="picker-examples")

    def on_mount(self) -> None:
        self.load_datasets()

    @work(thread=True, exclusive=True, group="picker-sets", exit_on_error=False)
    def load_datasets(self) -> None:
        from engine.data.load import discover_datasets

        try:
            found = discover_datasets(self.dataset_paths)
        except Exception as exc:  # noqa: BLE001 - an unreadable folder is a notification
            self.app.call_from_thread(self.notify, error_message(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_datasets, found)

    def _show_datasets(self, found: list) -> None:
        self.datasets = found
        sets = self.query_one("#picker-sets", OptionList)
        sets.clear_options()
        for info in found:
            sets.add_option(Option(f"{info.name}  ({info.n_examples} examples)  {info.path}"))
        if not found:
            where = ", ".join(self.dataset_paths)
            sets.add_option(Option(f"no data sets under {where}", disabled=True))
        else:
            sets.highlighted = 0  # enter works at once
        sets.focus()

    @on(OptionList.OptionSelected, "#picker-sets")
    def _open_dataset(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self.datasets):
            self.load_examples(str(self.datasets[event.option_index].path))

    @work(thread=True, exclusive=True, group="picker-examples", exit_on_error=False)
    def load_examples(self, path: str) -> None:
        from engine.data.load import load_examples

        try:
            examples, error = load_examples(path).examples, None
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            examples, error = [], f"{path}: {error_message(exc)}"
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(examples, error))

    def on_example_picker_loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        self.examples = message.examples
        self._fill_examples()
        self.query_one("#picker-examples", OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        """Typing on the example list goes to the filter, so a user can just type an id."""
        listing = self.query_one("#picker-examples", OptionList)
        if self.focused is listing and event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            field = self.query_one("#picker-filter", Input)
            field.insert_text_at_cursor(event.character)
            field.focus()

    @on(Input.Submitted, "#picker-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter picks the first example shown."""
        event.stop()
        listing = self.query_one("#picker-examples", OptionList)
        if listing.option_count:
            self.dismiss(self.examples[int(listing.get_option_at_index(0).id)])

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self._fill_examples()

    def _fill_examples(self) -> None:
        needle = self.query_one("#picker-filter", Input).value.strip().lower()
        listing = self.query_one("#picker-examples", OptionList)
        listing.clear_options()
        for index, ex in enumerate(self.examples):
            line = f"{ex.id}  [{ex.schema_id}, {ex.complexity or '?'}]  {short(ex.prompt, 60)}"
            if needle and needle not in line.lower():
                continue
            listing.add_option(Option(line, id=str(index)))
        if listing.option_count:
            listing.highlighted = 0  # enter works at once

    @on(OptionList.OptionSelected, "#picker-examples")
    def _pick(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.examples[int(event.option.id)])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class PlaygroundPane(Vertical):
    """Prompt on top, two decoding columns side by side (stacked when narrow)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Control keys, so they work while typing in the prompt box or a settings field.
        Binding("ctrl+g", "generate", "Generate"),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+o", "pick_example", "Pick example"),
        Binding("ctrl+n", "new_prompt", "New prompt"),
        Binding("ctrl+r", "pick_adapter", "Adapter"),
    ]
    DEFAULT_CSS = """
    PlaygroundPane { height: 1fr; }
    PlaygroundPane #pg-top { height: 1; }
    PlaygroundPane #pg-top Label { width: auto; padding-right: 1; }
    PlaygroundPane #pg-schema { width: 24; }
    PlaygroundPane #pg-max-tokens { width: 8; }
    PlaygroundPane #pg-top-gap { width: 1fr; }
    PlaygroundPane #pg-example { height: 1; color: $text-muted; }
    PlaygroundPane #pg-top Button { min-width: 10; margin-left: 1; }
    PlaygroundPane #pg-prompt { height: 6; }
    PlaygroundPane #pg-expected { height: auto; max-height: 2; color: $text-muted; }
    PlaygroundPane #pg-columns { height: 1fr; }
    PlaygroundPane.narrow #pg-prompt { height: 4; }
    """

    @dataclass
    class Piece(Message):
        """Text decoded by one column since its last piece, with the count so far."""

        side: str
        text: str
        n_tokens: int = 0  # pieces streamed so far (one per token, whole characters only)
        seconds: float = 0.0  # since decoding started

    @dataclass
    class Status(Message):
        """A column's status line changed (loading the model, decoding)."""

        side: str
        text: str

    @dataclass
    class Done(Message):
        """A column finished (or was cancelled); `result` holds its scores."""

        side: str
        result: dict

    @dataclass
    class Warned(Message):
        """A column decodes with something worth knowing (a template the adapter was not
        trained with)."""

        side: str
        message: str

    @dataclass
    class Failed(Message):
        """A column's decoding failed with a message a person can act on."""

        side: str
        message: str

    def __init__(self, db_path: str, dataset_paths: list[str], id: str | None = None) -> None:
        super().__init__(id=id)
        self.db_path = str(db_path)
        self.dataset_paths = [str(p) for p in dataset_paths]
        self.example = None  # the picked Example, whose expected output columns are scored against
        self.schema: dict | None = None
        self._cancel: dict[str, threading.Event] = {s: threading.Event() for s in SIDES}
        self._registries: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        presets = preset_names()
        # Controls on one row that fits 80 columns; where the prompt comes from on its own row.
        with Horizontal(id="pg-top"):
            yield Label("schema")
            yield TextInput(placeholder="schema id", id="pg-schema", compact=True)
            yield Label("max tokens")
            yield TextInput(placeholder="preset", type="integer", id="pg-max-tokens", compact=True)
            yield Static(id="pg-top-gap")
            yield Button("Generate", id="pg-generate", variant="primary", compact=True)
            yield Button("Cancel", id="pg-cancel", compact=True)
        yield Static(TYPED_PROMPT, id="pg-example")
        yield TextArea(id="pg-prompt", placeholder="Text to extract JSON from", compact=True)
        yield Static("", id="pg-expected")
        with Horizontal(id="pg-columns"):
            yield PlaygroundColumn("a", presets)
            yield PlaygroundColumn("b", presets, constrained=True)

    def on_resize(self) -> None:
        # Below 100 columns the columns shrink side by side; the prompt gives them rows.
        self.set_class(self.size.width < 100 or self.size.height < 30, "narrow")

    def escape_cancels(self) -> bool:
        """While a column decodes, escape cancels even from a text field."""
        return any(
            w.is_running and w.node is self and w.group in ("col-a", "col-b") for w in self.workers
        )

    def focus_main(self) -> None:
        """The pane's main non-text widget (escape from a text field lands here): Generate."""
        self.query_one("#pg-generate", Button).focus()

    def column(self, side: str) -> PlaygroundColumn:
        return self.query_one(f"#col-{side}", PlaygroundColumn)

    # --- the prompt -------------------------------------------------------------------------

    def set_example(self, example) -> None:
        """Fill the prompt, schema id, schema and expected output from a data set example."""
        self.example = example
        self.schema = example.inline_schema or self._schema_for(example)
        self.query_one("#pg-prompt", TextArea).text = example.prompt
        self.query_one("#pg-schema", Input).value = example.schema_id
        where = f"{Path(example.file).name}:{example.line}" if example.file else ""
        self.query_one("#pg-example", Static).update(
            f"example {example.id} {where} ({example.complexity or '?'})"
            + ("" if self.schema else "  schema file not found: constrained decoding off")
        )
        self.query_one("#pg-expected", Static).update(
            Text.assemble(("expected ", "bold"), short(example.expected, 400))
        )
        for side in SIDES:
            self.column(side).reset()

    def _schema_for(self, example) -> dict | None:
        """The example's schema from the registry beside its file (read once per folder)."""
        if not example.file:
            return None
        try:
            from engine.data.load import SchemaRegistry, find_schemas_dir

            folder = find_schemas_dir(example.file)
            if folder is None:
                return None
            key = str(folder)
            if key not in self._registries:
                self._registries[key] = SchemaRegistry.from_dir(folder)
            return self._registries[key].get(example.schema_id)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.notify(f"schemas for {example.file}: {error_message(exc)}", severity="warning")
            return None

    def action_pick_example(self) -> None:
        """Open the data set -> example picker."""

        def picked(example) -> None:
            if example is not None:
                self.set_example(example)

        self.app.push_screen(ExamplePicker(self.dataset_paths), picked)

    def action_pick_adapter(self) -> None:
        """Pick an adapter from the run log's training runs for the focused column (else A)."""
        focused = self.screen.focused
        around = focused.ancestors if focused is not None else []
        columns = [n for n in around if isinstance(n, PlaygroundColumn)]
        side = columns[0].side if columns else "a"

        def picked(choice: AdapterChoice | None) -> None:
            if choice is None:
                return
            column = self.column(side)
            column.set_adapter(choice)
            template = column.template()
            used = choice.template if template == AUTO else template
            self.notify(
                f"Column {side.upper()}: adapter {choice.spec}, template {used}"
                + (" (its training template)" if template == AUTO else "")
            )

        self.app.push_screen(
            AdapterPicker(self.db_path, f"Adapter for column {side.upper()}"), picked
        )

    def action_new_prompt(self) -> None:
        """Clear the prompt, the expected output and both columns."""
        self.example, self.schema = None, None
        self.query_one("#pg-prompt", TextArea).text = ""
        self.query_one("#pg-example", Static).update(TYPED_PROMPT)
        self.query_one("#pg-expected", Static).update("")
        for side in SIDES:
            self.column(side).reset()

    # --- generating -------------------------------------------------------------------------

    @on(Button.Pressed, "#pg-generate")
    def _generate_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_generate()

    @on(Button.Pressed, "#pg-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_generate(self) -> None:
        """Decode the prompt in both columns at once."""
        prompt = self.query_one("#pg-prompt", TextArea).text
        if not prompt.strip():
            self.notify("Type a prompt or pick an example (ctrl+o) first.", severity="warning")
            return
        schema_id = self.query_one("#pg-schema", Input).value.strip() or "unknown"
        example = self.example if self.example and self.example.schema_id == schema_id else None
        schema = self.schema if example is not None else None
        limit = self.query_one("#pg-max-tokens", Input).value.strip()
        max_new_tokens = int(limit) if limit.isdigit() and int(limit) > 0 else None
        for side in SIDES:
            column = self.column(side)
            model, adapter, preset, constrained = column.settings()
            request = ColumnRequest(
                side,
                model,
                adapter,
                preset,
                constrained,
                prompt,
                schema_id,
                schema,
                example,
                max_new_tokens,
                column.template(),
            )
            column.reset()
            self._cancel[side].set()  # stops a previous stream in this column
            self._cancel[side] = threading.Event()
            worker = self._decode_a if side == "a" else self._decode_b
            worker(request, self._cancel[side])

    def action_cancel(self) -> None:
        """Stop decoding in both columns."""
        for side in SIDES:
            self._cancel[side].set()
            self.workers.cancel_group(self, f"col-{side}")

    @work(thread=True, exclusive=True, group="col-a", exit_on_error=False)
    def _decode_a(self, request: ColumnRequest, cancel: threading.Event) -> None:
        self._decode(request, cancel)

    @work(thread=True, exclusive=True, group="col-b", exit_on_error=False)
    def _decode_b(self, request: ColumnRequest, cancel: threading.Event) -> None:
        self._decode(request, cancel)

    def _decode(self, request: ColumnRequest, cancel: threading.Event) -> None:
        """Worker body: load (or reuse) the model, stream pieces, then score the output."""
        worker = get_current_worker()
        side = request.side
        try:
            template, warning = resolve_template(self.db_path, request.template, request.adapter)
            if warning:
                self.post_message(self.Warned(side, warning))
            request = replace(request, template=template)
            generator = self._generator(request)
            if worker.is_cancelled or cancel.is_set():
                self.post_message(self.Done(side, {"cancelled": True}))
                return
            from engine.decode.generate import decoding_from

            limit = request.max_new_tokens
            overrides = [f"max_new_tokens={limit}"] if limit else []
            config = decoding_from(request.preset, overrides)
            self.post_message(self.Status(side, f"decoding… (template {template})"))
            pieces: list[str] = []
            pending: list[str] = []
            started = last_post = time.perf_counter()
            generator.last = None
            for piece in generator.stream(
                request.prompt,
                request.schema_id,
                request.schema,
                config,
                constrained=request.constrained,
                cancel=cancel,
            ):
                pieces.append(piece)
                pending.append(piece)
                if worker.is_cancelled:
                    cancel.set()
                    break
                now = time.perf_counter()
                if now - last_post >= POST_EVERY_S:
                    self.post_message(
                        self.Piece(side, "".join(pending), len(pieces), now - started)
                    )
                    pending, last_post = [], now
            elapsed = time.perf_counter() - started
            if pending:
                self.post_message(self.Piece(side, "".join(pending), len(pieces), elapsed))
            # The engine's own count and time for the answer; pieces as a fallback.
            last = getattr(generator, "last", None)
            n_tokens = getattr(last, "n_tokens", None) or len(pieces)
            seconds = getattr(last, "latency_s", None) or elapsed
            truncated = bool(getattr(last, "truncated", False))
            result = self._score(request, "".join(pieces), truncated)
            result.update(
                n_tokens=n_tokens,
                tokens_per_s=n_tokens / seconds if seconds > 0 else 0.0,
                cancelled=cancel.is_set() or worker.is_cancelled,
                template=template,
            )
            self.post_message(self.Done(side, result))
        except Exception as exc:  # noqa: BLE001 - the engine's message becomes a notification
            self.post_message(self.Failed(side, error_message(exc)))

    def _generator(self, request: ColumnRequest):
        """A Generator for this column over the weights of (model, adapter), loaded here, in the
        worker, the first time and shared with the other column and the Evaluate pane
        (tui.model_cache). Each column gets its own light Generator so its figures (`last`)
        stay its own."""
        from tui.model_cache import MODELS

        return MODELS.generator(
            request.model,
            request.adapter or None,
            db=self.db_path,
            template=request.template,
            on_load=lambda: self.post_message(
                self.Status(request.side, f"loading model {request.model}…")
            ),
        )

    @staticmethod
    def _score(request: ColumnRequest, text: str, truncated: bool) -> dict:
        """Parse, validity and (with an expected output) the diff, all from engine.evaluate.metrics."""
        from engine.data.types import Example
        from engine.evaluate.metrics import score

        example = request.example
        has_expected = example is not None
        if example is None:  # parse and validity still apply; exact match and diff do not
            example = Example(
                id="playground", schema_id=request.schema_id, prompt=request.prompt, expected={}
            )
        scores = dict(score(example, text, request.schema, truncated=truncated))
        scores["has_expected"] = has_expected
        if not has_expected:
            scores.update(json_exact=None, diff=[])
        return scores

    # --- handlers own the widgets -----------------------------------------------------------

    def on_playground_pane_piece(self, message: Piece) -> None:
        column = self.column(message.side)
        column.append(message.text)
        if message.n_tokens:
            rate = message.n_tokens / message.seconds if message.seconds > 0 else 0.0
            column.set_status(Text(f"streaming… {message.n_tokens} tokens · {rate:.1f} tok/s"))

    def on_playground_pane_status(self, message: Status) -> None:
        self.column(message.side).set_status(Text(message.text))

    def on_playground_pane_done(self, message: Done) -> None:
        column = self.column(message.side)
        if message.result.get("template"):
            column.border_subtitle = f"template {message.result['template']}"
        if "parsed" in message.result:
            column.show_result(message.result)
        else:
            column.set_status(Text("cancelled", style="yellow"))

    def on_playground_pane_warned(self, message: Warned) -> None:
        self.notify(f"Column {message.side.upper()}: {message.message}", severity="warning")

    def on_playground_pane_failed(self, message: Failed) -> None:
        self.column(message.side).set_status(Text(message.message, style="red"))
        self.notify(f"Column {message.side.upper()}: {message.message}", severity="error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that died outside its own error handling still ends as a notification."""
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.notify(error_message(event.worker.error), severity="error")
