"""``Sequential``: a stack of Keras-style layers, built as soon as the input shape is known.

``forward`` is the textbook loop over the layers and returns logits: the softmax a last layer
declares is recorded in its config and applied by ``predict_proba``, never in ``forward``, so the
loss can work on logits (stable and faster). The speed-ups of ``cnnlab.engine`` are applied to a
model from outside (``engine.accelerate``); nothing here knows about them.
"""

from __future__ import annotations

import json
import re

import torch
from torch import nn

from cnnlab.nn.layers import ACTIVATIONS, OUTPUT_ACTIVATIONS, Input, Layer


def keras_name(type_name: str) -> str:
    """Keras's automatic layer names: Conv2D -> conv2d, MaxPool2D -> max_pooling2d, BatchNormalization ->
    batch_normalization (also the groups of a .keras file's weights)."""
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
            base, index = keras_name(layer.type_name), 0
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
        self._mark_logits()

    def build(self, input_shape) -> None:
        """Give the model its input shape and build the layers added before it was known (Keras's lazy build)."""
        if self.input_shape is not None:
            raise ValueError(f"Sequential '{self.name}' is already built. Received: input_shape={tuple(input_shape)}")
        self.input_shape = Input(input_shape).shape
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape)

    def _mark_logits(self) -> None:
        for layer in self.layers:
            layer.logits_only = False
        if len(self.layers):
            self.layers[-1].logits_only = True

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        return self.layers[-1].output_shape if len(self.layers) else self.input_shape

    @property
    def output_activation(self) -> str:
        """The activation ``forward`` leaves out (softmax or sigmoid), or 'linear' when it leaves none."""
        last = self.layers[-1].activation if len(self.layers) else "linear"
        return last if last in OUTPUT_ACTIVATIONS else "linear"

    def finish(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's outputs as Keras returns them: ``forward``'s logits with the left-out activation applied."""
        return ACTIVATIONS[self.output_activation](logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> logits (B, classes)
        for layer in self.layers:
            x = layer(x)
        return x

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: the softmax the last layer declares, applied outside ``forward``."""
        self.eval()
        return torch.softmax(self(x).float(), dim=1)

    def to_spec(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape or ()),
            "layers": [layer.get_config() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_spec(), indent=2)
