"""Data: datasets as uint8 arrays (``registry``: by name; ``idx``, ``cifar``, ``folders``: the readers), the one
picture reader (``images``), a person's picture made into a model's input (``digits``), and batch
augmentation (``augment``). Nothing here imports anything above ``cnnlab.data``.

``from cnnlab.data import load_dataset, list_datasets, to_categorical, Dataset`` works as before: the names are
looked up in their modules on first use (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_dataset": "cnnlab.data.registry",
    "list_datasets": "cnnlab.data.registry",
    "to_categorical": "cnnlab.data.dataset",
    "Dataset": "cnnlab.data.dataset",
    "DatasetInfo": "cnnlab.data.dataset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnlab.data' has no attribute {name!r}")
