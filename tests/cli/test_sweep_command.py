"""cnnlab sweep: the exact one-line errors for bad input, and a real tiny sweep's exact output (200 images, 1 epoch)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("optuna")

TINY = {"limit": 200, "epochs": 1, "batch_size": 64, "device": "cpu"}
CNN_OPTIONS = "cnn's are first_layer_conv_width, first_layer_conv_height, dense_layer_size"


def write_sweep(folder, **fields):
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump({"settings": TINY, **fields}))
    return path


@pytest.mark.parametrize(
    "fields, arguments, message",
    [
        ({"method": "bayes", "parameters": {"lr": [0.1]}}, [],
         "s.yaml method: must be one of grid, random, tpe. Received: 'bayes'"),
        ({"parameters": {"dense_layer_sise": {"values": [64]}}}, [],
         f"s.yaml parameters dense_layer_sise: not a train setting (see cnnlab train --help) nor a hyper-parameter "
         f"of cnn ({CNN_OPTIONS})"),
        ({"parameters": {"lr": {"min": 0.001}}}, [],
         "s.yaml parameters.lr: min and max must both be numbers. Received: min=0.001, max=None"),
        ({"method": "random", "parameters": {"lr": [0.1]}}, [],
         "give --trials N: how many trials to run in all (random and tpe searches have no end of their own)"),
    ],
)  # fmt: skip
def test_a_bad_sweep_is_one_line_and_exit_1_before_anything_is_written(
    run_cli, tmp_path, monkeypatch, fields, arguments, message
):
    monkeypatch.chdir(tmp_path)
    write_sweep(tmp_path, **fields)
    result = run_cli("sweep", "--config", "s.yaml", *arguments)
    assert (result.code, result.out, result.err) == (1, "", f"cnnlab: error: {message}\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s.yaml"]  # no runs/ folder, no study


def test_a_missing_sweep_file_and_bad_counts_are_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("sweep", "--config", "nowhere.yaml")
    assert (result.code, result.err) == (
        1,
        "cnnlab: error: nowhere.yaml: cannot read the settings file (No such file or directory)\n",
    )
    result = run_cli("sweep", "--config", write_sweep(tmp_path, parameters={"lr": [0.1]}), "--trials", "0")
    assert (result.code, result.err) == (
        2,
        "cnnlab sweep: error: --trials must be at least 1. Received: 0 (see 'cnnlab sweep --help')\n",
    )
    result = run_cli("sweep")
    assert (result.code, result.err) == (
        2,
        "cnnlab sweep: error: Missing option '--config'. (see 'cnnlab sweep --help')\n",
    )


def test_a_storage_that_cannot_be_opened_is_one_line(run_cli, tmp_path):
    path = write_sweep(tmp_path, parameters={"lr": [0.1]})
    result = run_cli("sweep", "--config", path, "--trials", "1", "--storage", "nosuch://host/db", "--out", tmp_path)
    assert result.code == 1 and len(result.err.splitlines()) == 1
    assert result.err.startswith("cnnlab: error: --storage nosuch://host/db: cannot open the study storage (")


def test_without_optuna_the_command_says_how_to_install_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = run_cli("sweep", "--config", write_sweep(tmp_path, parameters={"lr": [0.1]}))
    assert (result.code, result.err) == (1, "cnnlab: error: cnnlab sweep needs optuna: pip install optuna\n")


def test_the_command_line_imports_neither_optuna_nor_torch():
    code = (
        "import sys, cnnlab.cli; "
        "cnnlab.cli._register_commands(); "
        "print('optuna' in sys.modules, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False False", result.stderr


@pytest.mark.slow
def test_a_grid_sweep_prints_each_trial_the_table_and_the_best_and_resumes_with_nothing_left(run_cli, tmp_path):
    path = write_sweep(tmp_path, method="grid", parameters={"dense_layer_size": [8, 16]})
    out = tmp_path / "out"
    result = run_cli("sweep", "--config", path, "--out", out)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    rows = {row["trial"]: row for row in json.loads((out / "results.json").read_text())}
    for line in lines[:2]:
        number = int(line.split(":")[0].removeprefix("trial "))
        row = rows[number]
        expected = rf"trial {number}: dense_layer_size={row['dense_layer_size']} → val_accuracy "
        assert re.fullmatch(expected + rf"{row['val_accuracy']:.4f} \(\d+\.\d s\)", line), line
    assert lines[2] == "trial  state     dense_layer_size  val_accuracy  test_accuracy  epochs_run  seconds"
    ranked = sorted(rows.values(), key=lambda row: -row["val_accuracy"])
    assert [int(line.split()[0]) for line in lines[3:5]] == [row["trial"] for row in ranked]
    assert lines[3].split()[1:3] == ["complete", str(ranked[0]["dense_layer_size"])]
    best = ranked[0]
    assert lines[5:] == [
        f"best: trial {best['trial']}: dense_layer_size={best['dense_layer_size']} → val_accuracy "
        f"{best['val_accuracy']:.4f}",
        f"best settings: {out}/best.yaml (train them again: cnnlab train --config {out}/best.yaml)",
    ]
    again = run_cli("sweep", "--config", path, "--out", out)  # resumed: both trials done, nothing runs
    assert again.code == 0 and again.out.splitlines() == lines[2:]
    quiet = run_cli("sweep", "--config", path, "--out", out, "--quiet")
    assert quiet.out.splitlines() == lines[5:6]


def test_ctrl_c_says_how_to_resume_and_exits_130(run_cli, tmp_path, monkeypatch):
    from cnnlab.training import train as training

    def interrupted(config, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    path = write_sweep(tmp_path, method="grid", parameters={"lr": [0.001]})
    result = run_cli("sweep", "--config", path, "--out", tmp_path / "out")
    assert (result.code, result.out) == (130, "")
    assert result.err == "cnnlab: interrupted: trial 0 is queued again; run the same command to resume\n"
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(row["trial"], row["state"], row["lr"]) for row in rows] == [(0, "failed", 0.001), (1, "waiting", 0.001)]
