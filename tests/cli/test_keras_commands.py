"""Keras model files through the commands: a course CNN trained in Keras is imported, evaluated and served by
cnnlab; a cnnlab run is exported for Keras. Against real Keras 3 (torch backend); skipped without it, unless CI."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before anything imports keras
if "CI" in os.environ:
    import keras
else:
    keras = pytest.importorskip("keras", reason="keras is not installed (pip install keras h5py)")

from cnnlab.data.registry import load_dataset
from cnnlab.nn.keras_files import keras_predict
from cnnlab.nn.modelio import load

pytestmark = pytest.mark.slow  # Keras trains a model first


@pytest.fixture(scope="module")
def course_cnn_files(tmp_path_factory):
    """The course's first CNN trained by Keras on 3,000 digits, saved as .keras and .h5; its test accuracy."""
    from keras import layers

    keras.utils.set_random_seed(0)
    mnist = load_dataset("mnist")
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3)),
            layers.MaxPool2D((2, 2)),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(mnist.x_train[:3000] / 255.0, mnist.y_train[:3000], batch_size=128, epochs=1, verbose=0)
    _, accuracy = model.evaluate(mnist.x_test / 255.0, mnist.y_test, verbose=0)
    folder = tmp_path_factory.mktemp("keras-course")
    for suffix in (".keras", ".h5"):
        model.save(folder / f"course{suffix}")
    return folder, accuracy


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_course_cnn_evaluates_to_keras_accuracy_in_cnnlab(course_cnn_files, run_cli, tmp_path, suffix):
    folder, keras_accuracy = course_cnn_files
    imported = run_cli(
        "import", folder / f"course{suffix}", "--dataset", "mnist", "--name", "k", "--runs-dir", tmp_path
    )
    assert imported.code == 0, imported.err
    evaluated = run_cli("evaluate", tmp_path / "k")
    assert evaluated.code == 0, evaluated.err
    accuracy = float(evaluated.out.splitlines()[1].removeprefix("test accuracy: "))
    assert keras_accuracy > 0.8 and accuracy == pytest.approx(keras_accuracy, abs=2e-4)  # a tie at most, of 10,000


def test_cnnlab_serve_takes_the_keras_file_itself(course_cnn_files):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app

    client = TestClient(create_app(course_cnn_files[0] / "course.keras"))
    card = client.get("/api/model").json()
    assert card["input_shape"] == [28, 28, 1] and card["summary"]["total_params"] == 693_962
    digit = load_dataset("mnist").x_test[0, :, :, 0]  # a 7
    answer = client.post("/api/predict", json={"pixels": digit.tolist()}).json()
    assert answer["label"] == 7


def test_a_cnnlab_run_exported_for_keras_predicts_as_cnnlab(trained_run, run_cli, tmp_path):
    result = run_cli("export", trained_run, "--keras", tmp_path / "digits.keras")
    assert result.code == 0 and result.out.startswith(f"wrote {tmp_path / 'digits.keras'} ("), result.err
    in_keras = keras.saving.load_model(tmp_path / "digits.keras")  # Keras's safe mode: no code in the file
    images = load_dataset("mnist").x_test[:64] / np.float32(255)
    ours = keras_predict(load(trained_run), images)
    np.testing.assert_allclose(in_keras.predict(images, verbose=0), ours, atol=1e-5)
    assert load(tmp_path / "digits.keras").to_spec()["layers"] == load(trained_run).to_spec()["layers"]


def test_export_needs_a_format(run_cli, trained_run):
    result = run_cli("export", trained_run)
    assert result.code == 2 and "give --onnx FILE, --keras FILE.keras, or both" in result.err
