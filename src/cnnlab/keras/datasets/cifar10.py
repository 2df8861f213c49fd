"""``cnnlab.keras.datasets.cifar10``: 32×32 colour objects, as Keras's ``cifar10.load_data()`` returns them."""

from __future__ import annotations

from cnnlab.keras.datasets import load_keras_data


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 (50000, 32, 32, 3) and (50000, 1), then 10,000 of each."""
    return load_keras_data("cifar10", path, gray=False, label_column=True)
