"""``Run``: one run folder, read and written in one place.

``runs/NAME/`` holds ``config.json`` (the run's TrainConfig and facts about where it ran),
``history.json`` and ``history.csv`` (a row per epoch), ``model.json`` + ``model.safetensors`` (the
trained model, see ``cnnlab.nn.modelio``), ``metrics.json`` (test loss, accuracy, per-class accuracy),
``checkpoint.safetensors`` (to resume) and ``curves.png``. Every file is written to a temporary name and
renamed. ``cnnlab train`` and ``--resume`` write runs; evaluate, predict, features, serve and export read them.
A model folder made by ``cnnlab.save`` is a run with only the model in it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic, write_json
from cnnlab.training import distributed
from cnnlab.training.callbacks import Callback
from cnnlab.training.checkpoint import FILE as CHECKPOINT_FILE
from cnnlab.training.config import TrainConfig

CONFIG_FILE, HISTORY_FILE, METRICS_FILE, CURVES_FILE = "config.json", "history.json", "metrics.json", "curves.png"
# what config.json records beside the TrainConfig: facts about the run, not settings to train with
FACTS = ("run", "date", "built", "data_source", "torch", "threads", "processes")


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def create(cls, config: TrainConfig) -> Run:
        """A new, empty run folder under ``config.runs_dir``: ``config.name``, or MODEL-DATASET-TIME."""
        model = config.model if "(" not in config.model else "custom"
        dataset = config.dataset.replace(":", "-").replace("/", "-")
        return cls.new(Path(config.runs_dir) / (config.name or f"{model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}"))

    @classmethod
    def new(cls, path: str | Path) -> Run:
        """A new, empty run folder at ``path`` (its parents made as needed); an existing one is refused."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise CnnlabError(
                f"{path}: this run folder already exists; choose another --name, or --resume {path}"
            ) from None
        except OSError as problem:
            raise CnnlabError(f"{path}: cannot create the run folder ({problem.strerror})") from None
        return cls(path)

    # --- the settings ----------------------------------------------------------------------------------

    def record(self, required: bool = False) -> dict:
        """config.json as written ({} for a model folder without one, unless ``required``).

        Under torchrun, process 0 reads it for all processes.
        """
        file = self.path / CONFIG_FILE

        def read() -> str:
            try:
                return file.read_text()
            except FileNotFoundError:
                if required:
                    raise CnnlabError(
                        f"{self.path}: no readable config.json; give a run folder made by cnnlab train"
                    ) from None
                return "{}"
            except OSError as problem:
                raise CnnlabError(f"{file}: cannot be read ({problem.strerror})") from None

        try:
            record = json.loads(distributed.from_main(read))
        except (json.JSONDecodeError, UnicodeDecodeError):  # not JSON, or not even text
            record = None
        if required and not (isinstance(record, dict) and isinstance(record.get("epochs"), int)):
            raise CnnlabError(f"{file}: damaged (not the settings of a cnnlab run); start a new run")
        if not isinstance(record, dict):
            raise CnnlabError(f"{file}: not valid JSON; the run folder is damaged")
        return record

    def settings(self) -> TrainConfig:
        """The TrainConfig the run was made with (to resume it)."""
        return TrainConfig.from_record(self.record(required=True))

    def dataset_settings(self, model=None) -> dict:
        """How to load the run's dataset: dataset, data_dir, image_size, channels (a model folder: its dataset)."""
        record = self.record()
        dataset = record.get("dataset") or getattr(model, "dataset", None)
        return {
            "dataset": dataset,
            "data_dir": record.get("data_dir"),
            "image_size": record.get("image_size", 28),
            "channels": record.get("channels", 1),
        }

    def write_settings(self, config: TrainConfig, **facts) -> None:
        from dataclasses import asdict

        try:  # a resumed run keeps the date it started (read here: only process 0 writes, see Run.record)
            started = json.loads((self.path / CONFIG_FILE).read_text())["date"]
        except (OSError, ValueError, KeyError, TypeError):
            started = datetime.now().astimezone().isoformat(timespec="seconds")  # local time, with its UTC offset
        write_json(self.path / CONFIG_FILE, {**asdict(config), "run": str(self.path), "date": started, **facts})

    # --- what training leaves ---------------------------------------------------------------------------

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def write_history(self, history: list[dict]) -> None:
        write_json(self.path / HISTORY_FILE, history)
        columns = list(dict.fromkeys(key for row in history for key in row))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_atomic(self.path / "history.csv", table.getvalue())

    def write_metrics(self, test: dict, class_names: list[str]) -> None:
        write_json(
            self.path / METRICS_FILE,
            {
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "per_class_accuracy": dict(zip(class_names, test["per_class_accuracy"])),
            },
        )

    def save_model(self, model, class_names, dataset: str | None) -> None:
        from cnnlab.nn.modelio import save

        save(model, self.path, class_names=class_names, dataset=dataset)

    def load_model(self):
        from cnnlab.nn.modelio import load

        return load(self.path)


class RunFiles(Callback):
    """Writes the run's history files after every epoch (process 0), so a run stopped early keeps its curves."""

    def __init__(self, run: Run):
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        if distributed.is_main():
            self.run.write_history(self.state.progress.history)
