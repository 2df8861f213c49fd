"""``cnnlab.keras.saving``: model files. ``.keras`` and ``.h5`` are Keras's own formats, read as data and never
run (``cnnlab.nn.keras_files``; cnnlab writes ``.keras``); any other path is a cnnlab model folder
(``model.json`` + ``model.safetensors``, see ``cnnlab.nn.modelio``). Weights alone are one safetensors file.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.nn import modelio

KERAS_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_module(filepath):
    """The cnnlab model in a model folder (or its model.json), or in a Keras .keras / .h5 file read as data."""
    return modelio.load(Path(filepath))


def _refuse_existing(path: Path, who: str, overwrite: bool) -> None:
    if not overwrite and path.exists():
        raise FileExistsError(f"{who}: {path} exists. Received: overwrite=False")


def save_model(model, filepath, overwrite: bool = True) -> None:
    """``model.save(path)``: a Keras 3 ``.keras`` file (Keras loads it), or a cnnlab model folder for other paths."""
    path = Path(filepath)
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ValueError(
            f"save: cnnlab writes Keras 3's .keras files, and reads legacy .h5 ones only. Received: filepath={path}"
        )
    _refuse_existing(path, "save", overwrite)
    if path.suffix.lower() == ".keras":
        from cnnlab.nn.keras_files import save_keras

        save_keras(model.module, path)
    else:
        modelio.save(model.module, path)


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """``model.save_weights(path)``: the model's tensors by their cnnlab names, in one safetensors file."""
    from safetensors.torch import save as tensors_to_bytes

    from cnnlab.files import write_atomic

    if str(filepath).lower().endswith(KERAS_FILE_SUFFIXES):
        raise ValueError(f"save_weights: weights go in one safetensors file here. Received: filepath={filepath}")
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
