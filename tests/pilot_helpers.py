"""Helpers shared by the Pilot tests: a minimal app hosting one pane, and polling the app."""

from __future__ import annotations

import time

from textual.app import App, ComposeResult


class PaneApp(App):
    """One pane on its own, so a pane's tests do not depend on the workbench shell."""

    def __init__(self, pane_cls, db_path, dataset_paths) -> None:
        super().__init__()
        self.pane_cls = pane_cls
        self.db_path, self.dataset_paths = str(db_path), [str(p) for p in dataset_paths]

    def compose(self) -> ComposeResult:
        yield self.pane_cls(self.db_path, self.dataset_paths, id="pane")


async def wait_for(pilot, predicate, timeout: float = 60.0, step: float = 0.05) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(step)


async def settle_screen(pilot, tries: int = 30) -> None:
    """Settle until no worker runs and two screenshots in a row agree.

    On a busy machine one worker's result can start another (data sets, then examples, then the
    detail), so a fixed number of pauses is not enough; a blinking cursor never agrees with
    itself, so give up after `tries` rounds and let the snapshot tell.
    """
    from textual.worker import WorkerCancelled, WorkerFailed

    previous = None
    for _ in range(tries):
        await pilot.pause(0.05)
        try:
            await pilot.app.workers.wait_for_complete()
        except (WorkerCancelled, WorkerFailed):  # a newer exclusive worker replaced it
            pass
        await pilot.wait_for_scheduled_animations()
        shot = pilot.app.export_screenshot()
        busy = any(not w.is_finished for w in pilot.app.workers)
        if shot == previous and not busy:
            return
        previous = shot
        await pilot.pause(0.1)
