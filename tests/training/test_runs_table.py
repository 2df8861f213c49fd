"""Runs at a glance (cnnlab.training.runs_table): rows read from run folders, sorting, the table, differences."""

from __future__ import annotations

import json

import pytest
from runfolders import history, train_runs, write_run

from cnnlab.errors import CnnlabError
from cnnlab.training.runs_table import config_differences, format_differences, format_runs, list_runs, read_row


def test_a_row_holds_what_the_run_files_say(tmp_path):
    path = write_run(tmp_path, "a", rows=history(0.8, 0.9, 0.85, seconds=1.25), test_accuracy=0.875)
    row = read_row(path)
    assert (row.name, row.path, row.model, row.dataset) == ("a", str(path), "cnn", "mnist")
    assert (row.epochs, row.parameters) == (3, 693962)  # epochs trained: the history's rows
    assert (row.best_val_accuracy, row.test_accuracy, row.seconds) == (0.9, 0.875, 3.75)
    assert row.date is not None and row.problems == []


def test_a_run_without_history_or_metrics_shows_its_settings_and_what_is_missing(tmp_path):
    row = read_row(write_run(tmp_path, "fresh"))
    assert (row.epochs, row.parameters, row.best_val_accuracy, row.test_accuracy) == (2, 693962, None, None)
    assert row.problems == [f"{tmp_path}/fresh/history.json: missing", f"{tmp_path}/fresh/metrics.json: missing"]


def test_folders_that_are_not_runs_are_skipped(tmp_path):
    write_run(tmp_path, "a", rows=history(0.8), test_accuracy=0.8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "digit.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.txt").write_text("not a folder")
    assert [row.name for row in list_runs(tmp_path)] == ["a"]


@pytest.mark.parametrize(
    "damage, problem",
    [
        (b"{", "damaged (not the settings of a cnnlab run); start a new run"),
        (b"[1, 2]", "damaged (not the settings of a cnnlab run); start a new run"),
        (b"\xff\xfe{}", "damaged (not the settings of a cnnlab run); start a new run"),  # not even text
    ],
)
def test_a_damaged_run_shows_what_it_can_and_its_problems(tmp_path, damage, problem):
    path = write_run(tmp_path, "broken", rows=history(0.7, 0.75), test_accuracy=0.72)
    (path / "config.json").write_bytes(damage)
    (row,) = list_runs(tmp_path)
    assert (row.model, row.parameters) == (None, None)
    assert (row.epochs, row.best_val_accuracy, row.test_accuracy) == (2, 0.75, 0.72)
    assert row.problems == [f"{path}/config.json: {problem}"]


def test_damaged_history_and_metrics_are_problems_not_tracebacks(tmp_path):
    path = write_run(tmp_path, "broken", rows=[1, 2])
    (path / "metrics.json").write_text('"not an object"')
    row = read_row(path)
    assert (row.epochs, row.best_val_accuracy, row.test_accuracy) == (2, None, None)
    assert row.problems == [
        f"{path}/history.json: damaged (a row is not a JSON object)",
        f"{path}/metrics.json: damaged (not a JSON dict)",
    ]


@pytest.fixture
def three_runs(tmp_path):
    write_run(tmp_path, "b", rows=history(0.9, seconds=4.0), test_accuracy=0.91)
    write_run(tmp_path, "a", rows=history(0.8, 0.85), test_accuracy=0.95)
    write_run(tmp_path, "c", config={"built": {"parameters": 1000}}, rows=history(0.7))  # no test yet
    return tmp_path


@pytest.mark.parametrize(
    "key, order",
    [
        ("name", ["a", "b", "c"]),  # text: ascending
        ("test_accuracy", ["a", "b", "c"]),  # numbers: the largest first, a run without one last
        ("best_val_accuracy", ["b", "a", "c"]),
        ("seconds", ["b", "a", "c"]),
        ("parameters", ["a", "b", "c"]),  # ties keep the names' order
    ],
)
def test_runs_sort_by_any_column(three_runs, key, order):
    assert [row.name for row in list_runs(three_runs, sort=key)] == order


def test_an_unknown_sort_key_and_a_missing_folder_are_errors(three_runs):
    with pytest.raises(CnnlabError, match="--sort must be one of name, model, .*Received: 'accuracy'"):
        list_runs(three_runs, sort="accuracy")
    with pytest.raises(CnnlabError, match="nowhere: not a folder"):
        list_runs(three_runs / "nowhere")


def test_the_table_aligns_its_columns_and_shows_gaps_as_dashes(three_runs):
    rows = list_runs(three_runs)
    for row in rows:
        row.date = "2026-01-02 03:04"  # the files' times: not stable
    assert format_runs(rows).splitlines() == [
        "name  model  dataset  epochs  parameters  best val acc  test acc  seconds  date",
        "a     cnn    mnist         2     693,962        0.8500    0.9500      3.0  2026-01-02 03:04",
        "b     cnn    mnist         1     693,962        0.9000    0.9100      4.0  2026-01-02 03:04",
        "c     cnn    mnist         1       1,000        0.7000         -      1.5  2026-01-02 03:04",
        f"  ! {three_runs}/c/metrics.json: missing",
    ]


def test_a_long_one_line_spec_is_cut_in_the_table_only(tmp_path):
    spec = "conv(32,3)-maxpool(2)-relu-flatten-dense(128,relu)-dense(10,softmax)"
    write_run(tmp_path, "spec", config={"model": spec}, rows=history(0.8), test_accuracy=0.8)
    (row,) = list_runs(tmp_path)
    assert row.model == spec
    assert "conv(32,3)-maxpool(2)-relu-fl... " in format_runs([row]).splitlines()[1]


def test_config_differences_name_each_differing_key_run_by_run():
    configs = {
        "a": {"lr": None, "epochs": 2, "built": {"parameters": 10, "classes": 10}, "run": "runs/a", "name": "a"},
        "b": {"lr": 0.01, "epochs": 2, "built": {"parameters": 20, "classes": 10}, "run": "runs/b", "name": "b"},
        "c": {"lr": 0.01, "epochs": 2, "built": {"parameters": 10, "classes": 10}, "augment": "flip"},
    }
    differences = config_differences(configs)
    assert differences == {
        "lr": {"a": None, "b": 0.01, "c": 0.01},
        "built.parameters": {"a": 10, "b": 20, "c": 10},
        "augment": {"a": None, "b": None, "c": "flip"},  # absent: as unset
    }
    assert format_differences(differences).splitlines() == [
        "lr: a=null  b=0.01  c=0.01",
        "built.parameters: a=10  b=20  c=10",
        'augment: a=null  b=null  c="flip"',
    ]
    assert format_differences(config_differences({"a": {"lr": 1}, "b": {"lr": 1}})) == "the runs' settings are the same"


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return folder, train_runs(folder)


@pytest.mark.slow
def test_rows_of_real_runs_match_their_files(real_runs):
    folder, paths = real_runs
    rows = {row.name: row for row in list_runs(folder)}
    assert sorted(rows) == ["base", "dense", "fast"]
    for name, path in paths.items():
        config = json.loads((path / "config.json").read_text())
        rows_of_history = json.loads((path / "history.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
        row = rows[name]
        assert (row.model, row.dataset, row.epochs) == (config["model"], "mnist", 2)
        assert row.parameters == config["built"]["parameters"]
        assert row.best_val_accuracy == max(epoch["val_accuracy"] for epoch in rows_of_history)
        assert row.seconds == pytest.approx(sum(epoch["seconds"] for epoch in rows_of_history), abs=1e-3)
        assert row.test_accuracy == metrics["test_accuracy"] and row.problems == []
    assert rows["base"].parameters == 693962  # the course's CNN on MNIST
    assert rows["dense"].parameters == 28 * 28 * 32 + 32 + 32 * 10 + 10
