"""Idle CPU of the workbench after a long scripted session (a soak check, not a timed test).

Drives the app headless with Textual's Pilot: switches panes many times, opens and closes help,
generates in the Playground with the `tiny` model, runs a small evaluation, and resizes between
80x24 and 120x40. Then it lets the app sit idle and reports the process's CPU time over that
idle time (as a percentage of one core), how often the footer was rebuilt while idle (each
focus change or binding refresh rebuilds it; an idle app should not rebuild it at all), and the
interval timers still running, by owner.

    .venv/bin/python benchmarks/idle_soak.py                 # about a minute on 2 cores
    .venv/bin/python benchmarks/idle_soak.py --rounds 30 --idle 10

A fresh app idles at about 1%; a figure well above that after the session means something keeps
running (an interval, an animation, a worker) that should have stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def live_timers(app) -> Counter:
    """Running timers (intervals and pending one-shots) by `Owner.name`."""
    nodes = [app, *app.screen_stack]
    for screen in app.screen_stack:
        nodes.extend(screen.walk_children(with_self=False))
    out: Counter = Counter()
    for node in nodes:
        for timer in list(getattr(node, "_timers", ())):
            if not getattr(timer, "_active", None) or timer._task is None or timer._task.done():
                continue
            if timer._active.is_set():
                out[f"{type(node).__name__}.{timer.name}"] += 1
    return out


async def wait_groups(app, pilot, groups: tuple[str, ...], timeout: float = 300.0) -> None:
    """Let the app run until no worker of `groups` is running (other workers may run on)."""
    deadline = time.monotonic() + timeout
    await pilot.pause(0.2)
    while any(w.is_running and w.group in groups for w in app.workers):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {groups}")
        await pilot.pause(0.1)


def thread_ticks() -> dict[str, tuple[str, int]]:
    """CPU clock ticks (user + system) of each thread of this process, by thread id (Linux)."""
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


async def idle_cpu(pilot, seconds: float, report: dict, label: str) -> float:
    """CPU time of this process over `seconds` of idling, as % of one core; the busiest threads
    go into report[label + "_threads"]."""
    import threading

    await pilot.pause(0.5)
    ticks0 = thread_ticks()
    rebuilds0 = FOOTER_REBUILDS[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    pct = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    report[label + "_footer_rebuilds_per_s"] = (FOOTER_REBUILDS[0] - rebuilds0) / seconds
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    busy = sorted(
        ((n - ticks0.get(tid, 0), tid) for tid, n in thread_ticks().items()), reverse=True
    )
    report[label + "_threads"] = [f"{names.get(tid, tid)} {n} ticks" for n, tid in busy[:3] if n]
    return pct


FOOTER_REBUILDS = [0]


def count_footer_rebuilds() -> None:
    """Count the footer's recomposes (each focus change or binding refresh rebuilds it)."""
    from tui.widgets import AppKeysFirstFooter

    recompose = AppKeysFirstFooter.recompose

    async def counting(self):
        FOOTER_REBUILDS[0] += 1
        return await recompose(self)

    AppKeysFirstFooter.recompose = counting


async def soak(db_path: str, rounds: int, idle_s: float, generate: bool) -> dict:
    from tui.app import SchemaLabApp

    count_footer_rebuilds()

    app = SchemaLabApp(db_path=db_path, dataset_paths=[str(REPO / "datasets" / "sample")])
    report: dict = {}
    try:
        await _drive(app, report, rounds, idle_s, generate)
    except Exception as exc:  # noqa: BLE001 - an error on the way out still leaves the figures
        report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
    return report


async def _drive(app, report: dict, rounds: int, idle_s: float, generate: bool) -> None:
    from textual.widgets import TextArea

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(1.0)
        deadline = time.monotonic() + 120
        while any(w.is_running for w in app.workers) and time.monotonic() < deadline:
            await pilot.pause(0.2)  # start-up work (finding and loading data sets) is not idle
        report["fresh_idle_cpu_pct"] = await idle_cpu(pilot, idle_s, report, "fresh")
        report["fresh_timers"] = live_timers(app)
        for i in range(rounds):
            for pane_id in ("datasets", "train", "playground", "evaluate", "runs"):
                await app.action_show_pane(pane_id)
                await pilot.pause(0.05)
            app.action_help()
            await pilot.pause(0.05)
            await pilot.press("escape")
            await app.action_show_pane("datasets")
            await pilot.pause(0.05)
            for pane_id in ("train", "runs", "evaluate", "datasets"):
                await app.action_show_pane(pane_id)  # quick switches, no pause between
            await pilot.press("s")  # stats on and off
            await pilot.pause(0.1)
            await pilot.press("s")
            await pilot.resize_terminal(*((120, 40) if i % 2 else (80, 24)))
            await pilot.pause(0.05)
            if generate and i in (0, rounds // 2):
                await app.action_show_pane("playground")
                await pilot.pause(0.2)
                pane = app.query_one("PlaygroundPane")
                pane.query_one("#pg-prompt", TextArea).text = "Order 12 for Ann, total 3.50"
                pane.query_one("#pg-max-tokens").value = "24"
                await pilot.press("ctrl+g")
                await wait_groups(app, pilot, ("col-a", "col-b"))
                print(f"round {i}: generated", flush=True)
            if generate and i == 1:
                await app.action_show_pane("evaluate")
                await pilot.pause(0.2)
                pane = app.query_one("EvaluatePane")
                pane.query_one("#ev-limit").value = "2"
                pane.query_one("#ev-max-tokens").value = "16"
                await pilot.press("ctrl+g")
                await wait_groups(app, pilot, ("ev-run",))
                print(f"round {i}: evaluated", flush=True)
        await app.action_show_pane("datasets")
        await pilot.pause(1.0)
        report["after_idle_cpu_pct"] = await idle_cpu(pilot, idle_s, report, "after")
        report["after_timers"] = live_timers(app)
        # Watchers left on the footer by its recomposes (Textual's data_bind leak; see
        # tui.widgets.AppKeysFirstFooter) and how long a pane switch takes after the session.
        from textual.widgets import Footer

        footer = app.query_one(Footer)
        report["footer_watchers"] = len(getattr(footer, "__watchers", {}).get("compact", []))
        switches = []
        for pane_id in ("runs", "datasets", "evaluate", "datasets"):
            start = time.perf_counter()
            await app.action_show_pane(pane_id)
            await pilot.pause()
            switches.append(time.perf_counter() - start)
        report["pane_switch_ms"] = 1000 * max(switches)
        report["workers_running"] = [f"{w.group}:{w.name}" for w in app.workers if w.is_running]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="pane-switching rounds")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds measured")
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="skip the Playground and Evaluate runs (no torch)",
    )
    args = parser.parse_args()
    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(
            soak(str(Path(tmp) / "runs.db"), args.rounds, args.idle, not args.no_generate)
        )
    print(f"idle CPU, fresh app:        {report['fresh_idle_cpu_pct']:5.1f}% of one core")
    print(f"idle CPU, after the session: {report.get('after_idle_cpu_pct', -1):5.1f}% of one core")
    for label in ("fresh", "after"):
        rate = report.get(label + "_footer_rebuilds_per_s", -1)
        print(f"footer rebuilds while idle ({label}): {rate:.1f} per second")
    for label in ("fresh", "after"):
        print(f"busiest threads ({label}): {', '.join(report.get(label + '_threads', [])) or '-'}")
    for label in ("fresh_timers", "after_timers"):
        timers = ", ".join(f"{k} x{n}" for k, n in sorted(report.get(label, {}).items())) or "none"
        print(f"running timers ({label.split('_')[0]}): {timers}")
    print(f"footer watchers left behind: {report.get('footer_watchers', '?')}")
    print(f"slowest pane switch after the session: {report.get('pane_switch_ms', -1):.0f} ms")
    print(f"workers still running: {', '.join(report.get('workers_running', [])) or 'none'}")
    for error in report.get("errors", []):
        print(f"error: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
