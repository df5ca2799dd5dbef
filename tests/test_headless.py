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


def test_the_tui_runs_no_sql():
    """Every query lives in engine.runlog as a named read; the panes call those."""
    import re
    from pathlib import Path

    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b|\.execute\(|\bdb\.query\(|\.db\.query\(")
    offenders = [
        f"{path.name}:{n}"
        for path in sorted((Path(__file__).parent.parent / "tui").glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sql.search(line)
    ]
    assert offenders == []
