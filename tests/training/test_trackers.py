"""Trackers (cnnlab.training.trackers): what each writes, read back with that tool's own reader, and no network.

A tracker's tests skip when its package is missing, unless $CI is set (then they fail): the dev extra has them.
Weights & Biases runs offline only, MLflow keeps a local file store, and both have their telemetry off.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pngfiles import png_size
from trackerfiles import need, no_network, wandb_records  # noqa: F401  (no_network: an autouse fixture)

from cnnlab.errors import CnnlabError
from cnnlab.nn.registry import parse_model
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.loop import fit
from cnnlab.training.run import Run
from cnnlab.training.trackers import (
    MlflowLogger,
    TensorBoardLogger,
    WandbLogger,
    require,
    tracker_callbacks,
)

TEST = {"loss": 0.5, "accuracy": 0.875}  # what train's test evaluation hands finish()


def new_run(tmp_path) -> Run:
    """A run folder with its config.json (epochs 2, lr 0.002), as train makes one before fitting."""
    run = Run.new(tmp_path / "runs" / "tracked")
    run.write_settings(TrainConfig(epochs=2, lr=0.002, name="tracked"), built={"parameters": 1234})
    return run


generator = np.random.default_rng(0)
IMAGES = generator.integers(0, 256, size=(80, 8, 8, 1), dtype=np.uint8)  # 64 to train on, 16 to validate
LABELS = generator.integers(0, 10, size=80).astype(np.int64)
CLASSES = [str(digit) for digit in range(10)]


def fit_with(trackers, run: Run) -> list[dict]:
    """Two epochs of a small CNN on 64 random 8x8 pictures, then the run's last files and ``finish``."""
    images, labels = IMAGES, LABELS
    model = parse_model("conv(4,3)-relu-flatten-dense(10,softmax)", input_shape=(8, 8, 1))
    history = fit(
        model,
        (images[:64], labels[:64]),
        (images[64:], labels[64:]),
        FitConfig(epochs=2, batch_size=16, lr=0.002),
        run=run.path,
        verbose=False,
        callbacks=trackers,
    )
    run.write_metrics(TEST | {"per_class_accuracy": [0.875] * 10}, CLASSES)
    (run.path / "checkpoint.safetensors").write_bytes(b"resumes training")
    for tracker in trackers:
        tracker.finish(TEST)
    return history


EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def test_a_missing_package_names_its_pip_install():
    with pytest.raises(CnnlabError, match=r"^--log mlflow needs the mlflow-skinny package: pip install mlflow-skinny$"):
        require("cnnlab_no_such_module", "mlflow")


def test_tracker_callbacks_take_each_known_name_once(tmp_path):
    with pytest.raises(CnnlabError, match="--log must be one of tensorboard, wandb, mlflow. Received: 'neptune'"):
        tracker_callbacks(["tensorboard", "neptune"], tmp_path, TrainConfig())
    need("tensorboard")
    (tracker,) = tracker_callbacks(["tensorboard", "tensorboard"], tmp_path, TrainConfig())
    assert isinstance(tracker, TensorBoardLogger) and tracker.log_dir == tmp_path / "tensorboard"


def test_under_torchrun_only_process_0_tracks(tmp_path, monkeypatch):
    from cnnlab.training import distributed

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    assert tracker_callbacks(["tensorboard", "wandb", "mlflow"], tmp_path, TrainConfig()) == []


def test_tensorboard_event_files_hold_the_epochs_the_summary_and_the_test(tmp_path):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = new_run(tmp_path)
    samples = (IMAGES[64:], LABELS[64:], CLASSES)
    (tracker,) = tracker_callbacks(["tensorboard"], run.path, TrainConfig(), samples=samples)
    history = fit_with([tracker], run)
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    for metric in EPOCH_METRICS:
        scalars = events.Scalars(metric)
        assert [scalar.step for scalar in scalars] == [1, 2]
        expected = [row.get(metric, 0.002) for row in history]  # the learning rate: constant
        assert [scalar.value for scalar in scalars] == pytest.approx(expected, rel=1e-6)
    assert [(scalar.step, scalar.value) for scalar in events.Scalars("test_accuracy")] == [(2, 0.875)]
    (text,) = events.Tensors("model/text_summary")
    summary = text.tensor_proto.string_val[0].decode()
    assert summary.startswith('    Model: "custom"')  # indented: TensorBoard's Markdown keeps it a table
    assert "    Total params: 1,490" in summary  # 4·3·3 + 4 (the Conv2D), 6·6·4·10 + 10 (the Dense)
    grids = events.Images("predictions")
    assert [grid.step for grid in grids] == [1, 2]
    assert grids[0].encoded_image_string.startswith(b"\x89PNG") and (grids[0].width, grids[0].height) == (560, 600)


def test_a_wandb_run_offline_holds_the_config_the_epochs_and_the_summary(tmp_path, capsys, monkeypatch):
    need("wandb")
    monkeypatch.setattr(WandbLogger, "hinted", False)
    run = new_run(tmp_path)
    (tracker,) = tracker_callbacks(["wandb"], run.path, TrainConfig())  # the run's config.json: its settings
    assert tracker.mode == "offline"
    history = fit_with([tracker], run)
    (file,) = (run.path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(file)

    def of(kind: str, items) -> dict:  # the records of one kind, merged in order: key -> value
        merged = {}
        for record in records:
            if record.WhichOneof("record_type") == kind:
                merged |= {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items(record)}
        return merged

    config = of("run", lambda record: record.run.config.update) | of("config", lambda record: record.config.update)
    assert (config["lr"], config["epochs"], config["model"], config["name"]) == (0.002, 2, "cnn", "tracked")
    assert config["built"] == {"parameters": 1234}  # what was built, from config.json
    epochs = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2] and [epoch["_step"] for epoch in epochs] == [1, 2]
    for metric in EPOCH_METRICS:
        assert [epoch[metric] for epoch in epochs] == pytest.approx([row.get(metric, 0.002) for row in history])
    summary = of("summary", lambda record: record.summary.update)
    assert (summary["test_accuracy"], summary["test_loss"]) == (0.875, 0.5)
    assert summary["val_accuracy"] == pytest.approx(history[-1]["val_accuracy"])  # the last epoch's
    hint = f"cnnlab: the wandb run is offline in {file.parent}; upload it with: wandb sync {file.parent}\n"
    printed = capsys.readouterr().err
    assert hint in printed and printed.count("wandb sync") == 1, printed  # wandb's own warnings may come too

    again = Run.new(tmp_path / "runs" / "again")  # a second run in the process: no second hint
    fit_with([WandbLogger("cnnlab", {"lr": 0.002}, dir=again.path)], again)
    printed = capsys.readouterr().err
    assert "wandb sync" not in printed, printed


def test_wandb_is_offline_without_an_api_key_unless_told(monkeypatch):
    need("wandb")
    monkeypatch.delenv("WANDB_MODE")
    assert WandbLogger("cnnlab", {}).mode == "offline"
    assert WandbLogger("cnnlab", {}, mode="disabled").mode == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # never used: no run is started
    assert WandbLogger("cnnlab", {}).mode == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert WandbLogger("cnnlab", {}).mode == "offline"


def test_an_mlflow_run_in_the_local_store_holds_params_metrics_and_the_run_files(tmp_path):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    run = new_run(tmp_path)
    (tracker,) = tracker_callbacks(["mlflow"], run.path, TrainConfig())
    history = fit_with([tracker], run)
    store = tmp_path / "runs" / "mlruns"  # beside the run folder
    client = MlflowClient(tracking_uri=store.as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert found.info.run_name == "tracked" and found.info.status == "FINISHED"
    params = found.data.params
    assert (params["lr"], params["epochs"], params["built.parameters"], params["model"]) == (
        "0.002",
        "2",
        "1234",
        "cnn",
    )
    for metric in EPOCH_METRICS:
        logged = client.get_metric_history(found.info.run_id, metric)
        assert [entry.step for entry in logged] == [1, 2]
        expected = [row.get(metric, 0.002) for row in history]
        assert [entry.value for entry in logged] == pytest.approx(expected)
    assert found.data.metrics["test_accuracy"] == 0.875
    files = sorted(item.path for item in client.list_artifacts(found.info.run_id, "run"))
    assert files == ["run/config.json", "run/metrics.json"]  # the checkpoint only resumes: left out


def test_an_mlflow_tracking_uri_given_is_the_store(tmp_path):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "elsewhere").as_uri()
    fit_with([MlflowLogger(tracking_uri=store, experiment="mine")], new_run(tmp_path))
    client = MlflowClient(tracking_uri=store)
    (found,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert found.data.metrics["test_loss"] == 0.5
    assert not (tmp_path / "runs" / "mlruns").exists()


def test_cnnlab_train_log_tracks_the_whole_run(run_cli, tmp_path):
    """``cnnlab train --log tensorboard``: the epochs, and at the end the test accuracy train printed."""
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli(
        "train",
        "--limit",
        "600",
        "--epochs",
        "2",
        "--name",
        "logged",
        "--runs-dir",
        tmp_path,
        "--log",
        "tensorboard",
        "--quiet",
    )
    assert result.code == 0, result.err
    events = EventAccumulator(str(tmp_path / "logged" / "tensorboard"))
    events.Reload()
    assert [scalar.step for scalar in events.Scalars("val_accuracy")] == [1, 2]
    (test,) = events.Scalars("test_accuracy")
    assert f"{test.value:.4f}" == result.out.strip().removeprefix("test accuracy: ")


def test_wandb_logs_captioned_sample_predictions_every_epoch(tmp_path):
    need("wandb")
    run = new_run(tmp_path)
    samples = (IMAGES[64:], LABELS[64:], CLASSES)
    fit_with([WandbLogger("cnnlab", {}, dir=run.path, samples=samples)], run)
    (file,) = (run.path / "wandb").glob("offline-run-*/run-*.wandb")
    epochs = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for record in wandb_records(file)
        if record.WhichOneof("record_type") == "history"
    ]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    for epoch in epochs:
        captions = epoch["examples/captions"]
        assert epoch["examples/count"] == len(captions) == 16
        for caption, truth in zip(captions, LABELS[64:]):  # the guess, and the true class when it is wrong
            guess, _, wrong = caption.partition(" (true ")
            assert (wrong == "" and guess == str(truth)) or (wrong == f"{truth})" and guess != str(truth))
        # the pictures themselves, as PNG files in the run's media folder
        for name in epoch["examples/filenames"]:
            assert png_size(file.parent / "files" / name) == (8, 8)
