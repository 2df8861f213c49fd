"""``cnnlab.keras.datasets``: Keras's ``load_data()`` for ``mnist``, ``fashion_mnist`` and ``cifar10``, offline.

Each returns Keras's tuples ``(x_train, y_train), (x_test, y_test)`` with Keras's shapes and dtypes, read from
what cnnlab ships or finds (``cnnlab.data.registry.load_dataset``): uint8 images (N, 28, 28) for the gray sets
(no channel axis, as Keras) and (N, 32, 32, 3) for CIFAR-10; uint8 labels (N,), and (N, 1) for CIFAR-10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data.registry import load_dataset

KERAS_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")  # what Keras's mnist.npz holds


def load_keras_data(dataset: str, path=None, *, gray: bool, label_column: bool):
    """Keras's tuples for cnnlab's ``dataset``.

    ``path``: a folder of the dataset's own files (as ``load_dataset``'s ``data_dir``), or an .npz file holding
    Keras's four arrays; a name that is neither (such as Keras's default 'mnist.npz') reads cnnlab's copy.
    """
    found = Path(path).expanduser() if path is not None else None
    if found is not None and found.is_file() and found.suffix == ".npz":
        with np.load(found, allow_pickle=False) as arrays:  # plain arrays only: never unpickles
            x_train, y_train, x_test, y_test = (arrays[key] for key in KERAS_NPZ_KEYS)
        return (x_train, y_train), (x_test, y_test)
    data = load_dataset(dataset, found if found is not None and found.is_dir() else None)

    def keras_arrays(images: np.ndarray, labels: np.ndarray):
        images = images[..., 0] if gray else images  # (N, H, W, 1) -> (N, H, W)
        labels = labels.astype(np.uint8)
        return images, labels[:, None] if label_column else labels

    return keras_arrays(data.x_train, data.y_train), keras_arrays(data.x_test, data.y_test)
