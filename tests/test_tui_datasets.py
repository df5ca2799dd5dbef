"""The Datasets pane on the bundled sample: discovery, filters, example detail with the
offending path highlighted, validation recorded in the run log, and the stats view."""

from __future__ import annotations

import pytest
from test_tui_app import REPO, make_app, seeded_db, settle  # noqa: F401 - fixture

from tui.widgets import json_lines, normalize_path

pytestmark = pytest.mark.anyio


def test_json_lines_maps_every_path_to_its_lines():
    text, spans = json_lines({"a": 1, "items": [{"total": 2.5}, 3], "odd key": None})
    lines = text.split("\n")
    first, last = spans["$.items[0]"]
    assert lines[first].strip() == "{" and lines[last].strip() == "},"
    assert '"total": 2.5' in lines[spans["$.items[0].total"][0]]
    assert lines[spans['$["odd key"]'][0]].strip() == '"odd key": null'
    assert normalize_path("/items/0/total") == "$.items[0].total"
    assert normalize_path("items[0].total") == "$.items[0].total"


async def test_browse_filter_and_validate_the_sample(db_path, monkeypatch):
    from textual.widgets import DataTable, Select

    from engine import runlog
    from tui.datasets import DatasetsPane

    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(DatasetsPane)
        sets = pane.query_one("#dataset-table", DataTable)
        names = [str(sets.get_row_at(i)[0]) for i in range(sets.row_count)]
        assert names == ["sample/broken", "sample/test", "sample/train"]
        assert str(sets.get_row_at(2)[1]) == "300"
        assert "not validated" in str(sets.get_row_at(0)[4])
        assert pane.path.endswith("broken.jsonl")

        # Validate broken.jsonl: a validate run with its findings lands in the run log.
        await pilot.press("v")
        await settle(pilot)
        db = runlog.connect(db_path)
        runs = runlog.list_runs(db, kind="validate")
        assert len(runs) == 1 and runs[0]["status"] == "completed"
        stored = list(
            db.query("SELECT kind FROM validation_issues WHERE run_id = ?", [runs[0]["id"]])
        )
        assert {"json_schema", "arithmetic"} <= {r["kind"] for r in stored}
        assert "err" in str(sets.get_row_at(0)[4]) and "#1" in str(sets.get_row_at(0)[4])

        # Filter on a finding kind: only examples with that kind remain.
        pane.query_one("#filter-finding", Select).value = "json_schema"
        await settle(pilot)
        examples = pane.query_one("#example-table", DataTable)
        assert examples.row_count >= 1
        for _ex, found in pane.rows.values():
            assert any(f["kind"] == "json_schema" for f in found)
        # The first one is on show, with the offending path's lines highlighted.
        ex, found = next(iter(pane.rows.values()))
        assert ex.id in str(pane.query_one("#example-prompt").render())
        paths = [normalize_path(f["path"]) for f in found if f.get("path")]
        highlighted = pane.query_one("#example-expected").highlighted
        assert paths and highlighted
        assert all(any(p.startswith(h) for p in paths) for h in highlighted)
        assert "json_schema" in str(pane.query_one("#example-findings").render())

        # A schema filter on top of it narrows further; clearing both shows everything again.
        pane.query_one("#filter-finding", Select).value = ""
        schema = ex.schema_id
        pane.query_one("#filter-schema", Select).value = schema
        await settle(pilot)
        assert {e.schema_id for e, _ in pane.rows.values() if e} == {schema}
        pane.query_one("#filter-schema", Select).value = ""
        await settle(pilot)
        assert sum(1 for e, _ in pane.rows.values() if e) == len(pane.examples)

        # "Train on this" puts the data set into the Train form.
        await pilot.press("T")
        await settle(pilot)
        assert app.query_one("#panes").active == "train"
        assert app.query_one("TrainPane").form_data()["train_data"].endswith("broken.jsonl")


async def test_stats_view_counts_tokens_against_max_seq_len(db_path, monkeypatch, tiny_model_path):
    from engine.data.validate import token_lengths
    from engine.models.load import load_tokenizer
    from tui.datasets import DatasetsPane

    monkeypatch.chdir(REPO)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(DatasetsPane)
        pane.query_one("#dataset-table").focus()
        await pilot.press("down", "down")  # sample/train
        await settle(pilot)
        assert pane.path.endswith("train.jsonl")
        pane.set_token_model("tiny", 96)
        await pilot.press("s")
        await settle(pilot)
        assert pane.query_one("#dataset-view").current == "stats-view"
        counts = str(pane.query_one("#stats-counts").render())
        assert "300 examples" in counts and "Per schema" in counts
        lengths = token_lengths(pane.examples, load_tokenizer("tiny"))
        dropped = sum(n > 96 for n in lengths)
        text = str(pane.query_one("#stats-lengths").render())
        assert 0 < dropped < len(lengths)
        assert f"{dropped} of 300 longer than max_seq_len 96" in text


async def test_first_open_validates_data_sets_never_validated(db_path, sample_dir):
    """The launcher's app validates each never-validated folder once, in the background."""
    from engine import runlog
    from tui.app import SchemaLabApp

    app = SchemaLabApp(db_path=str(db_path), dataset_paths=[str(sample_dir)], auto_validate=True)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.1)
            db = runlog.connect(db_path)
            runs = runlog.list_runs(db, kind="validate")
            db.conn.close()
            if runs and runs[0]["status"] == "completed":
                break
        assert len(runs) == 1, "one run for the sample folder, all its files together"
        paths = runs[0]["config"]["paths"]
        assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [
            "broken.jsonl",
            "test.jsonl",
            "train.jsonl",
        ]
    # Opened again on the same run log: nothing new to validate.
    app = SchemaLabApp(db_path=str(db_path), dataset_paths=[str(sample_dir)], auto_validate=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(2)
    db = runlog.connect(db_path)
    assert len(runlog.list_runs(db, kind="validate")) == 1


async def test_one_broken_record_in_a_few_keys(seeded_db):  # noqa: F811
    """A count of the rows shown, next/previous finding, one-key filters, jump by id, and
    escape closing Stats (on the seeded run log, whose validate run covers broken.jsonl)."""
    from textual.widgets import DataTable, Input

    from tui.datasets import DatasetsPane
    from tui.widgets import PathScreen

    app = make_app(seeded_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pane = app.query_one(DatasetsPane)
        table = pane.query_one("#example-table", DataTable)
        table.focus()
        await pilot.pause()
        total, n_rows = len(pane.examples), len(pane.rows)
        flagged = [i for i, (_, found) in enumerate(pane.rows.values()) if found]
        flagged_examples = sum(1 for ex, found in pane.rows.values() if ex is not None and found)
        assert 1 < len(flagged) < n_rows
        assert f"{total}/{total}" in str(pane.query_one("#example-count").render())

        # n / N walk the rows with findings, wrapping around.
        table.move_cursor(row=0)
        await pilot.press("n")
        k = next(j for j, i in enumerate(flagged) if i > 0)
        assert table.cursor_row == flagged[k]
        await pilot.press("N")
        assert table.cursor_row == (flagged[k - 1] if k > 0 else flagged[-1])
        table.move_cursor(row=flagged[-1])
        await pilot.press("n")
        assert table.cursor_row == flagged[0]

        # f: findings only (the count says so); again: every row.
        await pilot.press("f")
        await settle(pilot, rounds=1)
        assert table.row_count == len(flagged)
        assert f"{flagged_examples}/{total}" in str(pane.query_one("#example-count").render())
        await pilot.press("f")
        await settle(pilot, rounds=1)
        assert table.row_count == n_rows
        # c cycles the complexity filter; a clears every filter.
        await pilot.press("c")
        await settle(pilot, rounds=1)
        assert pane._filters()["complexity"] and table.row_count < n_rows
        await pilot.press("a")
        await settle(pilot, rounds=1)
        assert not any(pane._filters().values())

        # / asks for an id and jumps to its row, even past a filter that hid it.
        await pilot.press("c")
        await settle(pilot, rounds=1)
        target = next(e for e in pane.examples if e.complexity != pane._filters()["complexity"])
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, PathScreen)
        app.screen.query_one(Input).value = target.id
        await pilot.press("enter")
        await settle(pilot, rounds=1)
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert pane.rows[row_key][0].id == target.id
        assert target.id in str(pane.query_one("#example-prompt").render())

        # Stats, then escape closes it.
        await pilot.press("s")
        await pilot.pause()
        assert pane.query_one("#dataset-view").current == "stats-view"
        await pilot.press("escape")
        await pilot.pause()
        assert pane.query_one("#dataset-view").current == "examples-view"


async def test_stats_use_the_train_forms_settings(seeded_db, tiny_model_path):  # noqa: F811
    from tui.datasets import DatasetsPane

    app = make_app(seeded_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(DatasetsPane)
        # No Train pane yet: the engine's default limit, and the stats say where it came from.
        from engine.train.config import DEFAULTS

        assert pane.max_seq_len == DEFAULTS["max_seq_len"]
        await pilot.press("2")
        await settle(pilot)
        train = app.query_one("TrainPane")
        train.set_view("train-form")
        from textual.widgets import Input

        train.query_one("#f-model", Input).value = "tiny"
        train.query_one("#f-max_seq_len", Input).value = "77"
        await pilot.press("alt+1")  # focus may be in a form field, where "1" is text
        await settle(pilot)
        pane.query_one("#example-table").focus()
        await pilot.press("s")
        await settle(pilot)
        text = str(pane.query_one("#stats-lengths").render())
        assert pane.token_model == "tiny" and pane.max_seq_len == 77
        assert "max_seq_len 77" in text and "the Train form" in text


async def test_highlighted_path_survives_no_color():
    """With NO_COLOR the red background goes; bold and underline keep the broken path visible."""
    from rich.console import Console
    from textual.app import App

    from tui.widgets import JsonView

    class One(App):
        def compose(self):
            yield JsonView()

    async with One().run_test() as pilot:
        view = pilot.app.query_one(JsonView)
        view.show({"a": 1, "total": 99.5}, ["$.total"])
        text = view.renderable if hasattr(view, "renderable") else view.content
    console = Console(no_color=True, force_terminal=True, width=60, color_system="standard")
    segments = list(console.render(text))
    marked = [s for s in segments if s.style and s.style.underline and s.style.bold]
    assert any("total" in s.text for s in marked)
    assert not any('"a"' in s.text for s in marked)


async def test_a_deeply_nested_file_never_hides_the_other_data_sets(db_path, sample_dir, tmp_path):
    """A file nested thousands of levels deep, and one with a 100,000-element value, among the
    data sets: every set is listed, the deep lines are `parse` findings with their line, and the
    huge value is shown cut short (the pane never sticks on "Reading data sets…")."""
    import json
    import shutil

    from pilot_helpers import PaneApp, wait_for
    from textual.widgets import DataTable

    from tui.datasets import DatasetsPane

    shutil.copytree(sample_dir / "schemas", tmp_path / "schemas")
    lines = (sample_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "a_deep.jsonl").write_text(
        lines[0] + "\n" + '{"x": ' + "[" * 50_000 + "]" * 50_000 + "}\n"
    )
    big = {
        "id": "big",
        "schema_id": "tags",
        "prompt": "tags",
        "expected_output": {"tags": ["t" * 300] * 100_000},
    }
    (tmp_path / "b_big.jsonl").write_text(json.dumps(big) + "\n")
    (tmp_path / "c_good.jsonl").write_text("\n".join(lines) + "\n")

    app = PaneApp(DatasetsPane, db_path, [tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(DatasetsPane)
        sets = pane.query_one("#dataset-table", DataTable)
        await wait_for(pilot, lambda: sets.row_count == 3 and pane.rows)
        counts = {str(sets.get_row_at(i)[0]): str(sets.get_row_at(i)[1]) for i in range(3)}
        assert counts == {
            f"{tmp_path.name}/a_deep": "1",
            f"{tmp_path.name}/b_big": "1",
            f"{tmp_path.name}/c_good": "3",
        }
        assert pane.path.endswith("a_deep.jsonl")
        flagged = [f for _, found in pane.rows.values() for f in found if f["kind"] == "parse"]
        assert [f["line"] for f in flagged] == [2] and "nested" in flagged[0]["message"]

        sets.move_cursor(row=1)
        await wait_for(
            pilot,
            lambda: (
                pane.path.endswith("b_big.jsonl")
                and pane.examples
                and pane.examples[0].id == "big"
                and pane.rows
            ),
        )
        await pilot.pause(0.2)
        shown = str(pane.query_one("#example-expected").render())
        assert "99950 more items" in shown and "more characters" in shown
        assert len(shown) < 100_000
