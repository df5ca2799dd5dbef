"""Run-log reads for a pane, off the UI thread.

A pane asks `self.read(fn, apply)`: `fn(db)` runs in a thread worker and `apply(result)` runs on
the UI thread when it is done (workers compute, handlers mutate). A pane's reads run one at a
time in the order they were asked, over one connection whose busy timeout is short: when another
process holds the run log's lock, the read fails within a second and the pane says the run log
is busy instead of freezing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.message import Message

UI_BUSY_TIMEOUT_S = 1.0  # how long a pane's read waits on another process's lock
TURN_TIMEOUT_S = 30.0  # a read whose predecessor never finishes goes ahead after this
BUSY_MESSAGE = "The run log is busy (another process is writing it); try again in a moment."


class SerialReads:
    """Runs a pane's reads one at a time, in the order their tickets were taken, over one
    connection opened (by the first read, in its worker) with a short busy timeout."""

    def __init__(self, db_path: str, busy_timeout_s: float = UI_BUSY_TIMEOUT_S) -> None:
        self.db_path = str(db_path)
        self.busy_timeout_s = busy_timeout_s
        self._db = None
        self._turn = threading.Condition()
        self._issued = 0
        self._served = 0

    def ticket(self) -> int:
        with self._turn:
            self._issued += 1
            return self._issued - 1

    def run(self, ticket: int, fn: Callable[[Any], Any]) -> Any:
        """`fn(db)` once every earlier ticket has run (call from a worker thread)."""
        with self._turn:
            self._turn.wait_for(lambda: self._served >= ticket, timeout=TURN_TIMEOUT_S)
        try:
            return fn(self._connection())
        finally:
            with self._turn:
                self._served = max(self._served, ticket + 1)
                self._turn.notify_all()

    def _connection(self):
        if self._db is None:
            from engine import runlog

            self._db = runlog.connect(self.db_path, busy_timeout_s=self.busy_timeout_s)
        return self._db

    def close(self, _db: Any = None) -> None:
        """Close the connection (as a read of its own, so no read is using it)."""
        if self._db is not None:
            from engine import runlog

            runlog.close(self._db)
            self._db = None


@dataclass
class RunLogRead(Message, bubble=False):
    """A read finished: `apply(result)` on the UI thread."""

    apply: Callable[[Any], None]
    result: Any


@dataclass
class RunLogReadFailed(Message, bubble=False):
    """A read failed: a busy run log is said as such, anything else goes to `failed`."""

    error: BaseException
    failed: Callable[[BaseException], None] | None


class RunLogReads:
    """Mixin for a widget with `self._reads` (a SerialReads): `read(fn, apply, failed)`."""

    _reads: SerialReads

    def read(
        self,
        fn: Callable[[Any], Any],
        apply: Callable[[Any], None],
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run `fn(db)` in a worker after this widget's earlier reads; `apply(result)` on the UI
        thread, or `failed(error)` when it raised (a busy run log only notifies)."""
        self._read_worker(self._reads.ticket(), fn, apply, failed)

    @work(thread=True, group="runlog-read", exit_on_error=False)
    def _read_worker(self, ticket: int, fn, apply, failed) -> None:
        try:
            result = self._reads.run(ticket, fn)
        except Exception as exc:  # noqa: BLE001 - handed to the UI thread, never raised there
            self.post_message(RunLogReadFailed(exc, failed))
            return
        self.post_message(RunLogRead(apply, result))

    def close_reads(self) -> None:
        """Close the read connection after the reads already asked for."""
        self.read(self._reads.close, lambda _result: None)

    def on_run_log_read(self, message: RunLogRead) -> None:
        message.stop()
        message.apply(message.result)

    def on_run_log_read_failed(self, message: RunLogReadFailed) -> None:
        message.stop()
        from engine import runlog

        if runlog.is_busy(message.error):
            self.notify(BUSY_MESSAGE, title="Run log busy", severity="warning")
        elif message.failed is not None:
            message.failed(message.error)
        else:
            from tui.results import error_message

            self.notify(error_message(message.error), severity="error")
