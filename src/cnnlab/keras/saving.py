"""``cnnlab.keras.saving``: model files. A path without a Keras suffix is a cnnlab model folder
(``model.json`` + ``model.safetensors``, see ``cnnlab.nn.modelio``); weights alone are one safetensors file.

``.keras`` and ``.h5`` are Keras's own formats, which cnnlab does not read or write yet: reading goes through
``load_keras_file`` and writing stops at ``refuse_keras_file``, the two places where that reader and writer
(being written in another part of cnnlab) will plug in.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.nn import modelio

KERAS_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


def refuse_keras_file(path, who: str) -> None:
    """The .keras / .h5 formats are not written yet: say so before anything is trained or saved."""
    if str(path).lower().endswith(KERAS_FILE_SUFFIXES):
        raise NotImplementedError(
            f"{who}: {path}: writing Keras's .keras and .h5 files is coming to cnnlab (the Keras file "
            "reader and writer) and is not there yet; give a path without that suffix to save a cnnlab "
            "model folder (model.json + model.safetensors)"
        )


def load_keras_file(path: Path):
    """The hook for Keras's own files (.keras, .h5): the reader another part of cnnlab is writing goes here."""
    raise NotImplementedError(
        f"load_model: {path}: reading Keras's .keras and .h5 files is coming to cnnlab and is not there yet; "
        "load a cnnlab model folder (saved by model.save or 'cnnlab train') instead"
    )


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model saved by ``model.save`` or ``cnnlab train`` (a folder, or its model.json), not compiled."""
    from cnnlab.keras.models import Sequential

    path = Path(filepath)
    if path.suffix.lower() in KERAS_FILE_SUFFIXES:
        return load_keras_file(path)
    return Sequential.from_module(modelio.load(path))


def _refuse_existing(path: Path, who: str, overwrite: bool) -> None:
    if not overwrite and path.exists():
        raise FileExistsError(f"{who}: {path} exists. Received: overwrite=False")


def save_model(model, filepath, overwrite: bool = True) -> None:
    """``model.save(path)``: the cnnlab model folder of a cnnlab.keras model."""
    refuse_keras_file(filepath, "save")
    _refuse_existing(Path(filepath), "save", overwrite)
    modelio.save(model.module, filepath)


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """``model.save_weights(path)``: the model's tensors by their cnnlab names, in one safetensors file."""
    from safetensors.torch import save as tensors_to_bytes

    from cnnlab.files import write_atomic

    refuse_keras_file(filepath, "save_weights")
    _refuse_existing(Path(filepath), "save_weights", overwrite)
    weights = {key: value.detach().cpu().contiguous() for key, value in model.module.state_dict().items()}
    write_atomic(Path(filepath), tensors_to_bytes(weights))


def load_weights(model, filepath) -> None:
    """``model.load_weights(path)``: a file of ``save_weights`` for a model of the same layers."""
    from safetensors.torch import load_file

    state = load_file(str(filepath))
    differing = set(model.module.state_dict()) ^ set(state)
    if differing:
        raise ValueError(
            f"load_weights: {filepath} does not hold this model's weights (differing: {sorted(differing)})"
        )
    model.module.load_state_dict(state)
