"""The course's Keras cells, run with only their imports changed to cnnlab.keras."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.keras.datasets import mnist
from cnnlab.keras.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from cnnlab.keras.models import Sequential
from cnnlab.keras.utils import set_random_seed, to_categorical
from cnnlab.lab.vision import convolve, pool


@pytest.fixture(autouse=True)
def seeded():
    set_random_seed(0)


@pytest.fixture(scope="module")
def course_data():
    """The course's preparation of MNIST, on the first 600 training and 300 test images."""
    (X_train, y_train), (X_test, y_test) = mnist.load_data()
    X_train = X_train[:600].reshape(-1, 28, 28, 1).astype("float32") / 255.0
    X_test = X_test[:300].reshape(-1, 28, 28, 1).astype("float32") / 255.0
    return X_train, to_categorical(y_train[:600], 10), X_test, to_categorical(y_test[:300], 10)


def first_cnn():
    model = Sequential()
    model.add(Conv2D(32, (3, 3), input_shape=(28, 28, 1)))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Activation("relu"))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def exercise_1_cnn():
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


def cifar_cnn():
    model = Sequential()
    model.add(Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(32, 32, 3)))
    model.add(Conv2D(32, (3, 3), activation="relu"))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (3, 3), padding="same", activation="relu"))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(512, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


@pytest.mark.parametrize(
    ("make", "total"), [(first_cnn, "693,962"), (exercise_1_cnn, "225,034"), (cifar_cnn, "1,250,858")]
)
def test_summary_shows_the_course_totals(make, total, capsys):
    model = make()
    model.summary()
    printed = capsys.readouterr().out
    assert f"Total params: {total} (" in printed
    assert f"Trainable params: {total} (" in printed
    assert model.count_params() == int(total.replace(",", ""))


def test_exercise_1_flattens_to_1600():
    assert exercise_1_cnn().layers[4].output_shape == (1600,)


def test_mlp_on_vectors_of_784_learns(course_data):
    X_train, y_train, X_test, y_test = course_data
    model = Sequential()
    model.add(Dense(512, activation="relu", input_shape=(784,)))
    model.add(Dense(256, activation="relu"))
    model.add(Dense(128, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    # 420 training images make 4 steps an epoch: 3 epochs to get well above chance (0.1)
    history = model.fit(X_train.reshape(-1, 784), y_train, batch_size=128, epochs=3, verbose=0, validation_split=0.3)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    loss, accuracy = model.evaluate(X_test.reshape(-1, 784), y_test, verbose=0)
    assert accuracy > 0.5 and np.isfinite(loss)


def test_first_cnn_learns_above_chance(course_data):
    X_train, y_train, X_test, y_test = course_data
    model = first_cnn()
    history = model.fit(X_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.3)
    assert history.epoch == [0] and len(history.history["val_accuracy"]) == 1
    assert model.evaluate(X_test, y_test, verbose=0)[1] > 0.3
    probabilities = model.predict(X_test[:5], verbose=0)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)  # the softmax is applied, as Keras


@pytest.fixture(scope="module")
def photo():
    """A 512×512 gray image with values in [0, 1] (the course uses scipy's ascent)."""
    return np.random.default_rng(0).random((512, 512)).astype("float32")


def test_conv2d_as_a_filter_with_its_weights_set_to_ones(photo):
    model = Sequential()
    model.add(Conv2D(1, (3, 3), strides=(2, 1), input_shape=(512, 512, 1)))
    model.compile("adam", "mse")
    image_tensor = photo.reshape((1, 512, 512, 1))
    assert model.predict(image_tensor, verbose=0).shape == (1, 255, 510, 1)
    weights = model.get_weights()
    assert weights[0].shape == (3, 3, 1, 1) and weights[1].shape == (1,)
    weights[0] = np.ones(weights[0].shape)
    model.set_weights(weights)
    blurred = model.predict(image_tensor, verbose=0)
    np.testing.assert_allclose(blurred[0, :, :, 0], convolve(photo, np.ones((3, 3)), stride=(2, 1)), atol=1e-4)


def test_conv2d_same_padding_keeps_the_size(photo):
    model = Sequential()
    model.add(Conv2D(1, (3, 3), padding="same", input_shape=(512, 512, 1)))
    assert model.predict(photo.reshape((1, 512, 512, 1)), verbose=0).shape == (1, 512, 512, 1)


@pytest.mark.parametrize(("layer", "kind"), [(MaxPool2D, "max"), (AvgPool2D, "avg")])
def test_pooling_the_photo_gives_102_by_102(photo, layer, kind):
    model = Sequential()
    model.add(layer((5, 5), input_shape=(512, 512, 1)))
    pooled = model.predict(photo.reshape((1, 512, 512, 1)), verbose=0)
    assert pooled.shape == (1, 102, 102, 1)
    np.testing.assert_allclose(pooled[0, :, :, 0], pool(photo, 5, kind), atol=1e-4)
