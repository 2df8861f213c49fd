"""Keras model configurations <-> cnnlab specs, and Keras's weight layouts, read as data only.

A Keras config is JSON: nothing in it is evaluated, unpickled or imported. Whatever could carry Python
code is refused before a layer is built: Lambda layers, custom classes (a ``module`` outside Keras, a
``registered_name`` such as ``Custom>MyLayer``), serialized functions, and strings that hold pickled or
marshalled bytes. Only the layers cnnlab has are read, and only with the settings cnnlab computes the
same way; any other setting is refused by name rather than ignored.

Keras keeps tensors channels-last: a Conv2D kernel is (kh, kw, in, out) where torch's is (out, in, kh, kw),
and a Dense kernel is (in, out) where torch's is (out, in). Transposing moves every weight bit unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.errors import CnnlabError
from cnnlab.nn.layers import ACTIVATIONS

# cnnlab layer type -> Keras class; Keras names the reverse way too (MaxPool2D is its alias of MaxPooling2D)
KERAS_CLASSES = {
    "Conv2D": "Conv2D",
    "MaxPool2D": "MaxPooling2D",
    "AvgPool2D": "AveragePooling2D",
    "Activation": "Activation",
    "Flatten": "Flatten",
    "Dense": "Dense",
    "Dropout": "Dropout",
    "BatchNormalization": "BatchNormalization",
    "GlobalAveragePooling2D": "GlobalAveragePooling2D",
    "Reshape": "Reshape",
}
CNNLAB_TYPES = {keras: cnnlab for cnnlab, keras in KERAS_CLASSES.items()} | {
    "MaxPool2D": "MaxPool2D",
    "AvgPool2D": "AvgPool2D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
}
INPUT_CLASSES = ("InputLayer", "Input")
# layer classes whose configuration is Python code, and why that is refused
CODE_LAYERS = {
    "Lambda": "a Lambda layer's function is Python code",
    "TFOpLambda": "a TFOpLambda layer calls a TensorFlow function by name",
    "SlicingOpLambda": "a SlicingOpLambda layer calls a TensorFlow function by name",
}
FLOAT_POLICIES = ("float32", "float16", "bfloat16", "float64", "mixed_float16", "mixed_bfloat16")
PROTOCOL0_IMPORT = re.compile(rb"[ci][\w.]+\n[\w.]+\n")  # a text pickle importing: GLOBAL or INST module\nname\n
MARSHAL_CODE = (b"\xe3", b"c")  # marshal's code-object type byte, with and without its reference flag
SAFE = "cnnlab never runs code from a model file; use Keras's built-in layers and functions only"


class KerasConfigError(CnnlabError):
    """A Keras config that cnnlab will not or cannot read; the caller prefixes the file's name."""


@dataclass(frozen=True)
class KerasLayer:
    """What the weights file needs of one layer: its Keras class and variables, in the order Keras stores them."""

    name: str
    class_name: str
    variables: tuple[str, ...]  # e.g. ("kernel", "bias"), ("gamma", "beta", "moving_mean", "moving_variance")
    axis: int = -1  # BatchNormalization's axis as Keras counts it, batch axis included


# --- refusing code -----------------------------------------------------------------------------


def _is_pickle(data: bytes) -> bool:
    framed = data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")  # PROTO opcode, 2-5
    return framed or PROTOCOL0_IMPORT.search(data) is not None


def _base64(text: str) -> bytes | None:
    """The bytes a long base64 string stands for (Keras 2 stored a Lambda's marshalled code so), else None."""
    if len(text) < 24:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _holds_code_bytes(text: str) -> bool:
    """Pickled bytes, raw (one character a byte) or in base64, or a marshalled code object in base64."""
    decoded = _base64(text)
    return _is_pickle(text.encode("latin-1", "replace")) or (
        decoded is not None and (_is_pickle(decoded) or decoded[:1] in MARSHAL_CODE)
    )


def check_no_code(value, where: str) -> None:
    """Walk a config tree and refuse anything that names or carries Python code."""
    if isinstance(value, str):
        if _holds_code_bytes(value):
            raise KerasConfigError(f"{where} holds pickled or marshalled bytes; {SAFE}")
    elif isinstance(value, list):
        for item in value:
            check_no_code(item, where)
    elif isinstance(value, dict):
        class_name, module = value.get("class_name"), value.get("module")
        registered = value.get("registered_name")
        if class_name == "__lambda__" or "function_type" in value:
            raise KerasConfigError(f"{where} holds a serialized Python function; {SAFE}")
        if module is not None and not (module == "keras" or str(module).startswith("keras.")):
            raise KerasConfigError(f"{where} uses the custom object {class_name!r} from module {module!r}; {SAFE}")
        if registered is not None and (not isinstance(registered, str) or ">" in registered):
            raise KerasConfigError(f"{where} uses the custom object {registered!r}; {SAFE}")
        for item in value.values():
            check_no_code(item, where)


# --- Keras config -> cnnlab spec ----------------------------------------------------------------


def _setting(config: dict, key: str, allowed, where: str):
    """A setting cnnlab computes only one way: refuse any other value by name."""
    value = config.get(key)
    if value is not None and value not in allowed:
        raise KerasConfigError(f"{where}: {key}={value!r} is not supported by cnnlab (only {allowed[0]!r})")


def _activation(value, where: str) -> str:
    """'relu', None, or a Keras 3 function reference {"module": "keras.activations", "config": "relu"}."""
    name = value.get("config") if isinstance(value, dict) else value
    name = "linear" if name is None else name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise KerasConfigError(f"{where}: activation {name!r} is not in cnnlab; it has {', '.join(ACTIVATIONS)}")
    return name


def _dtype(config: dict, where: str) -> None:
    dtype = config.get("dtype")
    policy = dtype.get("config") if isinstance(dtype, dict) else dtype
    policy = policy.get("name") if isinstance(policy, dict) else policy
    if policy is not None and policy not in FLOAT_POLICIES:
        raise KerasConfigError(
            f"{where}: dtype policy {policy!r} (quantized weights) is not supported; cnnlab reads float weights"
        )
    if config.get("quantization_config") or config.get("lora_rank"):
        raise KerasConfigError(f"{where}: quantized or LoRA weights are not supported; save the float model")


def _layer_spec(class_name: str, config: dict, where: str) -> tuple[dict, tuple[str, ...], int]:
    """One Keras layer -> (cnnlab layer config, Keras variables in file order, BatchNormalization axis)."""
    kind = CNNLAB_TYPES[class_name]
    spec: dict = {"type": kind, "name": config.get("name")}
    if kind in ("Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "GlobalAveragePooling2D"):
        _setting(config, "data_format", ("channels_last",), where)
    if kind == "Conv2D":
        _setting(config, "dilation_rate", ([1, 1], 1), where)
        _setting(config, "groups", (1,), where)
        spec.update(
            filters=config.get("filters"),
            kernel_size=config.get("kernel_size"),
            strides=config.get("strides", [1, 1]),
            padding=config.get("padding", "valid"),
            activation=_activation(config.get("activation"), where),
            use_bias=config.get("use_bias", True),
        )
        return spec, ("kernel", "bias") if spec["use_bias"] else ("kernel",), -1
    if kind == "Dense":
        spec.update(
            units=config.get("units"),
            activation=_activation(config.get("activation"), where),
            use_bias=config.get("use_bias", True),
        )
        return spec, ("kernel", "bias") if spec["use_bias"] else ("kernel",), -1
    if kind in ("MaxPool2D", "AvgPool2D"):
        spec.update(
            pool_size=config.get("pool_size", [2, 2]),
            strides=config.get("strides"),
            padding=config.get("padding", "valid"),
        )
    elif kind == "Activation":
        spec["activation"] = _activation(config.get("activation"), where)
    elif kind == "Dropout":
        spec["rate"] = config.get("rate")
    elif kind == "GlobalAveragePooling2D":
        _setting(config, "keepdims", (False,), where)
    elif kind == "Reshape":
        spec["target_shape"] = config.get("target_shape")
    elif kind == "BatchNormalization":
        _setting(config, "renorm", (False,), where)
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise KerasConfigError(f"{where}: axis={config.get('axis')!r}; cnnlab normalises the channel axis only")
        spec.update(momentum=config.get("momentum", 0.99), epsilon=config.get("epsilon", 1e-3))
        variables = (("gamma",) if config.get("scale", True) else ()) + (
            ("beta",) if config.get("center", True) else ()
        )
        return spec, (*variables, "moving_mean", "moving_variance"), axis
    return spec, (), -1


def _shape(batch_shape, where: str) -> list[int]:
    """[None, 28, 28, 1] -> [28, 28, 1]; every size must be known."""
    if not isinstance(batch_shape, list) or len(batch_shape) < 2:
        raise KerasConfigError(f"{where}: input shape {batch_shape!r} is not a list of sizes")
    shape = batch_shape[1:]
    if not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape):
        raise KerasConfigError(
            f"{where}: input shape {tuple(shape)} has unknown sizes; cnnlab needs fixed sizes: "
            "build the model with keras.Input(shape=(28, 28, 1))"
        )
    return shape


def _input_shape(model_config: dict, layers: list) -> list[int] | None:
    """The input shape from an InputLayer, a first layer's batch_input_shape (Keras 2), or the built model."""
    first = layers[0].get("config", {}) if layers else {}
    if layers and layers[0]["class_name"] in INPUT_CLASSES:
        found = first.get("batch_shape") or first.get("batch_input_shape")
        if found is None and isinstance(first.get("shape"), list):
            found = [None, *first["shape"]]
    else:
        found = first.get("batch_input_shape") or model_config.get("build_input_shape")
    return None if found is None else _shape(found, "the model")


def spec_from_config(config) -> tuple[dict, list[KerasLayer]]:
    """A Keras Sequential config (as json.loads gives it) -> a cnnlab spec and the weights file's view of it."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise KerasConfigError(f"the model is a {kind}, not a Sequential model; cnnlab reads Sequential models only")
    model_config = config.get("config")
    if isinstance(model_config, list):  # Keras 2.0-2.1 kept the layers list as the whole config
        model_config = {"layers": model_config}
    model_config = model_config if isinstance(model_config, dict) else {}
    layers = model_config.get("layers")
    if not isinstance(layers, list) or not all(
        isinstance(layer, dict)
        and isinstance(layer.get("class_name"), str)
        and isinstance(layer.get("config", {}), dict)
        for layer in layers
    ):
        raise KerasConfigError("the model config has no list of layers, each an object with a class_name and a config")
    check_no_code(
        [
            {key: value for key, value in config.items() if key != "config"},
            {key: value for key, value in model_config.items() if key != "layers"},
        ],
        "the model's own settings",
    )
    shape = _input_shape(model_config, layers)
    spec: dict = {"name": str(model_config.get("name", "sequential")), "layers": []}
    keras_layers: list[KerasLayer] = []
    for index, layer in enumerate(layers):
        class_name, layer_config = layer.get("class_name"), layer.get("config") or {}
        where = f"layer {index} '{layer_config.get('name', '?')}' ({class_name})"
        if class_name in CODE_LAYERS:
            raise KerasConfigError(f"{where}: {CODE_LAYERS[class_name]}; {SAFE}")
        check_no_code(layer, where)
        if class_name in INPUT_CLASSES:
            if index:
                raise KerasConfigError(f"{where}: an InputLayer must come first")
            continue
        if class_name not in CNNLAB_TYPES:
            module = layer.get("module")
            known = ", ".join(sorted({*KERAS_CLASSES.values(), "InputLayer"}))
            source = "" if module in (None, "keras.layers") else f" from module {module!r}"
            raise KerasConfigError(
                f"{where}: cnnlab does not know the layer class {class_name!r}{source}; it reads {known}"
            )
        _dtype(layer_config, where)
        layer_spec, variables, axis = _layer_spec(class_name, layer_config, where)
        spec["layers"].append(layer_spec)
        keras_layers.append(KerasLayer(layer_spec["name"], KERAS_CLASSES[layer_spec["type"]], variables, axis))
    if shape is None:
        raise KerasConfigError(
            "the model has no input shape (it was never built); build it with keras.Input(shape=...) before saving"
        )
    if len(shape) == 2 and spec["layers"] and spec["layers"][0]["type"] == "Flatten":
        shape = [*shape, 1]  # (H, W) pictures flattened at once: cnnlab's (H, W, 1) flattens to the same order
    spec["input_shape"] = shape
    return spec, keras_layers


# --- weights: Keras layout <-> torch layout ------------------------------------------------------


def _targets(layer) -> dict[str, torch.Tensor]:
    """A built cnnlab layer's tensors under the names Keras gives them."""
    if layer.type_name == "Conv2D":
        return {"kernel": layer.conv.weight, "bias": layer.conv.bias}
    if layer.type_name == "Dense":
        return {"kernel": layer.linear.weight, "bias": layer.linear.bias}
    if layer.type_name == "BatchNormalization":
        norm = layer.norm
        return {
            "gamma": norm.weight,
            "beta": norm.bias,
            "moving_mean": norm.running_mean,
            "moving_variance": norm.running_var,
        }
    return {}


def _to_keras_axes(tensor: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (kh, kw, in, out); (out, in) -> (in, out); vectors unchanged."""
    return tensor.permute(2, 3, 1, 0) if tensor.dim() == 4 else tensor.t() if tensor.dim() == 2 else tensor


def _from_keras_axes(tensor: torch.Tensor) -> torch.Tensor:
    """(kh, kw, in, out) -> (out, in, kh, kw); (in, out) -> (out, in); vectors unchanged."""
    return tensor.permute(3, 2, 0, 1) if tensor.dim() == 4 else tensor.t() if tensor.dim() == 2 else tensor


def keras_shapes(layer, keras_layer: KerasLayer) -> list[tuple[int, ...]]:
    """The shapes the weights file must hold for one built cnnlab layer, in Keras's order."""
    targets = _targets(layer)
    return [tuple(_to_keras_axes(targets[name]).shape) for name in keras_layer.variables]


def set_keras_weights(layer, keras_layer: KerasLayer, arrays: list[np.ndarray]) -> None:
    """Copy Keras's arrays (already checked against ``keras_shapes``) into a built cnnlab layer."""
    if keras_layer.axis not in (-1, len(layer.input_shape)):
        raise KerasConfigError(
            f"layer '{layer.name}' (BatchNormalization): axis={keras_layer.axis} is not the "
            "channel axis; cnnlab normalises the last (channel) axis only"
        )
    targets = _targets(layer)
    with torch.no_grad():
        for name, array in zip(keras_layer.variables, arrays):
            targets[name].copy_(_from_keras_axes(torch.from_numpy(array)))


def keras_weights(layer) -> list[np.ndarray]:
    """A cnnlab layer's tensors as Keras stores them: float32, channels-last, Keras's order."""
    targets = _targets(layer)
    return [
        np.ascontiguousarray(_to_keras_axes(targets[name].detach().cpu()).numpy()) for name in keras_variables(layer)
    ]


def keras_variables(layer) -> tuple[str, ...]:
    """The Keras variables a cnnlab layer writes: BatchNormalization always with gamma and beta."""
    if layer.type_name in ("Conv2D", "Dense"):
        return ("kernel", "bias") if layer.use_bias else ("kernel",)
    if layer.type_name == "BatchNormalization":
        return ("gamma", "beta", "moving_mean", "moving_variance")
    return ()


# --- cnnlab model -> Keras config ---------------------------------------------------------------


def _keras_layer_config(layer) -> dict:
    """The config keys Keras 3 reads for each layer, with cnnlab's values."""
    spec = layer.get_config()
    config: dict = {"name": layer.name, "trainable": True, "dtype": "float32"}
    kind = spec["type"]
    if kind == "Conv2D":
        config.update(
            filters=spec["filters"],
            kernel_size=spec["kernel_size"],
            strides=spec["strides"],
            padding=spec["padding"],
            data_format="channels_last",
            dilation_rate=[1, 1],
            groups=1,
            activation=spec["activation"],
            use_bias=spec["use_bias"],
        )
    elif kind == "Dense":
        config.update(units=spec["units"], activation=spec["activation"], use_bias=spec["use_bias"])
    elif kind in ("MaxPool2D", "AvgPool2D"):
        config.update(
            pool_size=spec["pool_size"], strides=spec["strides"], padding=spec["padding"], data_format="channels_last"
        )
    elif kind == "Activation":
        config["activation"] = spec["activation"]
    elif kind == "Dropout":
        config["rate"] = spec["rate"]
    elif kind == "BatchNormalization":
        config.update(axis=-1, momentum=spec["momentum"], epsilon=spec["epsilon"], center=True, scale=True)
    elif kind in ("Flatten", "GlobalAveragePooling2D"):
        config["data_format"] = "channels_last"
    elif kind == "Reshape":
        config["target_shape"] = list(layer.target_shape)
    return {
        "module": "keras.layers",
        "class_name": KERAS_CLASSES[kind],
        "config": config,
        "registered_name": None,
        "build_config": {"input_shape": [None, *layer.input_shape]},
    }


def keras_config(model) -> dict:
    """A built cnnlab Sequential -> the config.json of a Keras 3 archive."""
    batch_shape = [None, *model.input_shape]
    taken = {layer.name for layer in model.layers}
    input_name = next(
        name for name in ("input_layer", *(f"input_layer_{n}" for n in range(1, len(taken) + 2))) if name not in taken
    )
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "registered_name": None,
        "config": {"batch_shape": batch_shape, "dtype": "float32", "sparse": False, "name": input_name},
    }
    layers = [input_layer, *(_keras_layer_config(layer) for layer in model.layers)]
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": "float32",
            "layers": layers,
            "build_input_shape": batch_shape,
        },
        "build_config": {"input_shape": batch_shape},
    }
