"""Fault injection on the run log, training and evaluation, with real processes on `tiny`.

    python benchmarks/faults.py [--trials N] [--seed S]

Cases:
  train-kill     kill -9 a detached training at a random moment, resume it (or restart it when
                 it had no checkpoint yet) to the end: the run log opens, the metric series is
                 one line 1..N with no step missing or twice.
  eval-kill      kill -9 an evaluation at a random moment: the run reads `interrupted`, `show`
                 works and its figures cover exactly the predictions recorded.
  first-open     several processes open one new run log at once, each recording a run; and a
                 first open killed at a random moment: the run log opens afterwards.
  resume-race    three `train --resume ID --detach` at once: one worker, one series.
  disk-full      a training whose outputs sit on a full small file system (tmpfs; skipped when
                 it cannot be mounted): the run ends `failed` with the cause, no half checkpoint.

Prints, per case, the cases tried, survived and those that lost data (a run log that no longer
opens, a metric or prediction row lost or doubled, a run left `running` with no process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import runlog  # noqa: E402
from engine.train import process  # noqa: E402
from engine.train.config import load_config  # noqa: E402

SAMPLE = REPO / "datasets" / "sample"


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), e.get("PYTHONPATH")]))
    return e


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *map(str, args)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait(pred, timeout=240.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def steps(db: Path, run_id: int) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT step FROM metrics WHERE run_id = ? AND name = 'train_loss' ORDER BY step",
                [run_id],
            )
        ]


def status(db: Path, run_id: int) -> str:
    return runlog.get_run(runlog.connect_readonly(db), run_id)["status"]


def intact(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    except sqlite3.Error:
        return False


def tiny_cfg(*extra):
    return load_config(
        None,
        [
            "model=tiny",
            f"train_data={SAMPLE / 'train.jsonl'}",
            "val_eval_limit=0",
            "grad_accum=1",
            "log_every=1",
            "eval_every=1000",
            *extra,
        ],
    )


class Tally:
    def __init__(self):
        self.rows: dict[str, list[int]] = {}

    def add(self, case: str, survived: bool, lost: bool, note: str = "") -> None:
        row = self.rows.setdefault(case, [0, 0, 0])
        row[0] += 1
        row[1] += int(survived)
        row[2] += int(lost)
        mark = "ok" if survived else ("DATA LOST" if lost else "failed")
        print(f"  {case}: {mark}{(' - ' + note) if note else ''}", flush=True)


def train_kill(work: Path, rng: random.Random, t: Tally) -> None:
    db = work / "runs.db"
    run_id = process.launch_detached(tiny_cfg("max_steps=24", "save_every=4"), db)
    pid = runlog.get_run(runlog.connect(db), run_id)["pid"]
    # A random moment: while loading, or after some steps (between or during saves).
    target = rng.choice([0, 1, 3, 5, 8, 11, 14, 17])
    wait(lambda: len(steps(db, run_id)) >= target or status(db, run_id) != "running", 180)
    time.sleep(rng.uniform(0.0, 0.6))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not wait(lambda: status(db, run_id) in ("interrupted", "completed"), 30):
        t.add("train-kill", False, True, "left running with no process")
        return
    if not intact(db):
        t.add("train-kill", False, True, "run log damaged")
        return
    killed_at = len(steps(db, run_id))
    if status(db, run_id) == "interrupted":
        resume = cli("train", "--resume", run_id, "--detach", "--db", db)
        _, err = resume.communicate(timeout=120)
        restart = resume.returncode != 0 and "--restart" in err
        if restart:
            resume = cli("train", "--resume", run_id, "--restart", "--detach", "--db", db)
            _, err = resume.communicate(timeout=120)
        if resume.returncode != 0:
            t.add("train-kill", False, False, f"resume refused: {err.strip()}")
            return
    done = wait(lambda: status(db, run_id) in ("completed", "failed", "interrupted"), 300)
    got = steps(db, run_id)
    ok = done and status(db, run_id) == "completed" and got == list(range(1, 25))
    t.add(
        "train-kill",
        ok,
        done and got != list(range(1, 25)),
        f"killed after {killed_at} logged steps; series {got[:2]}..{got[-1:]} ({len(got)})",
    )


def eval_kill(work: Path, rng: random.Random, t: Tally) -> None:
    db = work / "runs.db"
    proc = cli(
        "eval",
        "--model",
        "tiny",
        "--data",
        SAMPLE / "test.jsonl",
        "--limit",
        "24",
        "--batch-size",
        "2",
        "--set",
        "max_new_tokens=24",
        "--db",
        db,
    )

    def n_pred() -> int:
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        except sqlite3.Error:
            return 0

    target = rng.choice([0, 2, 6, 10, 16])
    wait(lambda: n_pred() >= target or proc.poll() is not None, 180)
    time.sleep(rng.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    if not db.exists() or not intact(db):
        t.add(
            "eval-kill",
            not db.exists(),
            db.exists(),
            "no run log yet" if not db.exists() else "run log damaged",
        )
        return
    runs = runlog.list_runs(runlog.connect_readonly(db), kind="eval")
    if not runs:
        t.add("eval-kill", True, False, "killed before the run was recorded")
        return
    run = runs[0]
    show = cli("show", run["id"], "--format", "json", "--db", db)
    out, err = show.communicate(timeout=120)
    if show.returncode != 0:
        t.add("eval-kill", False, True, f"show failed: {err.strip()[-200:]}")
        return
    report = json.loads(out)["run"]
    n = n_pred()
    ok = run["status"] in ("interrupted", "completed") and report["overall"]["n"] == n
    t.add("eval-kill", ok, not ok, f"{run['status']} with {n} predictions")


def _open_and_record(path: str) -> None:
    db = runlog.connect(path)
    runlog.create_run(db, "validate", {})


def first_open(work: Path, rng: random.Random, t: Tally) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    db = work / "race.db"
    procs = [ctx.Process(target=_open_and_record, args=(str(db),)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    n = len(runlog.list_runs(runlog.connect_readonly(db))) if db.exists() else 0
    codes = [p.exitcode for p in procs]
    t.add(
        "first-open",
        codes == [0] * 6 and n == 6,
        n != sum(c == 0 for c in codes),
        f"{codes.count(0)}/6 opened, {n} runs recorded",
    )

    db = work / "killed.db"
    p = ctx.Process(target=_open_and_record, args=(str(db),))
    p.start()
    time.sleep(rng.uniform(0.3, 2.5))  # interpreter start, imports, the migration, the insert
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    try:
        runlog.create_run(runlog.connect(db), "validate", {})
        ok = runlog.schema_version(runlog.connect(db)) == runlog.SCHEMA_VERSION
    except Exception as exc:  # noqa: BLE001 - a run log that never opens again is the failure
        ok, note = False, str(exc)
    else:
        note = "opens after a first open killed at a random moment"
    t.add("first-open-kill", ok, not ok, note)


def resume_race(work: Path, rng: random.Random, t: Tally) -> None:
    db = work / "runs.db"
    run_id = process.launch_detached(tiny_cfg("max_steps=16", "save_every=1000"), db)
    wait(lambda: len(steps(db, run_id)) >= 3, 180)
    process.cancel_run(db, run_id)
    wait(lambda: status(db, run_id) == "cancelled", 120)
    procs = [cli("train", "--resume", run_id, "--detach", "--db", db) for _ in range(3)]
    for p in procs:
        p.communicate(timeout=120)
    started = sum(p.returncode == 0 for p in procs)
    wait(lambda: status(db, run_id) != "running", 300)
    got = steps(db, run_id)
    ok = started == 1 and status(db, run_id) == "completed" and got == list(range(1, 17))
    t.add(
        "resume-race",
        ok,
        got != sorted(set(got)) or got != list(range(1, len(got) + 1)),
        f"{started} of 3 resumes started a worker; {len(got)} steps",
    )


def disk_full(work: Path, rng: random.Random, t: Tally) -> None:
    small = work / "small"
    small.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        print("  disk-full: skipped (cannot mount a small file system here)")
        return
    try:
        db = work / "runs.db"
        cfg = tiny_cfg("max_steps=8", "save_every=2", f"out_dir={small / 'run'}")
        run_id, _ = process.create_train_run(cfg, db)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.train.process",
                "--db",
                str(db),
                "--run-id",
                str(run_id),
            ],
            env=env(),
            capture_output=True,
            timeout=600,
            check=False,
        )
        run = runlog.get_run(runlog.connect_readonly(db), run_id)
        half = list((small / "run" / "checkpoints").glob(".tmp-*"))
        ok = (
            run["status"] == "failed"
            and (run["error"] or "").startswith("The disk is full")
            and not half
        )
        runs = cli("runs", "--db", db)
        runs.communicate(timeout=60)
        ok = ok and runs.returncode == 0
        t.add("disk-full", ok, False, f"{run['status']}: {(run['error'] or '').splitlines()[0]}")
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="kills per training/eval case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tally = Tally()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="schemalab-faults-"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    plan = (
        [train_kill] * args.trials
        + [eval_kill] * args.trials
        + [first_open] * args.trials
        + [resume_race, disk_full]
    )
    try:
        for i, case in enumerate(plan):
            work = root / f"{i:02d}-{case.__name__}"
            work.mkdir()
            case(work, rng, tally)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'case':<16} {'tried':>5} {'survived':>8} {'data lost':>9}")
    total = [0, 0, 0]
    for case, (tried, survived, lost) in tally.rows.items():
        print(f"{case:<16} {tried:>5} {survived:>8} {lost:>9}")
        total = [a + b for a, b in zip(total, (tried, survived, lost))]
    print(
        f"{'all':<16} {total[0]:>5} {total[1]:>8} {total[2]:>9}"
        f"   ({time.monotonic() - started:.0f} s, seed {args.seed})"
    )
    return 0 if total[1] == total[0] else 1


if __name__ == "__main__":
    sys.exit(main())
