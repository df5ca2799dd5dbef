import subprocess
import sys


def test_engine_does_not_import_textual():
    code = (
        "import sys, pkgutil, importlib, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if m.name != 'engine.__main__': importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from engine.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'textual') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_sql_outside_the_run_log_package():
    """Every query lives in engine.runlog as a named read or write; the panes, the CLI and the
    rest of the engine call those."""
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    sql = re.compile(
        r"\b(SELECT|INSERT|UPDATE|DELETE)\b|\.execute\(|\bdb\.query\(|\.db\.query\("
        r"|\.insert(_all)?\(|\.upsert(_all)?\("
    )
    # The TUI does not even hold a raw connection: it opens, reads through and closes the run
    # log with engine.runlog's functions only.
    raw = re.compile(r"\bimport sqlite3\b|\bsqlite3\.|\.conn\b|\bsqlite_utils\b")
    tui_raw = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted((root / "tui").glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if raw.search(line)
    ]
    assert tui_raw == []
    files = sorted((root / "tui").glob("*.py")) + sorted(
        p for p in (root / "engine").rglob("*.py") if "runlog" not in p.relative_to(root).parts
    )
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sql.search(line)
    ]
    assert offenders == []
