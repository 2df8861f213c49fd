"""The training loop as a reader sees it: settings of a fit apart from those of a run, and Keras's callback protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.data.registry import load_dataset
from cnnlab.nn.registry import create_model
from cnnlab.training.callbacks import Callback
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.loop import fit
from cnnlab.training.train import seed_everything


@pytest.fixture(scope="module")
def digits():
    mnist = load_dataset("mnist")
    return mnist.x_train[:640], mnist.y_train[:640]


class Recorder(Callback):
    """Writes down every hook call, with the keys of its logs."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", sorted(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):  # reached through on_train_batch_end, as in Keras
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))
        assert self.model.layers[0].name == "conv2d" and self.state.progress.epoch == epoch + 1

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_callbacks_see_every_hook_in_keras_order_with_logs(digits):
    seed_everything(0)
    recorder = Recorder()
    history = fit(
        create_model("cnn"),
        digits,
        config=FitConfig(epochs=2, batch_size=320, validation_split=0.5),
        callbacks=[recorder],
        verbose=False,
    )
    epoch_keys = ["accuracy", "loss", "seconds", "val_accuracy", "val_loss"]  # the loop's own callbacks ran first
    assert recorder.calls == [
        ("train_begin", []),
        ("epoch_begin", 0),
        ("batch_end", 0, ["accuracy", "loss"]),
        ("epoch_end", 0, epoch_keys),
        ("epoch_begin", 1),
        ("batch_end", 0, ["accuracy", "loss"]),
        ("epoch_end", 1, epoch_keys),
        ("train_end",),
    ]
    assert [row["epoch"] for row in history] == [1, 2]


def test_a_fit_given_a_validation_split_splits_as_keras_does(digits):
    seed_everything(0)
    model = create_model("cnn")
    seen = []

    class CountSamples(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.state.progress.history[-1])

    history = fit(
        model,
        digits,
        config=FitConfig(epochs=1, batch_size=64, validation_split=0.25),
        callbacks=[CountSamples()],
        verbose=False,
    )
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    # the last quarter (160 images) validates: the model's accuracy on them is the reported val_accuracy
    from cnnlab.training.evaluate import evaluate

    held_out = evaluate(model, digits[0][480:], digits[1][480:], with_per_class=False)
    assert history[0]["val_accuracy"] == pytest.approx(held_out["accuracy"])
    assert history[0]["val_loss"] == pytest.approx(held_out["loss"], rel=1e-5)


def test_a_fit_refuses_what_it_would_ignore(digits):
    with pytest.raises(TypeError, match="fit takes a FitConfig .* Received: config=TrainConfig"):
        fit(create_model("cnn"), digits, config=TrainConfig(validation_split=0.3), verbose=False)
    with pytest.raises(ValueError, match="give validation data or a validation_split, not both"):
        fit(create_model("cnn"), digits, digits, FitConfig(validation_split=0.3), verbose=False)
    assert TrainConfig(epochs=5, limit=100).fit_config() == FitConfig(epochs=5)


def test_a_callback_stops_training_as_in_keras(digits):
    class StopAfterOneEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    history = fit(
        create_model("cnn"),
        digits,
        config=FitConfig(epochs=5, batch_size=320),
        callbacks=[StopAfterOneEpoch()],
        verbose=False,
    )
    assert len(history) == 1 and math.isfinite(history[0]["loss"])


def test_the_history_callback_gives_keras_form(digits):
    from cnnlab.training.callbacks import History

    history = History()
    fit(create_model("cnn"), digits, config=FitConfig(epochs=2, batch_size=320), callbacks=[history], verbose=False)
    assert sorted(history.history) == ["accuracy", "epoch", "loss", "seconds"]
    assert history.history["epoch"] == [1, 2] and np.all(np.isfinite(history.history["loss"]))
