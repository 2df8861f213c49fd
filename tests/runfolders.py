"""Folders of runs for the tests of ``cnnlab runs`` and ``cnnlab compare``: written by hand (exact values,
no training) or trained for real (short runs)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.files import write_json


def history(*val_accuracies: float, seconds: float = 1.5) -> list[dict]:
    """history.json's rows, one per validation accuracy given."""
    return [
        {
            "epoch": number,
            "loss": 1.0 / number,
            "accuracy": 0.5 + number / 100,
            "val_loss": 1.2 / number,
            "val_accuracy": value,
            "seconds": seconds,
        }
        for number, value in enumerate(val_accuracies, start=1)
    ]


def write_run(folder: Path, name: str, *, config: dict | None = None, rows=None, test_accuracy=None) -> Path:
    """A run folder as cnnlab train leaves it: config.json (epochs 2, cnn on mnist, 693,962 parameters unless
    ``config`` says otherwise), history.json and metrics.json when given."""
    path = Path(folder) / name
    path.mkdir(parents=True)
    settings = {"epochs": 2, "model": "cnn", "dataset": "mnist", "lr": None, "name": name, "run": str(path)}
    built = {"input_shape": [28, 28, 1], "classes": 10, "parameters": 693962}
    write_json(path / "config.json", {**settings, "built": built, **(config or {})})
    if rows is not None:
        write_json(path / "history.json", rows)
    if test_accuracy is not None:
        write_json(path / "metrics.json", {"test_loss": 0.5, "test_accuracy": test_accuracy})
    return path


def train_runs(folder: Path) -> dict[str, Path]:
    """Three real short runs (600 images, 2 epochs, about a second each): base, fast (lr 0.01), dense (a small MLP)."""
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.train import train

    settings = {"base": {}, "fast": {"lr": 0.01}, "dense": {"model": "flatten-dense(32,relu)-dense(10,softmax)"}}
    return {
        name: train(
            TrainConfig(limit=600, epochs=2, validation_split=0.2, name=name, runs_dir=str(folder), **changes),
            verbose=False,
        ).run
        for name, changes in settings.items()
    }
