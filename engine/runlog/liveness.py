"""Whether a run's process is still alive (pid and its start time, never a reused pid)."""

from __future__ import annotations

import os
import socket
import time

from engine.runlog.schema import STALE_AFTER_S


def process_start_time(pid: int | None) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22), or None
    when it cannot be read (no such process, no /proc). With the pid it names one process: a
    later process reusing the pid has another start time."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional: platforms without /proc

        return int(psutil.Process(pid).create_time() * 100)
    except Exception:  # noqa: BLE001 - psutil missing or the process gone
        return None


def _pid_alive(pid: int | None, started: int | None = None) -> bool:
    """Is the process `pid` alive, and (when `started` is known) the same process that started
    then, not a later one that reused the pid?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    if started is not None:
        now = process_start_time(pid)
        if now is not None and now != started:
            return False
    return True


def run_process_alive(run: dict) -> bool:
    """Is a `running` run's process still there? On this host: its pid, checked against the
    recorded start time; on another host: a fresh heartbeat."""
    if run.get("host") == socket.gethostname():
        return _pid_alive(run.get("pid"), run.get("pid_start"))
    return time.time() - (run.get("heartbeat") or 0) <= STALE_AFTER_S
