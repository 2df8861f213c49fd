"""Model files: ``model.json`` (architecture, class names) + ``model.safetensors`` (weights).

Nothing here unpickles: safetensors holds raw tensors behind a JSON header, and a file that is a
pickle or a ``torch.save`` archive is refused before anything in it is read. Every file is written
to a temporary name in the same folder and renamed, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic, write_json

FORMAT = "cnnlab.model"
VERSION = 1
ARCHITECTURE_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")  # Keras 3 archives and legacy HDF5 model files


def save(model, folder: str | Path, class_names=None, dataset: str | None = None) -> Path:
    """Save a model's architecture and weights into ``folder`` (created if missing)."""
    from safetensors.torch import save as tensors_to_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.to_spec(),
        "class_names": list(names) if names is not None else None,
        "dataset": dataset or getattr(model, "dataset", None),
    }
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    write_atomic(folder / WEIGHTS_FILE, tensors_to_bytes(weights, metadata={"format": FORMAT}))
    write_json(folder / ARCHITECTURE_FILE, header)
    return folder


def _check_safetensors_framing(path: Path) -> None:
    """A safetensors file starts with an 8-byte header length and a JSON header; refuse anything else unread."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(9)
    header_length = int.from_bytes(start[:8], "little") if len(start) == 9 else -1
    if 0 < header_length <= size - 8 and start[8:9] == b"{":
        return
    if start[:1] == b"\x80" or start[:2] == b"PK":
        raise CnnlabError(
            f"{path}: this is a pickle or torch.save file; cnnlab never unpickles model files. "
            "Save weights with safetensors (cnnlab.save) instead"
        )
    raise CnnlabError(f"{path}: not a safetensors file; re-save the model with cnnlab.save or cnnlab train")


def load(path: str | Path):
    """Load a model saved by ``save`` or by ``cnnlab train`` (a folder or its ``model.json``), or a Keras model file
    (``.keras``, ``.h5``: read as data, see ``cnnlab.nn.keras_files``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from cnnlab.nn.specs import model_from_spec

    path = Path(path)
    if path.suffix in KERAS_SUFFIXES and not path.is_dir():
        from cnnlab.nn.keras_files import load_keras

        return load_keras(path)
    folder = path.parent if path.name == ARCHITECTURE_FILE else path
    architecture, weights = folder / ARCHITECTURE_FILE, folder / WEIGHTS_FILE
    for needed in (architecture, weights):
        if not needed.is_file():
            raise CnnlabError(f"{needed}: not found; give a run folder made by 'cnnlab train' (or cnnlab.save)")
    try:
        header = json.loads(architecture.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise CnnlabError(f"{architecture}: not a cnnlab model file ({problem})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CnnlabError(f'{architecture}: not a cnnlab model file (no "format": "{FORMAT}")')
    if header.get("version") != VERSION:
        raise CnnlabError(
            f"{architecture}: model file version {header.get('version')} is not supported "
            f"(this cnnlab reads version {VERSION})"
        )
    model = model_from_spec(header["spec"])
    _check_safetensors_framing(weights)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as problem:
        raise CnnlabError(f"{weights}: not a readable safetensors file ({problem})") from None
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CnnlabError(f"{weights}: weights do not match {architecture} (missing {missing}, unexpected {extra})")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CnnlabError(
                f"{weights}: {key} has shape {tuple(tensor.shape)}, the architecture needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    model.class_names = header.get("class_names") or [str(i) for i in range(model.output_shape[0])]
    model.dataset = header.get("dataset")
    model.eval()
    return model
