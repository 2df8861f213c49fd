"""cnnlab: convolutional neural networks on images, with Keras's semantics, on PyTorch.

The public API is imported lazily (PEP 562) so that ``import cnnlab`` and
``cnnlab --help`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Sequential": "cnnlab.models",
    "Input": "cnnlab.layers",
    "Conv2D": "cnnlab.layers",
    "MaxPool2D": "cnnlab.layers",
    "MaxPooling2D": "cnnlab.layers",
    "AvgPool2D": "cnnlab.layers",
    "AveragePooling2D": "cnnlab.layers",
    "Activation": "cnnlab.layers",
    "Flatten": "cnnlab.layers",
    "Dense": "cnnlab.layers",
    "Dropout": "cnnlab.layers",
    "BatchNormalization": "cnnlab.layers",
    "GlobalAveragePooling2D": "cnnlab.layers",
    "create_model": "cnnlab.models",
    "list_models": "cnnlab.models",
    "model_from_spec": "cnnlab.models",
    "parse_model": "cnnlab.models",
    "summarize": "cnnlab.summary",
    "print_summary": "cnnlab.summary",
    "load_dataset": "cnnlab.data",
    "list_datasets": "cnnlab.data",
    "to_categorical": "cnnlab.data",
    "fit": "cnnlab.train",
    "train": "cnnlab.train",
    "TrainConfig": "cnnlab.train",
    "evaluate": "cnnlab.evaluate",
    "load": "cnnlab.modelio",
    "save": "cnnlab.modelio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
