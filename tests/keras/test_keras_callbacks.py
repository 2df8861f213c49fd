"""cnnlab.keras.callbacks: Keras's callbacks and arguments, on cnnlab's training loop."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cnnlab.keras import callbacks, layers
from cnnlab.keras.models import Sequential, load_model
from cnnlab.keras.utils import set_random_seed


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((96, 6)).astype("float32")
    return x, (x.sum(axis=1) > 3).astype("int64")


def tiny_model(learning_rate=0.01):
    from cnnlab.keras.optimizers import SGD

    set_random_seed(0)
    model = Sequential([layers.Dense(8, activation="relu", input_shape=(6,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=SGD(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_callback_sees_the_keras_model_params_and_logs(data):
    seen = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("params", self.params))

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs), self.model.optimizer.learning_rate))

        def on_batch_end(self, batch, logs=None):  # Keras's older name still called
            seen.append(("batch", batch))

    model = tiny_model()
    model.fit(*data, batch_size=32, epochs=2, verbose=0, validation_split=0.25, callbacks=[Recorder()])
    assert seen[0] == ("params", {"verbose": 0, "epochs": 2, "steps": 3})
    assert seen[1:4] == [("batch", 0), ("batch", 1), ("batch", 2)]
    assert seen[4] == (0, ["accuracy", "loss", "val_accuracy", "val_loss"], 0.01)


def test_early_stopping_stops_and_restores_the_best_weights(data):
    model = tiny_model(learning_rate=5.0)  # too large: the validation loss soon gets worse
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    best = {}

    def remember(epoch, logs):
        if logs["val_loss"] <= min(best.get("losses", [np.inf])):
            best["weights"] = model.get_weights()
        best.setdefault("losses", []).append(logs["val_loss"])

    keep = callbacks.LambdaCallback(on_epoch_end=remember)
    history = model.fit(*data, epochs=30, verbose=0, validation_split=0.25, callbacks=[keep, stop])
    assert len(history.epoch) < 30 and stop.stopped_epoch == history.epoch[-1]
    for got, wanted in zip(model.get_weights(), best["weights"]):
        np.testing.assert_array_equal(got, wanted)


def test_early_stopping_on_accuracy_waits_for_patience(data):
    model = tiny_model(learning_rate=1e-6)  # nothing changes: no epoch improves by min_delta
    stop = callbacks.EarlyStopping(monitor="accuracy", min_delta=0.5, patience=2)
    history = model.fit(*data, epochs=10, verbose=0, callbacks=[stop])
    assert history.epoch == [0, 1, 2]


def test_model_checkpoint_writes_a_folder_per_epoch_and_the_best_only(data, tmp_path):
    model = tiny_model()
    every = callbacks.ModelCheckpoint(str(tmp_path / "model-{epoch:02d}"), save_best_only=False)
    best = callbacks.ModelCheckpoint(tmp_path / "best", monitor="val_accuracy", save_best_only=True)
    weights = callbacks.ModelCheckpoint(tmp_path / "w-{epoch}.safetensors", save_weights_only=True)
    model.fit(*data, epochs=2, verbose=0, validation_split=0.25, callbacks=[every, best, weights])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best",
        "model-01",
        "model-02",
        "w-1.safetensors",
        "w-2.safetensors",
    ]
    x = data[0][:4]
    np.testing.assert_allclose(load_model(tmp_path / "model-02").predict(x, verbose=0), model.predict(x, verbose=0))
    keras_file = tmp_path / "keras" / "model-{epoch}.keras"
    keras_file.parent.mkdir()
    model.fit(*data, epochs=1, verbose=0, callbacks=[callbacks.ModelCheckpoint(keras_file)])
    np.testing.assert_allclose(
        load_model(tmp_path / "keras" / "model-1.keras").predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_csv_logger_writes_a_row_an_epoch(data, tmp_path):
    path = tmp_path / "log.csv"
    tiny_model().fit(*data, epochs=3, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(path)])
    rows = list(csv.DictReader(path.open()))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]


def test_learning_rate_scheduler_changes_the_rate(data):
    model = tiny_model()
    rates = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    history = model.fit(*data, epochs=3, verbose=0, callbacks=[rates])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.optimizer.torch_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 3)


def test_reduce_lr_on_plateau_divides_the_rate(data):
    model = tiny_model(learning_rate=1e-6)  # the loss stays on its plateau
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)
    history = model.fit(*data, epochs=3, verbose=0, callbacks=[reduce])
    # the logs hold the rate each epoch ran with; the first epoch sets the best, each later one reduces
    assert history.history["learning_rate"] == pytest.approx([1e-6, 1e-6, 5e-7])
    assert model.optimizer.learning_rate == pytest.approx(2.5e-7)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=2)


def test_terminate_on_nan_stops_at_the_first_bad_batch(data, capsys):
    model = tiny_model(learning_rate=1e30)
    x = data[0] * 1e10
    model.fit(x, data[1], batch_size=8, epochs=5, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert model.optimizer.iterations < 5 * 12
