"""Model specs: the architecture as data, in JSON or on one line, and the model each one builds.

The same architecture can be written three ways, and each turns into the others:

    Sequential([Input((28, 28, 1)), Conv2D(32, (3, 3)), MaxPool2D((2, 2)), Activation("relu"),
                Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    {"input_shape": [28, 28, 1], "layers": [{"type": "Conv2D", "filters": 32, ...}, ...]}
    "input(28,28,1)-conv(32,3)-maxpool(2)-relu-flatten-dense(128,relu)-dense(10,softmax)"

``model.to_spec()`` gives the JSON form; ``model_from_spec`` and ``parse_spec_line`` the other ways.
"""

from __future__ import annotations

import re

from cnnlab.errors import CnnlabError
from cnnlab.nn.layers import ACTIVATIONS, LAYER_ALIASES, LAYER_TYPES, PADDINGS, Input
from cnnlab.nn.sequential import Sequential


class SpecError(CnnlabError, ValueError):
    """A model spec that cannot be built: unknown layer, bad argument, impossible shapes."""


def model_from_spec(spec: dict, input_shape=None) -> Sequential:
    """Build a model from its JSON spec; every problem is a SpecError naming the layer."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise SpecError('model spec: expected an object with a non-empty "layers" list')
    shape = input_shape or spec.get("input_shape")
    if not shape:
        raise SpecError('model spec: no input shape; give "input_shape": [H, W, C] or --input-shape H,W,C')
    try:
        model = Sequential(input_shape=shape, name=str(spec.get("name", "sequential")))
    except ValueError as problem:
        raise SpecError(f"model spec: {problem}") from None
    for index, config in enumerate(spec["layers"]):
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise SpecError(f'model spec: layer {index} must be an object with a "type" such as "Conv2D"')
        kind = LAYER_ALIASES.get(config["type"], config["type"])
        if kind not in LAYER_TYPES:
            raise SpecError(
                f"model spec: layer {index} has unknown type {config['type']!r}; known: {', '.join(LAYER_TYPES)}"
            )
        arguments = {key: value for key, value in config.items() if key != "type"}
        try:
            model.add(LAYER_TYPES[kind](**arguments))
        except (TypeError, ValueError) as problem:
            raise SpecError(f"model spec: layer {index} ({kind}): {problem}") from None
        except (RuntimeError, MemoryError):  # torch cannot allocate the weights (or even count their bytes)
            raise SpecError(
                f"model spec: layer {index} ({kind}): its weights are too large for memory; use fewer "
                "units or filters, or a smaller kernel"
            ) from None
    return model


# one-line form: keyword -> (layer type, names of the positional numeric arguments)
KEYWORDS = {
    "conv": ("Conv2D", ["filters", "kernel_size", "strides"]),
    "maxpool": ("MaxPool2D", ["pool_size", "strides"]),
    "avgpool": ("AvgPool2D", ["pool_size", "strides"]),
    "dense": ("Dense", ["units"]),
    "dropout": ("Dropout", ["rate"]),
    "flatten": ("Flatten", []),
    "batchnorm": ("BatchNormalization", ["momentum", "epsilon"]),
    "gap": ("GlobalAveragePooling2D", []),
}
_LAYER = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


def _value(text: str):
    """'3' -> 3, '0.4' -> 0.4, '5x3' -> [5, 3], 'true'/'false' -> True/False, anything else stays a word."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"\d+x\d+", text):
        return [int(part) for part in text.split("x")]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_spec_line(text: str) -> dict:
    """The one-line form -> a JSON spec. Layers are joined by '-', arguments go in parentheses."""
    spec: dict = {"layers": []}
    for position, token in enumerate(part.strip() for part in text.strip().split("-")):
        match = _LAYER.match(token.lower())
        if not match:
            raise SpecError(f"model spec {text!r}: cannot read layer {position + 1} ({token!r}); write e.g. conv(32,3)")
        keyword, inside = match.group(1), match.group(2)
        words = [_value(arg.strip()) for arg in inside.split(",")] if inside else []
        if keyword == "input":
            if position or not words or not all(isinstance(w, int) for w in words):
                raise SpecError(f"model spec {text!r}: input(H,W,C) must come first, with integer sizes")
            spec["input_shape"] = words
            continue
        if keyword in ACTIVATIONS and not words:
            spec["layers"].append({"type": "Activation", "activation": keyword})
            continue
        if keyword not in KEYWORDS:
            known = ", ".join([*KEYWORDS, "input", *ACTIVATIONS])
            raise SpecError(f"model spec {text!r}: unknown layer {keyword!r}; known: {known}")
        kind, numeric_names = KEYWORDS[keyword]
        layer: dict = {"type": kind}
        numbers = iter(numeric_names)
        for word in words:
            if isinstance(word, str) and "=" in word:
                key, raw = word.split("=", 1)
                layer[key.strip()] = _value(raw.strip())
            elif isinstance(word, str):
                layer["padding" if word in PADDINGS else "activation"] = word
            else:
                name = next(numbers, None)
                if name is None:
                    raise SpecError(f"model spec {text!r}: too many numbers for {keyword}: {inside}")
                layer[name] = word
        spec["layers"].append(layer)
    return spec


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """'28,28,1' -> (28, 28, 1), for --input-shape."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
        return Input(shape).shape
    except ValueError:
        raise CnnlabError(f"--input-shape: expected H,W,C such as 28,28,1. Received: {text!r}") from None
