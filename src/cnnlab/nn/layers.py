"""Keras-style layers on torch.nn.

Each layer is configured like its Keras namesake, checks its arguments and says what it received,
and is built once the input shape is known: ``build(input_shape) -> output_shape``. Shapes here are
Keras's, ``(H, W, C)`` for images and ``(F,)`` for vectors, without the batch axis. Tensors flowing
through ``forward`` are PyTorch's ``(B, C, H, W)`` and ``(B, F)``.

Keras's numbers are kept: glorot-uniform kernels and zero biases, 'same' padding that puts the odd
extra row/column at the bottom/right, BatchNormalization's momentum 0.99 and epsilon 1e-3, and
Flatten in (H, W, C) order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=1),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "softplus": F.softplus,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),  # Keras's default negative slope
}
PADDINGS = ("valid", "same")
# a model's last layer leaves these out of ``forward``: the losses take logits, ``Sequential.finish`` applies them
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")


MAX_WINDOW = 2**16  # kernel, pool and stride sides: beyond any picture's side, and within torch's 32-bit sizes


def _pair(value, argument: str, layer: str) -> tuple[int, int]:
    """An int or a pair of ints, each in [1, MAX_WINDOW], as a (rows, cols) tuple."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WINDOW for v in pair)
    ):
        raise ValueError(
            f"{layer}: {argument} must be an integer from 1 to {MAX_WINDOW} or a pair of them. "
            f"Received: {argument}={value!r}"
        )
    return pair


def _activation(name, layer: str) -> str:
    name = "linear" if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{layer}: unknown activation; use one of {', '.join(ACTIVATIONS)}. Received: activation={name!r}"
        )
    return name


def _flag(value, argument: str, layer: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{layer}: {argument} must be True or False. Received: {argument}={value!r}")
    return value


def _padding(padding, layer: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"{layer}: padding must be 'valid' or 'same'. Received: padding={padding!r}")
    return padding


def window_output(size: int, window: int, stride: int, padding: str) -> tuple[int, int, int]:
    """Output length and (before, after) padding of a sliding window, as TensorFlow computes them.

    'valid': out = floor((size - window) / stride) + 1, no padding.
    'same':  out = ceil(size / stride); total padding (out - 1) * stride + window - size,
             the odd one at the end (bottom/right).
    """
    if padding == "valid":
        return (size - window) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


MAX_PADDED_PIXELS = 2**31  # per channel and sample; 'same' padding is materialised by F.pad before pooling


def _check_padding(layer, input_shape, rows: int, columns: int) -> None:
    """Refuse a 'same' window so much larger than its input that the padded input cannot exist in memory."""
    height, width = input_shape[:2]
    if (rows or columns) and (height + rows) * (width + columns) > MAX_PADDED_PIXELS:
        raise ValueError(
            f"{layer.type_name} '{layer.name}': padding 'same' for this window would pad the input "
            f"{input_shape} to {height + rows}×{width + columns} pixels; use a smaller window"
        )


class Layer(nn.Module):
    """Base class: a named layer that knows its input and output shapes once built."""

    type_name = "Layer"

    def __init__(self, name: str | None = None, input_shape=None):
        super().__init__()
        self.name = name
        self.declared_input_shape = tuple(input_shape) if input_shape is not None else None
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.activation = "linear"
        self.logits_only = False  # set on a model's last layer: forward stops before its softmax

    def build(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self._build(self.input_shape))
        return self.output_shape

    def _build(self, input_shape):
        return input_shape

    def _image_input(self, input_shape) -> tuple[int, int, int]:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.type_name} '{self.name}' needs an image input (H, W, C). Received: input_shape={input_shape}"
            )
        return input_shape

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "linear" or (self.logits_only and self.activation in OUTPUT_ACTIVATIONS):
            return x
        return ACTIVATIONS[self.activation](x)

    def keras_weights(self) -> list[tuple[torch.Tensor, tuple[int, ...] | None]]:
        """The layer's tensors in Keras's order, each with the permutation of torch's axes into Keras's (None: same)."""
        return []

    def get_weights(self) -> list:
        """Keras's ``layer.get_weights()``: NumPy copies in Keras's layouts (Conv2D's kernel (kh, kw, in, out)...)."""
        return [
            (tensor.detach() if order is None else tensor.detach().permute(*order)).cpu().numpy().copy()
            for tensor, order in self.keras_weights()
        ]

    def set_weights(self, weights) -> None:
        """Keras's ``layer.set_weights(arrays)``: the arrays of ``get_weights``, in the same order and layouts."""
        tensors = self.keras_weights()
        if len(weights) != len(tensors):
            raise ValueError(
                f"{self.type_name} '{self.name}' has {len(tensors)} weight arrays. Received: {len(weights)} arrays"
            )
        for index, ((tensor, order), array) in enumerate(zip(tensors, weights)):
            value = torch.as_tensor(array, dtype=tensor.dtype)
            expected = tuple(tensor.shape) if order is None else tuple(tensor.permute(*order).shape)
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{self.type_name} '{self.name}': weight array {index} must have shape {expected}. "
                    f"Received: shape {tuple(value.shape)}"
                )
            if order is not None:  # back from Keras's axes to torch's
                value = value.permute(*sorted(range(len(order)), key=order.__getitem__))
            with torch.no_grad():
                tensor.copy_(value)

    def get_config(self) -> dict:
        return {"type": self.type_name, "name": self.name}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, output_shape={self.output_shape}"


class Input:
    """The input shape of a Sequential model, as in Keras: ``Input(shape=(28, 28, 1))``."""

    def __init__(self, shape):
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else None
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape) or len(shape) not in (1, 3):
            raise ValueError(f"Input: shape must be (H, W, C) or (F,) of positive integers. Received: shape={shape!r}")
        self.shape = shape


class Conv2D(Layer):
    type_name = "Conv2D"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        activation=None,
        use_bias=True,
        name=None,
        input_shape=None,
    ):
        super().__init__(name, input_shape)
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive integer. Received: filters={filters!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _pair(strides, "strides", "Conv2D")
        self.padding = _padding(padding, "Conv2D")
        self.activation = _activation(activation, "Conv2D")
        self.use_bias = _flag(use_bias, "use_bias", "Conv2D")
        self.pad: tuple[int, int, int, int] | None = None  # (left, right, top, bottom) when asymmetric

    def _build(self, input_shape):
        height, width, channels = self._image_input(input_shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        out_h, top, bottom = window_output(height, kh, sh, self.padding)
        out_w, left, right = window_output(width, kw, sw, self.padding)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"Conv2D '{self.name}': a {kh}×{kw} kernel does not fit the input {input_shape} with padding "
                f"'{self.padding}'; use padding='same', a smaller kernel or less pooling before it"
            )
        _check_padding(self, input_shape, top + bottom, left + right)
        symmetric = top == bottom and left == right
        self.pad = None if symmetric else (left, right, top, bottom)
        self.conv = nn.Conv2d(
            channels,
            self.filters,
            self.kernel_size,
            self.strides,
            padding=(top, left) if symmetric else 0,
            bias=self.use_bias,
        )
        nn.init.xavier_uniform_(self.conv.weight)  # glorot uniform: fan_in = kh·kw·C_in, fan_out = kh·kw·filters
        if self.use_bias:
            nn.init.zeros_(self.conv.bias)
        return out_h, out_w, self.filters

    def forward(self, x):  # (B, C, H, W) -> (B, filters, H', W')
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.activate(self.conv(x))

    def keras_weights(self):  # kernel (out, in, kh, kw) -> (kh, kw, in, out), bias (filters,)
        return [(self.conv.weight, (2, 3, 1, 0))] + ([(self.conv.bias, None)] if self.use_bias else [])

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


class _Pool2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.pool_size = _pair(pool_size, "pool_size", self.type_name)
        self.strides = self.pool_size if strides is None else _pair(strides, "strides", self.type_name)
        self.padding = _padding(padding, self.type_name)
        self.pad: tuple[int, int, int, int] | None = None

    def _build(self, input_shape):
        height, width, channels = self._image_input(input_shape)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        out_h, top, bottom = window_output(height, ph, sh, self.padding)
        out_w, left, right = window_output(width, pw, sw, self.padding)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"{self.type_name} '{self.name}': a {ph}×{pw} window does not fit the input {input_shape}; "
                "use padding='same' or a smaller pool_size"
            )
        _check_padding(self, input_shape, top + bottom, left + right)
        self.pad = (left, right, top, bottom) if top or bottom or left or right else None
        return out_h, out_w, channels

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPool2D(_Pool2D):
    type_name = "MaxPool2D"

    def forward(self, x):  # (B, C, H, W) -> (B, C, H', W')
        if self.pad is not None:
            x = F.pad(x, self.pad, value=-math.inf)  # padding never wins a max
        return F.max_pool2d(x, self.pool_size, self.strides)


class AvgPool2D(_Pool2D):
    type_name = "AvgPool2D"

    def forward(self, x):  # (B, C, H, W) -> (B, C, H', W')
        if self.pad is None:
            return F.avg_pool2d(x, self.pool_size, self.strides)
        # 'same': average over the real pixels only, as TensorFlow does
        ones = torch.ones_like(x[:1, :1])
        sums = F.avg_pool2d(F.pad(x, self.pad), self.pool_size, self.strides)
        counts = F.avg_pool2d(F.pad(ones, self.pad), self.pool_size, self.strides)
        return sums / counts


class Activation(Layer):
    type_name = "Activation"

    def __init__(self, activation, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.activation = _activation(activation, "Activation")

    def forward(self, x):
        return self.activate(x)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Flatten(Layer):
    type_name = "Flatten"

    def _build(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x):  # (B, C, H, W) -> (B, H·W·C), Keras's order; a free view for channels_last tensors
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class Dense(Layer):
    type_name = "Dense"

    def __init__(self, units, activation=None, use_bias=True, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer. Received: units={units!r}")
        self.units = units
        self.activation = _activation(activation, "Dense")
        self.use_bias = _flag(use_bias, "use_bias", "Dense")

    def _build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Dense '{self.name}' needs a flat input; add Flatten() before it. Received: input_shape={input_shape}"
            )
        self.linear = nn.Linear(input_shape[0], self.units, bias=self.use_bias)
        nn.init.xavier_uniform_(self.linear.weight)
        if self.use_bias:
            nn.init.zeros_(self.linear.bias)
        return (self.units,)

    def forward(self, x):  # (B, F) -> (B, units)
        return self.activate(self.linear(x))

    def keras_weights(self):  # kernel (units, in) -> (in, units), bias (units,)
        return [(self.linear.weight, (1, 0))] + ([(self.linear.bias, None)] if self.use_bias else [])

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation, "use_bias": self.use_bias}


class Dropout(Layer):
    type_name = "Dropout"

    def __init__(self, rate, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)

    def forward(self, x):
        return F.dropout(x, self.rate, self.training)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class BatchNormalization(Layer):
    """Normalises the channel axis; Keras's momentum m is PyTorch's 1 - m."""

    type_name = "BatchNormalization"

    def __init__(self, momentum=0.99, epsilon=1e-3, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if not 0 <= momentum < 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1). Received: momentum={momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"BatchNormalization: epsilon must be positive. Received: epsilon={epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)

    def _build(self, input_shape):
        norm = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
        self.norm = norm(input_shape[-1], eps=self.epsilon, momentum=1 - self.momentum)
        return input_shape

    def forward(self, x):
        return self.norm(x)

    def keras_weights(self):  # gamma, beta, moving_mean, moving_variance: (channels,) each
        norm = self.norm
        return [(norm.weight, None), (norm.bias, None), (norm.running_mean, None), (norm.running_var, None)]

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


class GlobalAveragePooling2D(Layer):
    type_name = "GlobalAveragePooling2D"

    def _build(self, input_shape):
        return (self._image_input(input_shape)[2],)

    def forward(self, x):  # (B, C, H, W) -> (B, C)
        return x.mean(dim=(2, 3))


class Reshape(Layer):
    """Keras's Reshape: the values in Keras's (H, W, C) order, laid out as ``target_shape`` (one side may be -1)."""

    type_name = "Reshape"

    def __init__(self, target_shape, name=None, input_shape=None):
        super().__init__(name, input_shape)
        shape = tuple(target_shape) if isinstance(target_shape, (list, tuple)) else None
        if (
            not shape
            or len(shape) not in (1, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in shape)
            or shape.count(-1) > 1
        ):
            raise ValueError(
                "Reshape: target_shape must be (H, W, C) or (F,) of positive integers, one of which may be -1. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = shape

    def _build(self, input_shape):
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise ValueError(
                f"Reshape '{self.name}': the input {input_shape} holds {size} values, which cannot be laid out "
                f"as {self.target_shape}. Received: target_shape={self.target_shape}"
            )
        return shape

    def forward(self, x):  # (B, C, H, W) or (B, F) -> (B, C', H', W') or (B, F'), reshaped in (H, W, C) order
        values = x.permute(0, 2, 3, 1) if x.dim() == 4 else x
        reshaped = values.reshape(x.shape[0], *self.output_shape)
        return reshaped.permute(0, 3, 1, 2) if reshaped.dim() == 4 else reshaped

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


MaxPooling2D = MaxPool2D
AveragePooling2D = AvgPool2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        Activation,
        Flatten,
        Dense,
        Dropout,
        BatchNormalization,
        GlobalAveragePooling2D,
        Reshape,
    )
}
LAYER_ALIASES = {"MaxPooling2D": "MaxPool2D", "AveragePooling2D": "AvgPool2D"}
