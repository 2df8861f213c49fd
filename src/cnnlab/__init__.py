"""cnnlab: convolutional neural networks on images, with Keras's semantics, on PyTorch.

The public API is imported lazily (PEP 562) so that ``import cnnlab`` and
``cnnlab --help`` do not pay for importing torch. Before torch loads, ``cnnlab.cores``
chooses how its threads wait (spinning when the cores are free, sleeping when they are busy).
"""

from __future__ import annotations

import importlib

from cnnlab import cores

cores.choose_wait_policy()

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Sequential": "cnnlab.nn.sequential",
    "Input": "cnnlab.nn.layers",
    "Conv2D": "cnnlab.nn.layers",
    "MaxPool2D": "cnnlab.nn.layers",
    "MaxPooling2D": "cnnlab.nn.layers",
    "AvgPool2D": "cnnlab.nn.layers",
    "AveragePooling2D": "cnnlab.nn.layers",
    "Activation": "cnnlab.nn.layers",
    "Flatten": "cnnlab.nn.layers",
    "Dense": "cnnlab.nn.layers",
    "Dropout": "cnnlab.nn.layers",
    "BatchNormalization": "cnnlab.nn.layers",
    "GlobalAveragePooling2D": "cnnlab.nn.layers",
    "create_model": "cnnlab.nn.registry",
    "list_models": "cnnlab.nn.registry",
    "model_from_spec": "cnnlab.nn.specs",
    "parse_model": "cnnlab.nn.registry",
    "summarize": "cnnlab.nn.summary",
    "print_summary": "cnnlab.nn.summary",
    "load_dataset": "cnnlab.data.registry",
    "list_datasets": "cnnlab.data.registry",
    "to_categorical": "cnnlab.data.dataset",
    "fit": "cnnlab.training.loop",
    "train": "cnnlab.training.train",
    "TrainConfig": "cnnlab.training.config",
    "FitConfig": "cnnlab.training.config",
    "Callback": "cnnlab.training.callbacks",
    "Run": "cnnlab.training.run",
    "evaluate": "cnnlab.training.evaluate",
    "load": "cnnlab.nn.modelio",
    "save": "cnnlab.nn.modelio",
}

__all__ = sorted([*_EXPORTS, "config"])


def __getattr__(name: str):
    if name == "config":  # the script's settings (--config FILE, --set KEY=VALUE), see cnnlab.training.settings
        return importlib.import_module("cnnlab.training.settings").script_config()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
