"""A training run's train.log in the app: its tail when opened, then what the run writes to it
while it runs. The file is read in a worker, from where the last read stopped."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Log, Static

from tui.widgets import open_db, short_error

TAIL_BYTES = 256 * 1024  # how much of a long log is shown when it opens
FOLLOW_EVERY_S = 1.0
MAX_LINES = 5000


def log_path(run: dict) -> Path | None:
    """Where a run's train.log is: in its output folder."""
    out_dir = run.get("out_dir")
    if not out_dir and isinstance(run.get("config"), dict):
        out_dir = run["config"].get("out_dir")
    return Path(str(out_dir)) / "train.log" if out_dir else None


def clean_lines(text: str) -> list[str]:
    """Lines as a terminal would leave them: a carriage return (a progress bar redrawing)
    keeps only what follows it."""
    return [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]


class TrainLogScreen(ModalScreen):
    """The run's train.log, scrollable; follows the file while the run is running."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,l", "close", "Close"),
        Binding("f", "toggle_follow", "Follow"),
    ]
    DEFAULT_CSS = """
    TrainLogScreen { align: center middle; }
    TrainLogScreen > Vertical {
        width: 100%; height: 100%; border: round $primary; background: $surface;
    }
    TrainLogScreen #log-status { height: 1; padding: 0 1; color: $text-muted; }
    TrainLogScreen #log-text { height: 1fr; }
    """

    @dataclass
    class Read(Message):
        """Text read from the log since the last read; `running` says whether to go on."""

        text: str
        offset: int
        running: bool
        error: str | None = None

    def __init__(self, db_path: str, run_id: int, path: Path | None) -> None:
        super().__init__()
        self.db_path = db_path
        self.run_id = run_id
        self.path = path
        self.read_offset: int | None = None  # where the next read starts; None: read the tail
        self.running = True
        self.follow = True  # keep the end in view as lines arrive
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # a line not ended yet
        self._reading = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"train.log of run #{self.run_id}"
            box.border_subtitle = "f follow · esc close"
            yield Static(escape(str(self.path or "")), id="log-status")
            yield Log(id="log-text", max_lines=MAX_LINES, auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        if self.path is None:
            self._status(f"Run #{self.run_id} has no output folder, so no train.log.")
            return
        self._tick()
        self._timer = self.set_interval(FOLLOW_EVERY_S, self._tick, name="train-log-follow")

    def _status(self, text: str) -> None:
        self.query_one("#log-status", Static).update(text)

    def _tick(self) -> None:
        if self.running and not self._reading:
            self._reading = True
            self._read(self.read_offset)

    @work(thread=True, exclusive=True, group="train-log", exit_on_error=False)
    def _read(self, offset: int | None) -> None:
        from engine import runlog

        path = self.path
        assert path is not None
        try:
            db = open_db(self.db_path)
            try:
                run = runlog.get_run(db, self.run_id)
            finally:
                runlog.close(db)
            running = bool(run) and run["status"] == "running"
            if not path.exists():
                self.post_message(
                    self.Read("", offset or 0, running, f"{path} does not exist (yet).")
                )
                return
            size = path.stat().st_size
            with open(path, "rb") as f:
                start = offset if offset is not None else max(0, size - TAIL_BYTES)
                if offset is not None and size < offset:  # the file was replaced: read it anew
                    start = 0
                f.seek(start)
                data = f.read()
            end = start + len(data)
            if offset is None and start > 0:
                data = data[data.find(b"\n") + 1 :]  # the first line is cut: drop it
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised
            self.post_message(self.Read("", offset or 0, False, short_error(exc)))
            return
        self.post_message(self.Read(self._decoder.decode(data), end, running))

    def on_train_log_screen_read(self, message: Read) -> None:
        self._reading = False
        self.read_offset = message.offset
        self.running = message.running
        if message.error:
            self._status(f"[yellow]{escape(message.error)}[/yellow]")
        else:
            state = "following (the run is running)" if self.running else "the run has ended"
            self._status(f"{escape(str(self.path))} · {state}")
        if not message.text:
            return
        lines = clean_lines(self._partial + message.text)
        self._partial = lines.pop()  # the text after the last newline: not a whole line yet
        log = self.query_one(Log)
        log.auto_scroll = self.follow
        if lines:
            log.write_lines(lines)
        if not self.running and self._partial:
            log.write_line(self._partial)
            self._partial = ""

    def lines(self) -> list[str]:
        """The lines on show."""
        return list(self.query_one(Log).lines)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self.notify("Following the end of the log." if self.follow else "Not following.")

    def action_close(self) -> None:
        self.dismiss()
