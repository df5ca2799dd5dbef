"""The help screen (`?`): every key binding of the app and of each pane. The same list feeds the
command palette, so every action has a key, a line here and a palette entry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


@dataclass(frozen=True)
class ActionEntry:
    """One bound action: where it lives, its key(s) and what it does."""

    pane: str  # pane title, or "" for app-wide actions
    pane_id: str | None
    keys: str
    description: str
    action: str
    namespace: DOMNode | type  # the app, or a pane class (the app finds the pane itself)


def _bindings(node: DOMNode | type) -> list[Binding]:
    out = []
    for item in getattr(node, "BINDINGS", []):
        if isinstance(item, Binding):
            out.append(item)
        elif isinstance(item, tuple) and len(item) >= 2:
            out.append(Binding(*item))
    return out


def _display_keys(binding: Binding, app: App) -> str:
    keys = [app.get_key_display(Binding(k.strip(), binding.action)) for k in binding.key.split(",")]
    return " / ".join(
        k.upper() if re.fullmatch(r"f\d+", k) else k for k in keys
    )  # F2, as on keyboards


FOOTER_ONLY = "footer-only"  # binding id of a footer hint that stands for other bindings


def _app_keys(bindings: list[Binding], app: App) -> str:
    """An app action's keys: those that work from any focus first, then those that a text field
    takes as text (single letters and digits), marked so."""
    anywhere = [_display_keys(b, app) for b in bindings if b.priority]
    outside = [_display_keys(b, app) for b in bindings if not b.priority]
    parts = [" / ".join(anywhere)] if anywhere else []
    if outside:
        parts.append(" / ".join(outside) + (" outside text fields" if anywhere else ""))
    return "; ".join(parts)


def collect_actions(app: App, panes: list[tuple[str, str, DOMNode | type]]) -> list[ActionEntry]:
    """App-wide actions (one entry per action, all its keys), then each pane's, skipping
    bindings without a description and footer-only hints."""
    entries: list[ActionEntry] = []
    by_action: dict[str, list[Binding]] = {}
    for binding in _bindings(app):
        if binding.description and binding.id != FOOTER_ONLY:
            by_action.setdefault(binding.action, []).append(binding)
    for action, bindings in by_action.items():
        entries.append(
            ActionEntry("", None, _app_keys(bindings, app), bindings[0].description, action, app)
        )
    for pane_id, title, widget in panes:
        for binding in _bindings(widget):
            if binding.description:
                entries.append(
                    ActionEntry(
                        title,
                        pane_id,
                        _display_keys(binding, app),
                        binding.description,
                        binding.action,
                        widget,
                    )
                )
    return entries


class HelpScreen(ModalScreen[None]):
    """A table of every binding; any of escape, q, ? or F1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss_help", "Close")
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90; max-width: 100%; height: 90%; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    HelpScreen DataTable { height: 1fr; }
    HelpScreen Label { width: 100%; }
    """

    def __init__(self, entries: list[ActionEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                "[b]SchemaLab keys[/b]  (ctrl+p: command palette · escape closes)\n"
                "Inside a text field letters and digits are text: use F2…F6 (or alt+1…5) and F1 there, or "
                "escape to leave the field. A pane's keys work while focus is in that pane."
            )
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("Where", "Key", "Action")
            for entry in self.entries:
                table.add_row(entry.pane or "app", entry.keys, entry.description)
            yield table

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
