"""Sequential models, the model spec (JSON and one line), and the registry of the course's models.

The same architecture can be written three ways, and each turns into the others:

    Sequential([Input((28, 28, 1)), Conv2D(32, (3, 3)), MaxPool2D((2, 2)), Activation("relu"),
                Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    {"input_shape": [28, 28, 1], "layers": [{"type": "Conv2D", "filters": 32, ...}, ...]}
    "input(28,28,1)-conv(32,3)-maxpool(2)-relu-flatten-dense(128,relu)-dense(10,softmax)"

The registry holds the course's models as one-line specs, so the CLI choices, the web page and the
tests all come from one table (``list_models()``, ``create_model(name)``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab import kernels
from cnnlab.errors import CnnlabError
from cnnlab.layers import ACTIVATIONS, LAYER_ALIASES, LAYER_TYPES, PADDINGS, Input, Layer


class SpecError(CnnlabError, ValueError):
    """A model spec that cannot be built: unknown layer, bad argument, impossible shapes."""


def _snake(type_name: str) -> str:
    """Keras's automatic layer names: Conv2D -> conv2d, MaxPool2D -> max_pooling2d."""
    name = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D"}.get(type_name, type_name)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


class Sequential(nn.Module):
    """A stack of layers, built as soon as the input shape is known; ``forward`` returns logits."""

    def __init__(self, layers=(), input_shape=None, name: str = "sequential"):
        super().__init__()
        self.name = name
        self.layers = nn.ModuleList()
        self.input_shape: tuple[int, ...] | None = Input(input_shape).shape if input_shape is not None else None
        self.class_names: list[str] | None = None  # set when loaded from a run
        self._fusions: dict | None = None  # layer index -> compiled kernel for the layers from there (cnnlab.kernels)
        self.dataset: str | None = None
        for layer in layers:
            self.add(layer)

    def add(self, layer) -> None:
        if isinstance(layer, Input):
            if len(self.layers) or self.input_shape is not None:
                raise ValueError(f"Sequential: Input must come first, once. Received: Input(shape={layer.shape})")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise ValueError(f"Sequential: expected a cnnlab layer. Received: {layer!r}")
        if self.input_shape is None and not len(self.layers) and layer.declared_input_shape is not None:
            self.input_shape = Input(layer.declared_input_shape).shape
        taken = {existing.name for existing in self.layers}
        if layer.name is None:
            base, index = _snake(layer.type_name), 0
            layer.name = base
            while layer.name in taken:
                index += 1
                layer.name = f"{base}_{index}"
        elif layer.name in taken:
            raise ValueError(f"Sequential: layer names must be unique. Received: name={layer.name!r} twice")
        if self.input_shape is not None:
            previous = self.layers[-1].output_shape if len(self.layers) else self.input_shape
            layer.build(previous)
        self.layers.append(layer)
        self._fusions = None
        self._mark_logits()

    def _mark_logits(self) -> None:
        for layer in self.layers:
            layer.logits_only = False
        if len(self.layers):
            self.layers[-1].logits_only = True

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        return self.layers[-1].output_shape if len(self.layers) else self.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> logits (B, classes)
        if self._fusions is None:
            self._fusions = kernels.find_conv_pools(self.layers)
        index = 0
        while index < len(self.layers):
            fused = self._fusions.get(index)
            if fused is not None and fused.applies(x):  # the same math in one compiled pass (cnnlab.kernels)
                x, index = fused(x), index + fused.span
            else:
                x, index = self.layers[index](x), index + 1
        return x

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: the softmax the last layer declares, applied outside ``forward``."""
        self.eval()
        return torch.softmax(self(x).float(), dim=1)

    def to_spec(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape or ()),
                "layers": [layer.get_config() for layer in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.to_spec(), indent=2)


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, H, W, C) -> float32 (B, C, H, W) in [0, 1], stored channels_last (no copy of the layout)."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


# --- specs as data ---------------------------------------------------------------------------

def model_from_spec(spec: dict, input_shape=None) -> Sequential:
    """Build a model from its JSON spec; every problem is a SpecError naming the layer."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise SpecError("model spec: expected an object with a non-empty \"layers\" list")
    shape = input_shape or spec.get("input_shape")
    if not shape:
        raise SpecError("model spec: no input shape; give \"input_shape\": [H, W, C] or --input-shape H,W,C")
    try:
        model = Sequential(input_shape=shape, name=str(spec.get("name", "sequential")))
    except ValueError as problem:
        raise SpecError(f"model spec: {problem}") from None
    for index, config in enumerate(spec["layers"]):
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise SpecError(f"model spec: layer {index} must be an object with a \"type\" such as \"Conv2D\"")
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
            raise SpecError(f"model spec: layer {index} ({kind}): its weights are too large for memory; use fewer "
                            "units or filters, or a smaller kernel") from None
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


# --- the registry --------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCard:
    """A named model from the course: its architecture as one line, and what the course reported."""

    name: str
    spec: str
    description: str
    dataset: str = "mnist"
    course_epochs: int = 2
    course_batch_size: int = 128
    course_accuracy: float | None = None  # test accuracy the course reports


_MNIST = "input(28,28,1)"
MODEL_CARDS = {card.name: card for card in [
    ModelCard("mlp", f"{_MNIST}-flatten-dense(512,relu)-dense(256,relu)-dense(128,relu)-dense(32,relu)"
              "-dense(10,softmax)", "the course's fully connected baseline", course_epochs=10, course_accuracy=0.9794),
    ModelCard("cnn", f"{_MNIST}-conv(32,3)-maxpool(2)-relu-flatten-dense(128,relu)-dense(10,softmax)",
              "the course's first CNN", course_accuracy=0.9752),
    ModelCard("cnn2", f"{_MNIST}-conv(32,3,relu)-maxpool(2)-conv(64,3,relu)-maxpool(2)-flatten-dense(128,relu)"
              "-dense(10,softmax)", "two conv layers: fewer parameters, better (exercise 1)", course_accuracy=0.9824),
    ModelCard("cnn-dropout", f"{_MNIST}-conv(32,3)-maxpool(2)-relu-flatten-dropout(0.4)-dense(128,relu)"
              "-dropout(0.4)-dense(10,softmax)", "the first CNN with dropout 0.4 before each Dense",
              course_accuracy=0.98),
    ModelCard("cnn-deep", f"{_MNIST}-conv(32,3,relu)-conv(32,3,relu)-maxpool(2)-conv(64,3,relu)-conv(64,3,relu)"
              "-maxpool(2)-flatten-dropout(0.4)-dense(128,relu)-dropout(0.4)-dense(10,softmax)",
              "several conv layers, the course's ≈99% model", course_epochs=3, course_accuracy=0.99),
    ModelCard("cifar-cnn", "input(32,32,3)-conv(32,3,same,relu)-conv(32,3,relu)-maxpool(2)-conv(64,3,same,relu)"
              "-conv(64,3,relu)-maxpool(2)-flatten-dense(512,relu)-dense(10,softmax)",
              "the course's CIFAR-10 CNN (exercise 2)", dataset="cifar10", course_batch_size=32),
]}


def list_models() -> list[str]:
    return list(MODEL_CARDS)


def create_model(name: str, input_shape=None) -> Sequential:
    """A registry model, freshly initialised; ``input_shape`` (H, W, C) overrides the course's."""
    if name not in MODEL_CARDS:
        raise SpecError(f"unknown model {name!r}; choose one of {', '.join(MODEL_CARDS)} or give a spec")
    spec = parse_spec_line(MODEL_CARDS[name].spec)
    spec["name"] = name
    return model_from_spec(spec, input_shape=input_shape)


def parse_model(text: str, input_shape=None) -> Sequential:
    """A registry name, a path to a JSON spec, or a one-line spec -> a model."""
    if text in MODEL_CARDS:
        return create_model(text, input_shape)
    if text.endswith(".json"):
        path = Path(text)
        try:
            spec = json.loads(path.read_text())
        except OSError as problem:
            raise SpecError(f"{path}: cannot read the model spec ({problem.strerror})") from None
        except json.JSONDecodeError as problem:
            raise SpecError(f"{path}: not valid JSON (line {problem.lineno}: {problem.msg})") from None
        spec.setdefault("name", path.stem)
        return model_from_spec(spec, input_shape)
    if "(" not in text and "-" not in text and text.lower() not in KEYWORDS:
        raise SpecError(f"unknown model {text!r}; choose one of {', '.join(MODEL_CARDS)}, a .json spec or a "
                        "one-line spec such as 'conv(32,3)-maxpool(2)-relu-flatten-dense(10,softmax)'")
    spec = parse_spec_line(text)
    spec.setdefault("name", "custom")
    return model_from_spec(spec, input_shape)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """'28,28,1' -> (28, 28, 1), for --input-shape."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
        return Input(shape).shape
    except ValueError:
        raise CnnlabError(f"--input-shape: expected H,W,C such as 28,28,1. Received: {text!r}") from None
