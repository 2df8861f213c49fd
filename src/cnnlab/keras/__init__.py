"""``cnnlab.keras``: Keras's API on cnnlab, so that the course's Keras code runs with only its imports changed.

    from tensorflow.keras.models import Sequential     ->  from cnnlab.keras.models import Sequential
    from tensorflow.keras.layers import Conv2D, Dense  ->  from cnnlab.keras.layers import Conv2D, Dense

The module tree mirrors Keras's: ``models``, ``layers``, ``datasets``, ``utils``, ``backend``, ``optimizers``,
``losses``, ``metrics``, ``callbacks``, ``saving``. Models are cnnlab models (``cnnlab.nn``) trained by cnnlab's
own loop (``cnnlab.training.loop.fit``, through ``cnnlab.engine``), with Keras's defaults, numbers and messages.

The sub-modules are imported when first used (PEP 562): ``import cnnlab.keras`` costs no torch, and
``cnnlab.keras.datasets`` and ``cnnlab.keras.utils.to_categorical`` never need it.
"""

from __future__ import annotations

import importlib

from cnnlab import __version__  # Keras has keras.__version__; here it is cnnlab's (the course prints it)

SUBMODULES = (
    "backend",
    "callbacks",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "saving",
    "utils",
)
# Keras's top-level shortcuts (keras.Sequential, keras.Input) -> the sub-module that defines them
_SHORTCUTS = {"Sequential": "models", "load_model": "models", "Input": "layers"}

__all__ = ["__version__", *SUBMODULES, *_SHORTCUTS]


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'cnnlab.keras' has no attribute {name!r}")
