"""Keras model files: ``.keras`` archives and legacy ``.h5`` files in, ``.keras`` archives out.

Opening a file never runs anything in it. The configuration is JSON read as data
(``cnnlab.nn.keras_config`` refuses whatever names or carries code); weights are arrays read with h5py,
each checked to be a plain float dataset of the shape the configuration implies, stored in the file
itself (no links to other files). A ``.keras`` archive is a zip: its member names, sizes and
compression ratios are checked before a byte of it is decompressed.

Written archives have Keras 3's layout: ``config.json``, ``metadata.json`` and ``model.weights.h5``
holding ``layers/<class in snake case>[_<n>]/vars/<i>`` (e.g. ``layers/conv2d_1/vars/0``, the second
Conv2D's kernel) and the model's own (empty) ``vars``. Keras 3 loads them with ``keras.saving.load_model``.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from cnnlab import __version__
from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic
from cnnlab.nn.keras_config import (
    KERAS_CLASSES,
    KerasConfigError,
    KerasLayer,
    keras_config,
    keras_shapes,
    keras_weights,
    set_keras_weights,
    spec_from_config,
)
from cnnlab.nn.sequential import Sequential, keras_name
from cnnlab.nn.specs import model_from_spec

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
MAX_JSON_BYTES = 16 * 2**20  # config.json and metadata.json: a Sequential CNN's config is a few tens of KB
MAX_WEIGHTS_BYTES = 2 * 2**30  # model.weights.h5: 500 million float32 weights
MAX_TOTAL_BYTES = 2 * 2**30  # all members together, uncompressed
MAX_RATIO = 100  # uncompressed / compressed; float weights hardly compress (Keras does not even try)
RATIO_FROM_BYTES = 2**20  # smaller members cannot be bombs whatever their ratio
MAX_PARAMETERS = 2**28  # weights a config may declare before anything is allocated (1 GiB of float32)
ZIP_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
KERAS_LAYOUT_VERSION = "3.15.1"  # the Keras whose layout save_keras writes, and whose load_model tests it


def _h5py():
    try:
        import h5py
    except ImportError:
        raise CnnlabError("Keras model files need h5py; install it: pip install h5py") from None
    return h5py


# --- the archive ----------------------------------------------------------------------------------


def _checked_members(path: Path, members: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """Refuse unsafe names, bombs and anything besides Keras's three files, before decompressing."""
    found: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in members:
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ":" in name or "\0" in name or ".." in parts:
            raise CnnlabError(
                f"{path}: member {name!r} points outside the archive (path traversal); Keras never "
                "writes such names, so the file was made to attack: do not use it"
            )
        if name in found:
            raise CnnlabError(f"{path}: member {name!r} appears twice; the archive is not one Keras wrote")
        limit = MAX_WEIGHTS_BYTES if name == WEIGHTS else MAX_JSON_BYTES
        if info.file_size > limit:
            raise CnnlabError(
                f"{path}: member {name!r} would unpack to {info.file_size:,} bytes, more than the "
                f"{limit:,} cnnlab reads"
            )
        if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise CnnlabError(
                f"{path}: member {name!r} is compressed {info.file_size // max(info.compress_size, 1):,}"
                f" to 1 (a zip bomb); cnnlab refuses ratios over {MAX_RATIO}"
            )
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise CnnlabError(f"{path}: the archive would unpack to more than {MAX_TOTAL_BYTES:,} bytes (a zip bomb)")
        if name.endswith((".pkl", ".pickle")):
            raise CnnlabError(f"{path}: member {name!r} holds pickled data; cnnlab never unpickles model files")
        if name not in (CONFIG, METADATA, WEIGHTS):
            raise CnnlabError(
                f"{path}: unexpected member {name!r}; a Keras archive holds only {CONFIG}, {METADATA} and {WEIGHTS}"
            )
        if info.flag_bits & 0x1:
            raise CnnlabError(f"{path}: member {name!r} is encrypted; save the model again without a password")
        found[name] = info
    for needed in (CONFIG, WEIGHTS):
        if needed not in found:
            raise CnnlabError(f"{path}: no {needed} in the archive; this is not a Keras 3 .keras file")
    return found


def _read_archive(path: Path) -> tuple[bytes, bytes]:
    """config.json and model.weights.h5 of a checked archive, each read up to its limit only."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(path, archive.infolist())
            contents = []
            for name, limit in ((CONFIG, MAX_JSON_BYTES), (WEIGHTS, MAX_WEIGHTS_BYTES)):
                with archive.open(members[name]) as stream:
                    data = stream.read(limit + 1)  # a header that lies about the size still stops here
                if len(data) != members[name].file_size:
                    raise zipfile.BadZipFile(f"{name} is not the size its header says")
                contents.append(data)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as problem:  # OSError: offsets past the file
        raise CnnlabError(
            f"{path}: not a complete .keras archive ({problem}); it may be truncated: copy or save it again"
        ) from None
    except NotImplementedError as problem:
        raise CnnlabError(f"{path}: {problem}; save the model again with Keras") from None
    return contents[0], contents[1]


# --- configuration and weights -------------------------------------------------------------------


def _build(path: Path, text: bytes | str, where: str) -> tuple[Sequential, list[KerasLayer]]:
    """Parse a config as data, refuse what carries code, and build the model once its size is known."""
    try:
        config = json.loads(text)
    except ValueError as problem:  # json.JSONDecodeError, UnicodeDecodeError
        raise CnnlabError(f"{path}: {where} is not valid JSON ({problem}); the file is damaged") from None
    except RecursionError:
        raise CnnlabError(f"{path}: {where} is nested too deeply to be a Keras model config") from None
    try:
        spec, keras_layers = spec_from_config(config)
        with torch.device("meta"):  # shapes and parameter counts without allocating anything
            sized = model_from_spec(spec)
        count = sum(parameter.numel() for parameter in sized.parameters())
        if count > MAX_PARAMETERS:
            raise KerasConfigError(
                f"the model declares {count:,} weights, more than the {MAX_PARAMETERS:,} cnnlab loads"
            )
        return model_from_spec(spec), keras_layers
    except CnnlabError as problem:  # KerasConfigError, SpecError
        raise CnnlabError(f"{path}: {problem}") from None
    except RecursionError:
        raise CnnlabError(f"{path}: {where} is nested too deeply to be a Keras model config") from None


def _dataset(h5py, group, name: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A float array stored in this file under ``name``, of exactly ``shape``, as float32."""
    node = group
    for part in name.split("/"):
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            problem = "missing" if link is None else "a link to elsewhere"
            raise KerasConfigError(f"{where}: weight {name!r} is {problem}; the weights file does not match the model")
        node = node[part]
    if not isinstance(node, h5py.Dataset) or node.external or node.is_virtual:
        raise KerasConfigError(f"{where}: weight {name!r} is not an array stored in the file")
    if node.dtype.kind != "f":
        raise KerasConfigError(
            f"{where}: weight {name!r} has dtype {node.dtype}, not floats (pickled or opaque bytes are never read)"
        )
    if node.shape != shape:
        raise KerasConfigError(f"{where}: weight {name!r} has shape {node.shape}, the config needs {shape}")
    return np.asarray(node[()], dtype=np.float32)


def weight_groups(class_names: list[str]) -> list[str]:
    """Each layer's group in model.weights.h5: numbered per class in model order (the InputLayer not counted)."""
    seen: dict[str, int] = {}
    groups = []
    for class_name in class_names:
        base = keras_name(class_name)
        groups.append(f"layers/{base}" if base not in seen else f"layers/{base}_{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return groups


def _load_weights(h5py, model: Sequential, keras_layers: list[KerasLayer], find) -> None:
    """Fill every layer; ``find(layer index, keras layer) -> (h5 group, names of its arrays)``."""
    for index, (layer, keras_layer) in enumerate(zip(model.layers, keras_layers)):
        shapes = keras_shapes(layer, keras_layer)
        if not shapes:
            continue
        where = f"layer '{layer.name}' ({keras_layer.class_name})"
        group, names = find(index, keras_layer)
        if group is None or len(names) != len(shapes):
            held = "no" if group is None else len(names)
            raise KerasConfigError(
                f"{where}: the weights file holds {held} arrays for it, the config needs "
                f"{len(shapes)} ({', '.join(keras_layer.variables)})"
            )
        set_keras_weights(
            layer, keras_layer, [_dataset(h5py, group, name, shape, where) for name, shape in zip(names, shapes)]
        )


def _hard_group(h5py, parent, path: str):
    """The group at ``path`` if it is stored in this file, else None."""
    node = parent
    for part in path.split("/"):
        if not isinstance(node.get(part, getlink=True), h5py.HardLink) or not isinstance(node[part], h5py.Group):
            return None
        node = node[part]
    return node


def _archive_weights(h5py, h5, model: Sequential, keras_layers: list[KerasLayer]) -> None:
    groups = weight_groups([keras_layer.class_name for keras_layer in keras_layers])

    def find(index, keras_layer):
        group = _hard_group(h5py, h5, f"{groups[index]}/vars")
        if group is None:  # tf.keras 2.13 wrote the same groups under another name
            group = _hard_group(h5py, h5, f"{groups[index].replace('layers/', '_layer_checkpoint_dependencies/')}/vars")
        if group is None:
            return None, []
        return group, sorted(group.keys(), key=lambda key: int(key) if key.isdigit() else -1)

    _load_weights(h5py, model, keras_layers, find)


def _legacy_weights(h5py, h5, model: Sequential, keras_layers: list[KerasLayer]) -> None:
    root = _hard_group(h5py, h5, "model_weights")

    def find(index, keras_layer):
        group = _hard_group(h5py, root, keras_layer.name) if root is not None and keras_layer.name else None
        names = group.attrs.get("weight_names", []) if group is not None else []
        return group, [name.decode() if isinstance(name, bytes) else str(name) for name in np.atleast_1d(names)]

    _load_weights(h5py, model, keras_layers, find)


def _legacy_config(path: Path, h5) -> bytes | str:
    config = h5.attrs.get("model_config")
    if config is None:
        if "layer_names" in h5.attrs or "layers" in h5:
            raise CnnlabError(
                f"{path}: an HDF5 file of weights only, without the model's architecture; save the "
                "whole model with model.save('model.keras')"
            )
        raise CnnlabError(
            f"{path}: an HDF5 file but not a Keras model (no model_config); give a file saved with "
            "model.save('model.h5') or model.save('model.keras')"
        )
    if not isinstance(config, (bytes, str)) or len(config) > MAX_JSON_BYTES:
        raise CnnlabError(f"{path}: its model_config is not a JSON text of at most {MAX_JSON_BYTES:,} bytes")
    return config


@contextlib.contextmanager
def _hdf5(path: Path, source, what: str):
    """``(h5py, file)`` opened read-only; h5py's errors (not HDF5, truncated) and refusals become one line."""
    h5py = _h5py()
    try:
        with h5py.File(source, "r") as h5:
            yield h5py, h5
    except KerasConfigError as problem:
        raise CnnlabError(f"{path}: {problem}") from None
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as problem:  # h5py: a damaged file
        raise CnnlabError(
            f"{path}: {what} is not a readable HDF5 file ({problem}); it may be truncated or damaged: save it again"
        ) from None


# --- the API ----------------------------------------------------------------------------------------


def load_keras(path: str | Path) -> Sequential:
    """A Keras Sequential model from a ``.keras`` archive or a legacy ``.h5`` file; nothing in it is run."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as problem:
        raise CnnlabError(f"{path}: cannot read the Keras model file ({problem.strerror})") from None
    if head.startswith(ZIP_MAGIC):
        config, weights = _read_archive(path)
        model, keras_layers = _build(path, config, CONFIG)  # what carries code is refused here, before any weight
        with _hdf5(path, io.BytesIO(weights), WEIGHTS) as (h5py, h5):
            _archive_weights(h5py, h5, model, keras_layers)
    elif head == HDF5_MAGIC:
        with _hdf5(path, path, "the file") as (h5py, h5):
            model, keras_layers = _build(path, _legacy_config(path, h5), "its model_config")
            _legacy_weights(h5py, h5, model, keras_layers)
    elif head[:1] == b"\x80":
        raise CnnlabError(
            f"{path}: this is a pickle; cnnlab never unpickles model files. Save the model with "
            "model.save('model.keras')"
        )
    else:
        raise CnnlabError(
            f"{path}: neither a .keras archive nor an HDF5 model file; save the model with model.save('model.keras')"
        )
    model.class_names = [str(k) for k in range(model.output_shape[0])] if len(model.output_shape) == 1 else None
    return model.eval()


def keras_predict(model: Sequential, inputs) -> np.ndarray:
    """What Keras's ``model.predict(inputs)`` returns, for inputs in Keras's layout: (N, H, W, C) or (N, F).

    ``forward``'s logits with the last layer's softmax or sigmoid applied (``Sequential.finish``); a linear last
    layer's output as it is.
    """
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    shape = tuple(model.input_shape)
    if tuple(x.shape[1:]) == shape[:-1] and shape[-1] == 1 and len(shape) == 3:
        x = x.unsqueeze(-1)  # (N, H, W) pictures for an (H, W, 1) input, as Keras's Flatten took them
    if tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"keras_predict: inputs must have shape (N, {', '.join(map(str, shape))}). "
            f"Received: inputs.shape={tuple(x.shape)}"
        )
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x  # channels-last -> torch's (N, C, H, W)
    model.eval()
    with torch.inference_mode():
        outputs = model.finish(model(x).float())  # the softmax or sigmoid forward leaves out, applied
    return (outputs.permute(0, 2, 3, 1) if outputs.dim() == 4 else outputs).numpy()  # images back to channels-last


def save_keras(model: Sequential, path: str | Path) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` archive (through a temporary file and a rename); returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"save_keras: the file name must end in .keras, as Keras 3 requires. Received: path='{path}'")
    if not isinstance(model, Sequential) or model.input_shape is None or not len(model.layers):
        raise ValueError(f"save_keras: model must be a built cnnlab Sequential with layers. Received: model={model!r}")
    h5py = _h5py()
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name  # the model's own variables: none
        groups = weight_groups([KERAS_CLASSES[layer.type_name] for layer in model.layers])
        for layer, group in zip(model.layers, groups):
            variables = h5.create_group(group).create_group("vars")
            variables.attrs["name"] = layer.name
            for index, array in enumerate(keras_weights(layer)):
                variables.create_dataset(str(index), data=array)
    saved = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d@%H:%M:%S")
    metadata = {"keras_version": KERAS_LAYOUT_VERSION, "date_saved": saved, "saved_by": f"cnnlab {__version__}"}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:  # stored, not deflated, as Keras writes its archives
        members.writestr(METADATA, json.dumps(metadata))
        members.writestr(CONFIG, json.dumps(keras_config(model)))
        members.writestr(WEIGHTS, weights.getvalue())
    write_atomic(path, archive.getvalue())
    return path
