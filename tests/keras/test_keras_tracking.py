"""The trackers from Keras code: model.fit(callbacks=[TensorBoard(...), WandbCallback(...), MlflowCallback(...)]),
each read back with its tool's own reader, with no network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trackerfiles import need, no_network, wandb_records  # noqa: F401  (no_network: an autouse fixture)

from cnnlab.keras.callbacks import MlflowCallback, TensorBoard, WandbCallback
from cnnlab.keras.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from cnnlab.keras.models import Sequential
from cnnlab.keras.utils import set_random_seed, to_categorical

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
generator = np.random.default_rng(1)
X = generator.random((96, 12, 12, 1)).astype("float32")  # already scaled, as the course's x / 255
Y = to_categorical(generator.integers(0, 10, 96), 10)


def lesson_model() -> Sequential:
    set_random_seed(0)
    model = Sequential([Input((12, 12, 1)), Conv2D(4, (3, 3), activation="relu"), MaxPooling2D((2, 2)), Flatten()])
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_tensorboard_writes_each_epoch_and_the_summary(tmp_path):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = lesson_model().fit(X, Y, epochs=2, batch_size=32, validation_split=0.25, verbose=0,
                                 callbacks=[TensorBoard(log_dir=tmp_path / "logs")])  # fmt: skip
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [scalar.step for scalar in events.Scalars(metric)] == [1, 2]
        assert [scalar.value for scalar in events.Scalars(metric)] == pytest.approx(history.history[metric])
    (text,) = events.Tensors("model/text_summary")
    assert "    Total params: 1,050" in text.tensor_proto.string_val[0].decode()  # 4·9 + 4 + 5·5·4·10 + 10
    with pytest.raises(
        NotImplementedError, match=r"^TensorBoard: cnnlab implements histogram_freq=0 only. Received: 1$"
    ):
        TensorBoard(histogram_freq=1)


def test_wandb_callback_logs_the_config_epochs_and_captioned_validation_pictures(tmp_path):
    need("wandb")
    callback = WandbCallback(
        config={"dense_layer_size": 10, "epochs": 2}, data_type="image", labels=LABELS, dir=tmp_path
    )
    history = lesson_model().fit(
        X[:64], Y[:64], epochs=2, batch_size=32, validation_data=(X[64:], Y[64:]), verbose=0, callbacks=[callback]
    )
    (file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(file)
    config = {}
    for record in records:
        if record.WhichOneof("record_type") == "run":
            config |= {item.key: json.loads(item.value_json) for item in record.run.config.update}
    assert (config["dense_layer_size"], config["epochs"]) == (10, 2)
    epochs = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]
    assert [epoch["val_accuracy"] for epoch in epochs] == pytest.approx(history.history["val_accuracy"])
    truths = [LABELS[index] for index in Y[64:80].argmax(1)]
    for epoch in epochs:
        assert epoch["examples/count"] == 16
        for caption, truth in zip(epoch["examples/captions"], truths):
            guess, _, wrong = caption.partition(" (true ")
            assert guess in LABELS and (wrong == f"{truth})" if wrong else guess == truth)


def test_wandb_pictures_need_validation_data(tmp_path):
    need("wandb")
    callback = WandbCallback(data_type="image", labels=LABELS, dir=tmp_path)
    with pytest.raises(ValueError, match='data_type="image" shows validation pictures; give fit validation_data'):
        lesson_model().fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    with pytest.raises(ValueError, match=r"data_type must be None or \"image\". Received: data_type='video'"):
        WandbCallback(data_type="video")


def test_mlflow_callback_logs_params_and_metrics_to_the_store_given(tmp_path):
    need("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    history = lesson_model().fit(X, Y, epochs=2, batch_size=32, validation_split=0.25, verbose=0,
                                 callbacks=[MlflowCallback(tracking_uri=store, experiment="lesson")])  # fmt: skip
    client = MlflowClient(tracking_uri=store)
    (found,) = client.search_runs([client.get_experiment_by_name("lesson").experiment_id])
    assert found.info.status == "FINISHED" and found.data.params["batch_size"] == "32"
    logged = client.get_metric_history(found.info.run_id, "val_loss")
    assert [entry.value for entry in logged] == pytest.approx(history.history["val_loss"])
