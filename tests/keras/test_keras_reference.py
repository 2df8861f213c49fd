"""cnnlab.keras against Keras itself (Keras 3 on its torch backend): the same weights give the same numbers.

Skipped when Keras is not installed, except under CI (the environment variable CI set), where it must run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is imported: no TensorFlow needed
try:
    import keras
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Keras is not installed (pip install keras)", allow_module_level=True)

import cnnlab.keras as cnnlab_keras

# Keras's own warnings (input_shape on a layer is the course's style; its numpy 2 deprecations) are not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:keras"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
]


def course_cnn(api, with_batch_norm=False):
    """The course's first CNN in either API (optionally with a BatchNormalization, for its four arrays)."""
    layers = api.layers
    model = api.models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), input_shape=(28, 28, 1)))
    if with_batch_norm:
        model.add(layers.BatchNormalization())
    model.add(layers.MaxPool2D(pool_size=(2, 2)))
    model.add(layers.Activation("relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


@pytest.fixture
def both():
    keras.backend.clear_session()
    cnnlab_keras.backend.clear_session()
    return lambda **options: (course_cnn(keras, **options), course_cnn(cnnlab_keras, **options))


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, 64), 10)
    return x, y


def summary_text(model) -> str:
    printed = []
    model.summary(print_fn=printed.append)
    return printed[0].rstrip("\n")


@pytest.mark.parametrize("with_batch_norm", [False, True])
def test_summary_text_is_keras(both, with_batch_norm):
    reference, ours = both(with_batch_norm=with_batch_norm)
    assert summary_text(ours) == summary_text(reference)


@pytest.mark.parametrize("with_batch_norm", [False, True])
def test_same_weights_same_predictions_and_loss(both, digits, with_batch_norm):
    reference, ours = both(with_batch_norm=with_batch_norm)
    weights = reference.get_weights()
    if with_batch_norm:  # moving statistics other than 0 and 1, so that inference uses them
        rng = np.random.default_rng(1)
        weights[2:6] = [rng.random(32).astype("float32") + 0.5 for _ in range(4)]
        reference.set_weights(weights)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    x, y = digits
    np.testing.assert_allclose(ours.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), reference.evaluate(x, y, verbose=0), rtol=1e-4)


def test_same_training_steps_same_weights(both, digits):
    """Three RMSprop steps without shuffling, from the same weights: Keras's update, step for step."""
    reference, ours = both()
    ours.set_weights(reference.get_weights())
    x, y = digits
    for model in (reference, ours):
        model.fit(x[:48], y[:48], batch_size=16, epochs=1, shuffle=False, verbose=0)
    for got, wanted in zip(ours.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, wanted, atol=1e-4)


def test_unknown_argument_message_is_keras(both):
    messages = []
    for api in (keras, cnnlab_keras):
        with pytest.raises(ValueError) as raised:
            api.layers.Conv2D(32, 3, filter=2)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


def test_history_keys_are_keras(both, digits):
    reference, ours = both()
    x, y = digits
    keys = [list(model.fit(x, y, epochs=1, verbose=0, validation_split=0.25).history) for model in (reference, ours)]
    assert keys[0] == keys[1]


@pytest.mark.parametrize(
    ("loss", "units", "activation"),
    [
        ("binary_crossentropy", 1, "sigmoid"),
        ("sparse_categorical_crossentropy", 3, "softmax"),
        ("mse", 3, "softmax"),
        ("categorical_crossentropy", 3, "linear"),  # outputs taken as probabilities, clipped: Keras's rule
    ],
)
def test_losses_and_accuracy_are_keras(loss, units, activation):
    rng = np.random.default_rng(2)
    x = rng.random((40, 5)).astype("float32")
    labels = rng.integers(0, units if units > 1 else 2, (40, 1)).astype("uint8")  # (N, 1), as CIFAR's
    one_hot = loss in ("mse", "categorical_crossentropy")
    y = np.eye(units, dtype="float32")[labels[:, 0]] if one_hot else labels
    results = []
    for api in (keras, cnnlab_keras):
        api.backend.clear_session()
        model = api.models.Sequential([api.layers.Dense(units, activation=activation, input_shape=(5,))])
        model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
        if results:
            model.set_weights(results[0][0])
        elif activation == "linear":  # positive outputs, so that Keras's clipping of probabilities is not all
            model.set_weights([np.abs(w) + 0.1 for w in model.get_weights()])
        results.append((model.get_weights(), model.predict(x, verbose=0), model.evaluate(x, y, verbose=0)))
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-6)
    np.testing.assert_allclose(results[1][2], results[0][2], rtol=1e-5, atol=1e-6)
