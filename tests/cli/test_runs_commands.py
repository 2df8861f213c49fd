"""cnnlab runs and cnnlab compare: on run folders written by hand (exact output) and on real short runs."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest
from pngfiles import png_size
from runfolders import history, train_runs, write_run


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """base, fast and dense: three real runs (600 images, 2 epochs), and a folder that is not a run."""
    folder = tmp_path_factory.mktemp("runs")
    paths = train_runs(folder)
    (folder / "notes").mkdir()
    return folder, paths


def _table_names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:] if not line.startswith("  !")]


@pytest.mark.slow
def test_runs_lists_real_runs_and_skips_other_folders(run_cli, real_runs):
    folder, paths = real_runs
    result = run_cli("runs", folder)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    # the model column is as wide as the longest model, cut to 32 characters
    model = "model".ljust(32)
    assert lines[0] == f"name   {model}  dataset  epochs  parameters  best val acc  test acc  seconds  date"
    assert _table_names(result.out) == ["base", "dense", "fast"]
    base = json.loads((paths["base"] / "metrics.json").read_text())["test_accuracy"]
    assert lines[1].split()[:5] == ["base", "cnn", "mnist", "2", "693,962"]
    assert f"{base:.4f}" in lines[1].split()


@pytest.mark.slow
def test_runs_sorts_by_test_accuracy_from_the_best(run_cli, real_runs):
    folder, paths = real_runs
    accuracy = {name: json.loads((path / "metrics.json").read_text())["test_accuracy"] for name, path in paths.items()}
    result = run_cli("runs", folder, "--sort", "test_accuracy")
    assert _table_names(result.out) == sorted(accuracy, key=accuracy.get, reverse=True)


@pytest.mark.slow
def test_runs_json_gives_the_same_rows_as_data(run_cli, real_runs):
    folder, paths = real_runs
    rows = json.loads(run_cli("runs", folder, "--json", "--sort", "name").out)
    assert [row["name"] for row in rows] == ["base", "dense", "fast"]
    assert rows[0]["path"] == str(paths["base"]) and rows[0]["parameters"] == 693962
    assert set(rows[0]) == {
        "name",
        "path",
        "model",
        "dataset",
        "epochs",
        "parameters",
        "best_val_accuracy",
        "test_accuracy",
        "seconds",
        "date",
        "problems",
    }


@pytest.mark.slow
def test_compare_draws_one_png_and_prints_the_settings_that_differ(run_cli, real_runs, tmp_path):
    folder, paths = real_runs
    out = tmp_path / "compare.png"
    result = run_cli("compare", paths["base"], paths["fast"], paths["dense"], "--out", out)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "lr: base=null  fast=0.01  dense=null",
        'model: base="cnn"  fast="cnn"  dense="flatten-dense(32,relu)-dense(10,softmax)"',
        "built.parameters: base=693962  fast=693962  dense=25450",
        f"wrote {out}",
    ]
    assert png_size(out) == (1200, 450)


def test_runs_prints_an_exact_table_of_runs_written_by_hand(run_cli, tmp_path):
    write_run(tmp_path, "b", rows=history(0.9, seconds=4.0), test_accuracy=0.91)
    write_run(tmp_path, "a", rows=history(0.8, 0.85), test_accuracy=0.95)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "history.json").write_text("[")
    when = datetime(2026, 1, 2, 3, 4).timestamp()  # the date column: metrics.json's time (local)
    for name in ("a", "b"):
        os.utime(tmp_path / name / "metrics.json", (when, when))
    result = run_cli("runs", tmp_path, "--sort", "seconds")
    assert result.out.splitlines() == [
        "name    model  dataset  epochs  parameters  best val acc  test acc  seconds  date",
        "b       cnn    mnist         1     693,962        0.9000    0.9100      4.0  2026-01-02 03:04",
        "a       cnn    mnist         2     693,962        0.8500    0.9500      3.0  2026-01-02 03:04",
        "broken  -      -             -           -             -         -        -  -",
        f"  ! {tmp_path}/broken: no readable config.json; give a run folder made by cnnlab train",
        f"  ! {tmp_path}/broken/history.json: not valid JSON",
        f"  ! {tmp_path}/broken/metrics.json: missing",
    ]


def test_runs_of_an_empty_folder_says_so(run_cli, tmp_path):
    assert run_cli("runs", tmp_path).out == f"no runs in {tmp_path}\n"
    assert run_cli("runs", tmp_path, "--json").out == "[]\n"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["runs", "nowhere"], "cnnlab: error: nowhere: not a folder; give the folder holding the run folders"),
        (["runs", ".", "--sort", "speed"], "cnnlab: error: --sort must be one of name, model, dataset"),
        (["compare", "nowhere", "."], "cnnlab: error: nowhere: not a run folder; give folders made by cnnlab train"),
    ],
)
def test_mistakes_are_one_line_errors(run_cli, tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*arguments)
    assert result.code == 1 and result.err.startswith(message) and len(result.err.splitlines()) == 1


def test_compare_needs_two_runs_with_histories(run_cli, tmp_path):
    one = write_run(tmp_path, "one", rows=history(0.8))
    result = run_cli("compare", one)
    assert result.code == 2 and "give at least two runs to compare" in result.err
    result = run_cli("compare", one, write_run(tmp_path, "fresh"), "--out", tmp_path / "c.png")
    assert (result.code, result.err) == (1, f"cnnlab: error: {tmp_path}/fresh/history.json: missing\n")
    (tmp_path / "fresh" / "history.json").write_text("[")
    result = run_cli("compare", one, tmp_path / "fresh", "--out", tmp_path / "c.png")
    assert (result.code, result.err) == (1, f"cnnlab: error: {tmp_path}/fresh/history.json: not valid JSON\n")
    assert not (tmp_path / "c.png").exists()


def test_compare_of_runs_written_by_hand_prints_their_differences(run_cli, tmp_path):
    a = write_run(tmp_path / "x", "run", rows=history(0.8, 0.9))
    b = write_run(tmp_path / "y", "run", config={"epochs": 3, "augment": "flip"}, rows=history(0.7, 0.8, 0.9))
    out = tmp_path / "both.png"
    result = run_cli("compare", a, b, "--out", out)
    assert result.out.splitlines() == [  # two runs of one name: told apart by their paths
        f"epochs: {a}=2  {b}=3",
        f'augment: {a}=null  {b}="flip"',
        f"wrote {out}",
    ]
    assert png_size(out) == (1200, 450)


def test_the_sort_help_names_every_column(run_cli):
    from cnnlab.training.runs_table import SORT_KEYS

    help_text = " ".join(run_cli("runs", "--help").out.split())
    assert ", ".join(SORT_KEYS[:-1]) + f" or {SORT_KEYS[-1]}" in help_text
