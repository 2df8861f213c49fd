"""``cnnlab.keras.utils``: ``to_categorical`` and ``set_random_seed``, as Keras's."""

from __future__ import annotations

import random

import numpy as np

from cnnlab.data.dataset import to_categorical as _one_hot_float32


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """One-hot rows for integer labels: shape ``x.shape + (num_classes,)``, float64 as Keras returns for arrays."""
    return _one_hot_float32(x, num_classes).astype(np.float64)


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators: the same weights, shuffles and dropout on every run."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"set_random_seed: seed must be an integer. Received: seed={seed!r}")
    import torch  # only now: the other helpers here need none

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
