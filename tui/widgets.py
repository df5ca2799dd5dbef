"""Small widgets and helpers shared by the panes: a text field that never selects its text on
focus, a checkbox whose state shows without colour, a progress bar that is idle when unused, a
JSON viewer that highlights a path, yes/no and text modals, and formatting of times and durations
taken from stored values (never from "now", so the same run log always renders the same way)."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Input,
    Label,
    ProgressBar,
    Static,
    TextArea,
)

# The lines that hold the path a finding points at: a red background, plus bold and underline so
# the highlight survives NO_COLOR (which drops colours but keeps text attributes).
HIGHLIGHT_STYLE = "bold underline on #5f1f1f"


class TextInput(Input):
    """An Input that keeps its text when focused: Textual's default selects all of it on focus,
    so the next key typed would replace the value. Use this for every text field."""

    def __init__(self, *args, select_on_focus: bool = False, **kwargs) -> None:
        super().__init__(*args, select_on_focus=select_on_focus, **kwargs)


class StateCheckbox(Checkbox):
    """A Checkbox whose box shows its state by shape, not only by colour: `X` when checked and
    blank when not (Textual draws the same X for both, so NO_COLOR shows no difference)."""

    @property
    def BUTTON_INNER(self) -> str:  # overrides Textual's class attribute
        return "X" if self.value else " "


class QuietProgressBar(ProgressBar):
    """A ProgressBar that costs nothing while idle: it starts determinate (Textual's default,
    total None, animates 15 times a second even while hidden) and has no once-a-second refresh
    (that only serves the ETA, which panes do not show). Show progress with
    `update(total=None)` or `update(total=n, progress=k)`, and end with stop_progress()."""

    def __init__(self, *args, total: float | None = 100, show_eta: bool = False, **kwargs):
        super().__init__(*args, total=total, show_eta=show_eta, **kwargs)

    def on_mount(self, event: events.Mount) -> None:
        if not self.show_eta:
            event.prevent_default()  # skips ProgressBar's set_interval(1, update)
            self.update()


class AppKeysFirstFooter(Footer):
    """The footer with the app's own keys (panes, help, quit) first: at 80 columns a pane's keys
    fill the row, and the keys that work from any focus must never be the ones cut off.

    It also fixes a leak in Textual's Footer: every recompose (each focus change and each
    refresh_bindings, e.g. a live view's once-a-second tick) data-binds each new key to the
    footer's `compact`, adding a watcher that is never removed (watchers are pruned only when
    `compact` changes), and each new watcher scans all the old ones. After 15 minutes an idle
    session spent most of a core there and tab switches took seconds. Keys here get `compact`
    set directly instead (it never changes in this app)."""

    FIRST = ("f2", "f1", "ctrl+q")

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        for widget in widgets:
            connect = getattr(widget, "_reactive_connect", None)
            if connect and set(connect) == {"compact"}:
                widget._reactive_connect = None  # no watcher on the footer
                widget.set_reactive(type(widget).compact, self.compact)
                widget.set_class(self.compact, "-compact")
        first = [w for w in widgets if getattr(w, "key", None) in self.FIRST]
        yield from sorted(first, key=lambda w: self.FIRST.index(w.key))
        yield from (w for w in widgets if w not in first)


def stop_progress(bar) -> None:
    """Park a ProgressBar at a fixed 0%. An indeterminate bar (total None, Textual's default)
    redraws 15 times a second even while hidden, so a bar that is not in use must never be
    left indeterminate."""
    bar.update(total=100, progress=0)


def is_text_field(widget: Widget | None) -> bool:
    """Whether `widget` takes printable keys as text (so single-letter keys cannot be bindings)."""
    return isinstance(widget, (Input, TextArea))


def keep_text_on_focus(root: Widget) -> None:
    """Turn off select-on-focus for every Input under `root` (for panes built with plain Inputs)."""
    for field in root.query(Input):
        field.select_on_focus = False


_CONNECT_LOCK = threading.Lock()


def open_db(path: str):
    """A fresh run-log connection; each worker thread opens its own. Connecting is serialised
    so two workers never both create a new run log's tables."""
    from engine import runlog

    with _CONNECT_LOCK:
        return runlog.connect(path)


def middle_cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle (`sample_…_0001`): ids differ
    at their ends, so both ends stay readable."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def format_time(ts: float | None) -> str:
    """A stored timestamp as local `YYYY-MM-DD HH:MM`."""
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def format_duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h04m`; `-` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def run_duration(run: dict) -> float | None:
    """How long a run took (or has run, up to its last heartbeat), from stored values only."""
    start = run.get("started")
    end = run.get("ended") or run.get("heartbeat")
    if not start or not end:
        return None
    return max(0.0, end - start)


def _key_path(path: str, key: str) -> str:
    from engine.jsontools import key_path  # the one spelling of a JSON path

    return key_path(path, key)


def json_lines(value: Any) -> tuple[str, dict[str, tuple[int, int]]]:
    """Pretty JSON (two-space indent) and, for every path, the (first, last) line it spans."""
    lines: list[str] = []
    spans: dict[str, tuple[int, int]] = {}

    def emit(val: Any, path: str, depth: int, prefix: str, trailing: str) -> None:
        pad = "  " * depth
        start = len(lines)
        if isinstance(val, dict) and val:
            lines.append(f"{pad}{prefix}{{")
            items = list(val.items())
            for i, (k, v) in enumerate(items):
                sep = "," if i < len(items) - 1 else ""
                emit(v, _key_path(path, str(k)), depth + 1, json.dumps(str(k)) + ": ", sep)
            lines.append(f"{pad}}}{trailing}")
        elif isinstance(val, list) and val:
            lines.append(f"{pad}{prefix}[")
            for i, v in enumerate(val):
                emit(v, f"{path}[{i}]", depth + 1, "", "," if i < len(val) - 1 else "")
            lines.append(f"{pad}]{trailing}")
        else:
            lines.append(f"{pad}{prefix}{json.dumps(val, ensure_ascii=False)}{trailing}")
        spans[path] = (start, len(lines) - 1)

    emit(value, "$", 0, "", "")
    return "\n".join(lines), spans


def normalize_path(path: str | None) -> str | None:
    """A finding's path in the `$.a[0].b` form, whatever form it came in (`a.b`, `/a/0/b`)."""
    if not path:
        return None
    path = path.strip()
    if path.startswith("/"):  # JSON pointer
        out = "$"
        for part in path.strip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            out = f"{out}[{part}]" if part.isdigit() else _key_path(out, part)
        return out
    if not path.startswith("$"):
        path = "$." + path if not path.startswith("[") else "$" + path
    return re.sub(r"\['([^'\]]*)'\]", lambda m: f"[{json.dumps(m.group(1))}]", path)


def _path_parents(path: str) -> list[str]:
    """`$.a[0].b` -> [`$.a[0].b`, `$.a[0]`, `$.a`, `$`] (to highlight the closest existing one)."""
    out = [path]
    while True:
        m = re.match(r"^(.*)(\.[^.\[]+|\[[^\]]*\])$", path)
        if not m or not m.group(1):
            break
        path = m.group(1)
        out.append(path)
    return out


class JsonView(Static):
    """Syntax-highlighted JSON; the lines of `highlight` paths get a red background."""

    DEFAULT_CSS = "JsonView { height: auto; }"
    highlighted: ClassVar[list[str]] = []  # replaced per instance by show()

    def show(self, value: Any, highlight: list[str] | None = None) -> int | None:
        """Show `value`; returns the first highlighted line (0-based), if any."""
        text, spans = json_lines(value)
        self.highlighted = []
        rich_text = Syntax(text, "json", theme="ansi_dark", word_wrap=True).highlight(text)
        rich_text.rstrip()
        starts = [0]
        for line in text.split("\n"):
            starts.append(starts[-1] + len(line) + 1)
        for raw in highlight or []:
            norm = normalize_path(raw)
            if norm is None:
                continue
            for candidate in _path_parents(norm):
                if candidate in spans and candidate != "$":
                    first, last = spans[candidate]
                    rich_text.stylize(HIGHLIGHT_STYLE, starts[first], starts[last + 1] - 1)
                    self.highlighted.append(candidate)
                    break
        self.update(rich_text)
        lines = [spans[p][0] for p in self.highlighted]
        return min(lines) if lines else None

    def show_text(self, message: str) -> None:
        self.highlighted = []
        self.update(Text(message, style="dim"))


class ConfirmScreen(ModalScreen[bool]):
    """Asks a yes/no question; dismisses with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2;
        border: thick $warning; background: $surface;
    }
    ConfirmScreen Label { width: 100%; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            with Horizontal():
                yield Button(f"{self.no_label} (n)", id="no", compact=True)
                yield Button(f"{self.yes_label} (y)", id="yes", variant="warning", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


def short_error(exc: BaseException) -> str:
    """An engine error as one line a person can act on (no traceback)."""
    message = str(exc).strip() or exc.__class__.__name__
    problems = getattr(exc, "problems", None)
    if problems:
        message = "; ".join(str(p) for p in problems)
    return message


class PathScreen(ModalScreen["str | None"]):
    """Asks for a file path; dismisses with the path, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PathScreen { align: center middle; }
    PathScreen > Vertical {
        width: 72; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    PathScreen Label { width: 100%; }
    """

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text}  (enter: ok, escape: cancel)")
            yield TextInput(self.value, id="path-input")

    def on_input_submitted(self, event) -> None:
        event.stop()
        value = event.value.strip()
        self.dismiss(value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
