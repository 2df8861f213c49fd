"""``cnnlab.keras.layers``: cnnlab's layers (``cnnlab.nn.layers``) called with Keras's arguments.

Each class here is the cnnlab layer of the same name, taking its arguments the way Keras's does: the same
positional order, Keras's keyword names, and Keras's other arguments at their default values (a kernel
initialiser of 'glorot_uniform', data_format 'channels_last'...), which are cnnlab's numbers already. Another
value of those is refused with NotImplementedError, and an argument Keras does not know with Keras's message:
``Conv2D(32, 3, filter=2)`` -> ValueError: Unrecognized keyword arguments passed to Conv2D: {'filter': 2}.

Layers are named when made, counted over the session as Keras counts them (``cnnlab.keras.backend``).
Gray images given as (H, W) (``input_shape=(28, 28)``) become (H, W, 1): cnnlab's images always have channels.
"""

from __future__ import annotations

import inspect

from cnnlab.keras import backend
from cnnlab.nn import layers
from cnnlab.nn.sequential import keras_name

# arguments every Keras layer takes -> the values cnnlab implements (the first one is Keras's default)
COMMON_DEFAULTS = {"trainable": (True,), "dtype": (None, "float32"), "activity_regularizer": (None,)}
_NO_REGULARISATION = {
    "kernel_regularizer": (None,),
    "bias_regularizer": (None,),
    "kernel_constraint": (None,),
    "bias_constraint": (None,),
}
_CHANNELS_LAST = {"data_format": (None, "channels_last")}
_INITIALISED_AS_KERAS = {"kernel_initializer": ("glorot_uniform",), "bias_initializer": ("zeros",)}


def image_shape(shape) -> tuple[int, ...]:
    """A Keras input shape as cnnlab takes it: (H, W) gray images get their channel axis, (H, W, 1)."""
    shape = tuple(shape)
    return (*shape, 1) if len(shape) == 2 else shape


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None):
    """Keras's ``Input(shape=...)``, the first entry of a Sequential model: the shape of one sample."""
    if batch_shape is not None and shape is None:
        shape = tuple(batch_shape)[1:]
    for argument, value in (("sparse", sparse), ("tensor", tensor)):
        if value:
            raise NotImplementedError(f"Input: cnnlab takes dense arrays only. Received: {argument}={value!r}")
    if shape is None:
        raise ValueError("Input: give the shape of one sample, e.g. Input(shape=(28, 28, 1)). Received: shape=None")
    return layers.Input(image_shape(shape))


class KerasArguments:
    """Mixin before a cnnlab layer: takes Keras's positional order and keywords, then builds the cnnlab layer."""

    keras_positional: tuple[str, ...] = ()  # Keras's positional parameters, in Keras's order
    keras_defaults: dict[str, tuple] = {}  # Keras's other arguments -> the values cnnlab implements

    def __init__(self, *args, **kwargs):
        kind = type(self).__name__
        if len(args) > len(self.keras_positional):
            raise TypeError(
                f"{kind} takes {len(self.keras_positional)} positional arguments "
                f"({', '.join(self.keras_positional)}). Received: {len(args)}"
            )
        for name, value in zip(self.keras_positional, args):
            if name in kwargs:
                raise TypeError(f"{kind}: {name} given twice, by position and by name. Received: {name}={value!r}")
            kwargs[name] = value
        cnnlab_arguments = set(inspect.signature(super().__init__).parameters)
        implemented = {**COMMON_DEFAULTS, **self.keras_defaults}
        unknown = {}
        for name in [key for key in kwargs if key not in cnnlab_arguments]:
            value = kwargs.pop(name)
            if name == "input_dim":
                kwargs["input_shape"] = (value,)
            elif name in implemented and value not in implemented[name]:
                raise NotImplementedError(
                    f"{kind}: cnnlab implements {name}={implemented[name][0]!r} only. Received: {name}={value!r}"
                )
            elif name not in implemented:
                unknown[name] = value
        if unknown:
            raise ValueError(f"Unrecognized keyword arguments passed to {kind}: {unknown}")
        if kwargs.get("input_shape") is not None:
            kwargs["input_shape"] = image_shape(kwargs["input_shape"])
        if kwargs.get("name") is None:
            kwargs["name"] = backend.unique_name(keras_name(self.type_name))
        super().__init__(**kwargs)


class Conv2D(KerasArguments, layers.Conv2D):
    keras_positional = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups")
    keras_defaults = {
        **_CHANNELS_LAST,
        **_INITIALISED_AS_KERAS,
        **_NO_REGULARISATION,
        "dilation_rate": (1, (1, 1), [1, 1]),
        "groups": (1,),
    }


class MaxPooling2D(KerasArguments, layers.MaxPool2D):
    keras_positional = ("pool_size", "strides", "padding", "data_format")
    keras_defaults = _CHANNELS_LAST


class AveragePooling2D(KerasArguments, layers.AvgPool2D):
    keras_positional = ("pool_size", "strides", "padding", "data_format")
    keras_defaults = _CHANNELS_LAST


class Activation(KerasArguments, layers.Activation):
    keras_positional = ("activation",)


class Flatten(KerasArguments, layers.Flatten):
    keras_positional = ("data_format",)
    keras_defaults = _CHANNELS_LAST


class Dense(KerasArguments, layers.Dense):
    keras_positional = ("units", "activation", "use_bias")
    keras_defaults = {**_INITIALISED_AS_KERAS, **_NO_REGULARISATION, "lora_rank": (None,)}


class Dropout(KerasArguments, layers.Dropout):
    keras_positional = ("rate", "noise_shape", "seed")
    keras_defaults = {"noise_shape": (None,), "seed": (None,)}


class BatchNormalization(KerasArguments, layers.BatchNormalization):
    keras_positional = ("axis", "momentum", "epsilon", "center", "scale")
    keras_defaults = {
        "axis": (-1,),  # the channels of (H, W, C) images, the features of vectors
        "center": (True,),
        "scale": (True,),
        "beta_initializer": ("zeros",),
        "gamma_initializer": ("ones",),
        "moving_mean_initializer": ("zeros",),
        "moving_variance_initializer": ("ones",),
        "beta_regularizer": (None,),
        "gamma_regularizer": (None,),
        "beta_constraint": (None,),
        "gamma_constraint": (None,),
        "synchronized": (False,),
    }


class GlobalAveragePooling2D(KerasArguments, layers.GlobalAveragePooling2D):
    keras_positional = ("data_format", "keepdims")
    keras_defaults = {**_CHANNELS_LAST, "keepdims": (False,)}


class Reshape(KerasArguments, layers.Reshape):
    keras_positional = ("target_shape",)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
