"""The training loop, the run folder, and the core commands (summary, train, evaluate, reproduce)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.nn.registry import create_model
from cnnlab.training.config import TrainConfig
from cnnlab.training.loop import split_validation
from cnnlab.training.train import train


def test_validation_split_is_the_last_fraction_before_shuffling():
    images, labels = np.arange(10)[:, None], np.arange(10)
    (train_x, train_y), (val_x, val_y) = split_validation(images, labels, 0.3)
    assert train_y.tolist() == list(range(7)) and val_y.tolist() == [7, 8, 9]


@pytest.mark.slow
def test_short_run_writes_a_complete_run_folder(tmp_path):
    result = train(TrainConfig(limit=3000, epochs=2, name="short", runs_dir=str(tmp_path)), verbose=False)
    run = tmp_path / "short"
    for name in (
        "config.json",
        "history.csv",
        "history.json",
        "model.json",
        "model.safetensors",
        "curves.png",
        "metrics.json",
    ):
        assert (run / name).stat().st_size > 0, name
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert history[1]["loss"] < history[0]["loss"]
    assert (run / "history.csv").read_text().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.test["accuracy"] > 0.8  # 2,100 training images already read digits
    assert len(metrics["per_class_accuracy"]) == 10
    config = json.loads((run / "config.json").read_text())
    assert config["limit"] == 3000 and config["optimizer"] == "rmsprop" and config["validation_split"] == 0.3


@pytest.mark.slow
def test_train_cli_prints_one_line_per_epoch_then_the_test_accuracy(run_cli, tmp_path):
    result = run_cli("train", "--limit", "2000", "--epochs", "2", "--name", "cli", "--runs-dir", tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert re.fullmatch(
        r"epoch 1/2  loss \d\.\d{4}  accuracy \d\.\d{4}  val_loss \d\.\d{4}  "
        r"val_accuracy \d\.\d{4}  \d+\.\ds",
        lines[0],
    )
    assert lines[2] == f"run: {tmp_path / 'cli'}"
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", lines[3]) and len(lines) == 4
    evaluated = run_cli("evaluate", tmp_path / "cli")
    assert evaluated.code == 0 and evaluated.out.splitlines()[1] == lines[3]
    assert len(evaluated.out.splitlines()) == 3 + 10


def test_existing_run_folder_is_refused_and_left_alone(run_cli, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("keep me")
    result = run_cli("train", "--limit", "200", "--epochs", "1", "--name", "taken", "--runs-dir", tmp_path)
    assert result.code == 1 and result.out == ""
    assert (
        result.err == f"cnnlab: error: {tmp_path / 'taken'}: this run folder already exists; choose another "
        f"--name, or --resume {tmp_path / 'taken'}\n"
    )
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--epochs", "0", "--epochs must be at least 1. Received: 0"),
        ("--batch-size", "0", "--batch-size must be at least 1. Received: 0"),
        ("--validation-split", "1", "--validation-split must be in [0, 1). Received: 1.0"),
        ("--model", "resnet9000", "unknown model 'resnet9000'"),
    ],
)
def test_out_of_range_options_are_one_line(run_cli, tmp_path, option, value, message):
    result = run_cli("train", option, value, "--runs-dir", tmp_path)
    assert result.code == 1 and len(result.err.splitlines()) == 1 and message in result.err
    assert not any(tmp_path.iterdir())  # nothing written


def test_cuda_without_a_gpu_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine that has one
    result = run_cli("train", "--device", "cuda", "--runs-dir", tmp_path)
    assert (result.code, result.out) == (1, "")
    assert result.err == "cnnlab: error: --device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto\n"
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_option_is_a_usage_error(run_cli):
    result = run_cli("train", "--epoch", "3")
    assert result.code == 2 and len(result.err.splitlines()) == 1
    assert result.err == (
        "cnnlab train: error: No such option '--epoch'. Did you mean '--epochs'? (see 'cnnlab train --help')\n"
    )


def test_summary_cli_gives_keras_totals(run_cli):
    result = run_cli("summary", "cnn")
    assert result.code == 0
    assert result.out.splitlines()[-4:] == [
        "Total params: 693,962",
        "Trainable params: 693,962",
        "Non-trainable params: 0",
        "Multiply-adds per sample: 888,192",
    ]
    as_json = json.loads(run_cli("summary", "mlp", "--json").out)
    assert as_json["total_params"] == 570_602 and as_json["layers"][0]["output_shape"] == [784]


@pytest.mark.slow
def test_reproduce_prints_the_mean_and_range_of_each_experiment(run_cli, tmp_path):
    result = run_cli(
        "reproduce", "--models", "cnn,mlp", "--epochs", "1", "--limit", "1500", "--seeds", "2",
        "--out-dir", tmp_path, "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        "| experiment | settings | course accuracy | cnnlab mean of 2 seeds | range | parameters | seconds per run |"
    )
    rows = json.loads((tmp_path / "reproduce.json").read_text())
    assert [row["experiment"] for row in rows] == ["cnn", "mlp"] and [row["seeds"] for row in rows] == [[0, 1]] * 2
    for row, line in zip(rows, lines[2:4]):
        # each seed's own run folder holds the accuracy the table averages
        tested = [
            json.loads((tmp_path / f"{row['experiment']}-seed{seed}" / "metrics.json").read_text()) for seed in (0, 1)
        ]
        assert row["accuracies"] == [round(each["test_accuracy"], 4) for each in tested]
        low, high = sorted(row["accuracies"])
        assert f"| {sum(row['accuracies']) / 2:.2%} | {low:.2%}–{high:.2%} |" in line
    assert lines[2].startswith("| cnn | 1 epoch, batch 128, rmsprop | 97.52% | ") and "| 693,962 |" in lines[2]
    assert lines[3].startswith("| mlp | 1 epoch, batch 128, rmsprop | 97.94% | ") and "| 570,602 |" in lines[3]
    assert (tmp_path / "reproduce.md").read_text().splitlines()[:4] == lines[:4]


@pytest.mark.slow
def test_mixed_bfloat16_trains_in_bfloat16_and_is_recorded(tmp_path):
    from cnnlab.engine.devices import autocast

    with autocast(torch.device("cpu"), "mixed_bfloat16"):
        assert create_model("cnn")(torch.rand(2, 1, 28, 28)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "auto"):  # auto: float32 on a CPU
        assert create_model("cnn")(torch.rand(2, 1, 28, 28)).dtype == torch.float32
    result = train(
        TrainConfig(limit=2000, epochs=2, precision="mixed_bfloat16", name="mixed", runs_dir=str(tmp_path)),
        verbose=False,
    )
    assert json.loads((tmp_path / "mixed" / "config.json").read_text())["precision"] == "mixed_bfloat16"
    assert result.history[1]["loss"] < result.history[0]["loss"] and result.test["accuracy"] > 0.8
    assert all(parameter.dtype == torch.float32 for parameter in result.model.parameters())


@pytest.mark.slow
def test_the_console_script_keeps_exit_codes_and_output(tmp_path):
    """``cnnlab`` leaves through os._exit: what it printed must still arrive, with the right exit code."""
    summary = subprocess.run([sys.executable, "-m", "cnnlab", "summary", "cnn"], capture_output=True, text=True)
    assert summary.returncode == 0 and summary.stdout.rstrip().endswith("Multiply-adds per sample: 888,192")
    refused = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--epochs", "0"], capture_output=True, text=True, cwd=tmp_path
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == "cnnlab: error: --epochs must be at least 1. Received: 0\n"
    usage = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--precision", "half"], capture_output=True, text=True, cwd=tmp_path
    )
    assert usage.returncode == 2 and "--precision" in usage.stderr and usage.stderr.count("\n") == 1


def test_help_does_not_import_torch():
    probe = "import sys; from cnnlab.cli import _register_commands; _register_commands(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.slow
def test_the_course_run_reaches_the_course_accuracy(run_cli, tmp_path, monkeypatch):
    """The main job, as the README runs it: the course's cnn, 2 epochs, batch 128, rmsprop, split 0.3."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("train")
    assert result.code == 0, result.err
    accuracy = float(result.out.splitlines()[-1].removeprefix("test accuracy: "))
    assert accuracy >= 0.973


@pytest.mark.slow
def test_a_registry_model_is_built_for_the_folder_it_trains_on(run_cli, tmp_path):
    """Two classes of 64×64 colour pictures: the course's cnn takes their shape and ends in Dense(2)."""
    from PIL import Image

    generator = np.random.default_rng(0)
    for name, colour in (("cats", (200, 60, 40)), ("dogs", (40, 60, 200))):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for index in range(6):
            noise = generator.integers(0, 40, (64, 64, 3))
            Image.fromarray((np.array(colour) + noise).clip(0, 255).astype(np.uint8)).save(
                tmp_path / "pets" / name / f"{index}.png"
            )
    result = run_cli(
        "train",
        "--dataset",
        f"folder:{tmp_path / 'pets'}",
        "--image-size",
        "64",
        "--channels",
        "3",
        "--epochs",
        "1",
        "--validation-split",
        "0",
        "--name",
        "pets",
        "--runs-dir",
        tmp_path / "runs",
    )
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "pets"
    config = json.loads((run / "config.json").read_text())
    parameters = (3 * 3 * 3 * 32 + 32) + (31 * 31 * 32 * 128 + 128) + (128 * 2 + 2)
    assert config["model"] == "cnn" and config["built"] == {
        "input_shape": [64, 64, 3],
        "classes": 2,
        "parameters": parameters,
    }
    spec = json.loads((run / "model.json").read_text())["spec"]
    assert spec["input_shape"] == [64, 64, 3] and spec["layers"][-1]["units"] == 2
