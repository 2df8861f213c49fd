"""``cnnlab.keras.datasets.mnist``: the handwritten digits, as Keras's ``mnist.load_data()`` returns them."""

from __future__ import annotations

from cnnlab.keras.datasets import load_keras_data


def load_data(path: str = "mnist.npz"):
    """``(x_train, y_train), (x_test, y_test)``: uint8 (60000, 28, 28) and (60000,), then 10,000 of each."""
    return load_keras_data("mnist", path, gray=True, label_column=False)
