"""``cnnlab.keras.datasets.fashion_mnist``: Zalando's clothes, as Keras's ``fashion_mnist.load_data()`` returns them.

Classes 0..9: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
"""

from __future__ import annotations

from cnnlab.keras.datasets import load_keras_data


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``: uint8 (60000, 28, 28) and (60000,), then 10,000 of each."""
    return load_keras_data("fashion-mnist", path, gray=True, label_column=False)
