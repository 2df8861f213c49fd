"""The engine: the same model and optimizer, run faster where this processor allows, and one place that says so.

A cnnlab model is the textbook model (``Sequential.forward`` calls its layers one by one) and its
optimizers are the textbook updates. ``accelerate(model, optimizer)`` leaves both as they are and gives
back what the training loop calls instead:

* a ``FastModel``: a module holding the model (same parameters, same ``state_dict`` underneath) whose
  ``forward`` walks the same layers but hands some of them to faster code computing the same thing:
  - the first Conv2D with the 2×2 max-pool (and ReLU) after it, as one compiled kernel (``cnnlab.engine.kernels``);
  - a deeper Conv2D's ReLU and 2×2 max-pool as one compiled pass each way (the convolution stays oneDNN's);
  - large Dense layers as a whole-input convolution, which reaches oneDNN's inner-product kernels;
  - Dropout while training, with masks from a counter-based hash drawn in parallel;
* the optimizer, switched to ``OnePassRMSprop`` when it is Keras's RMSprop: each weight updated in one
  compiled pass instead of five.

Each speed-up checks, at every call, that the tensor in front of it is one it can take (a float32 CPU
tensor, in eager mode...) and otherwise lets the plain layer run; the tests compare both paths. What
applies on this processor is decided here alone, and ``speedups()`` says it (``cnnlab bench`` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine import devices, kernels
from cnnlab.nn.optimizers import KerasRMSprop

# On a CPU, torch.mm calls MKL, whose sgemm takes its AVX2 path on AMD processors; oneDNN (which runs
# torch's CPU convolutions) uses AVX-512 wherever the processor has it. A dense layer written as a
# convolution whose kernel spans the whole input reaches oneDNN's inner-product kernels: same products and
# sums, about half the time for the course CNN's 5408 -> 128 layer on a 2-core AMD EPYC (forward and
# backward 1.6 ms against 3.3 ms a batch of 128). Each call costs about 0.1 ms more, so small layers stay
# with torch.mm: measured even at 65,536 weights, 30% faster at 131,072, 3x slower at 8,192.
ONEDNN_DENSE_MIN_WEIGHTS = 100_000
# ... and only for wide inputs (a flattened feature map): the MLP's 784 -> 512 and 512 -> 256 ran 1.16-1.33x
# slower through oneDNN than on torch.mm (forward and backward, batch 128, 2 threads; the whole MLP step 0.84x
# the time on torch.mm), while 1600 -> 128, 2304 -> 512 and 5408 -> 128 were as fast or faster (benchmarks/README.md).
ONEDNN_DENSE_MIN_INPUTS = 1024
# On an Intel processor MKL runs its AVX-512 code and torch.mm is the faster of the two: on a 2-core Xeon with
# AVX-512 the course CNN's training step took 3.95 ms with its 5408 -> 128 layer on torch.mm against 4.7 ms through
# oneDNN (batch 128), the exercise CNN's 9.4 against 9.8 ms. So the detour is for other processors only.
ONEDNN_DENSE_DETOUR = devices.cpu_vendor() != "GenuineIntel"


def dense_by_onednn(x, weight, bias):  # (B, F), (units, F) -> (B, units)
    rows = x.reshape(x.shape[0], 1, 1, -1)  # (B, 1, 1, F): one channel, one row
    kernel = weight.view(weight.shape[0], 1, 1, -1)  # (units, 1, 1, F)
    return F.conv2d(rows, kernel, bias).flatten(1)


# --- the speed-ups for layers: each takes ``span`` layers and says whether it can take a tensor -------------


class ConvPool:
    """Conv2D (valid, stride 1) → MaxPool2D(2) [→ ReLU] as one kernel; ``span`` layers long."""

    def __init__(self, conv, span: int, relu: bool):  # conv: a built cnnlab.nn.layers.Conv2D
        self.conv, self.span, self.relu = conv, span, relu

    def applies(self, x: torch.Tensor) -> bool:  # the kernel computes no gradient for its input
        weight = self.conv.conv.weight
        return (
            kernels.eager_cpu_float(x) and not x.requires_grad and weight.device == x.device and weight.dtype == x.dtype
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.conv.conv
        bias = layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_channels)
        return kernels.ConvPoolFunction.apply(x, layer.weight, bias, self.relu)


class ConvReluPool:
    """A deeper Conv2D (on oneDNN, as the layer runs it) → MaxPool2D(2) with its ReLU in one compiled pass each way.

    ``span`` layers long: Conv2D(relu) → MaxPool2D, or Conv2D → MaxPool2D → Activation('relu'). Unlike ``ConvPool``
    it passes gradients to its input, so it serves every convolution but a first one that ``ConvPool`` takes.
    """

    def __init__(self, conv, span: int):  # conv: a built cnnlab.nn.layers.Conv2D
        self.conv, self.span = conv, span

    def applies(self, x: torch.Tensor) -> bool:
        weight = self.conv.conv.weight
        return kernels.relu_pool_applies(x) and weight.device == x.device and weight.dtype == x.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.pad is not None:  # as Conv2D.forward: 'same' padding that is not symmetric
            x = F.pad(x, self.conv.pad)
        return kernels.relu_pool(self.conv.conv(x), relu=True)


class OneDnnDense:
    span = 1

    def __init__(self, dense):
        self.dense = dense

    def applies(self, x: torch.Tensor) -> bool:  # exported and traced graphs keep the plain product
        return x.device.type == "cpu" and not torch.compiler.is_compiling() and not torch.jit.is_tracing()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense.activate(dense_by_onednn(x, self.dense.linear.weight, self.dense.linear.bias))


class HashedDropout:
    span = 1

    def __init__(self, dropout):
        self.dropout = dropout

    def applies(self, x: torch.Tensor) -> bool:  # same distribution as F.dropout, other random draws
        return self.dropout.training and self.dropout.rate > 0 and kernels.dropout_applies(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.dropout(x, self.dropout.rate)


def conv_pool_for(layers) -> ConvPool | None:
    """The fused kernel for a model's first layers, when they are a convolution and its 2×2 max-pool it has code for."""
    if kernels.WHY_OFF is not None or not kernels.VECTOR_BITS or len(layers) < 2:
        return None
    conv, pool = layers[0], layers[1]
    fits = (
        conv.type_name == "Conv2D"
        and pool.type_name == "MaxPool2D"
        and conv.strides == (1, 1)
        and conv.padding == "valid"
        and conv.activation in ("linear", "relu")
        and conv.filters in kernels.FUSED_FILTERS
        and conv.kernel_size[0] * conv.kernel_size[1] * conv.input_shape[2] <= kernels.MAX_TAPS
        and pool.pool_size == (2, 2)
        and pool.strides == (2, 2)
        and pool.padding == "valid"
    )
    if not fits:
        return None
    relu_after = len(layers) > 2 and layers[2].type_name == "Activation" and layers[2].activation == "relu"
    if conv.activation == "relu" or not relu_after:
        return ConvPool(conv, 2, conv.activation == "relu")
    return ConvPool(conv, 3, True)


def onednn_dense_fits(linear: nn.Linear) -> bool:
    wide, large = linear.in_features >= ONEDNN_DENSE_MIN_INPUTS, linear.weight.numel() >= ONEDNN_DENSE_MIN_WEIGHTS
    return ONEDNN_DENSE_DETOUR and wide and large


def relu_pool_span(layers, index: int) -> int:
    """How many layers from ``index`` a ``ConvReluPool`` takes: 2 or 3, or 0 where the pattern is not there."""
    conv, pool = layers[index], layers[index + 1] if index + 1 < len(layers) else None
    if conv.type_name != "Conv2D" or pool is None or pool.type_name != "MaxPool2D":
        return 0
    if pool.pool_size != (2, 2) or pool.strides != (2, 2) or pool.padding != "valid":
        return 0
    if conv.activation == "relu":
        return 2
    after = layers[index + 2] if index + 2 < len(layers) else None
    relu_after = after is not None and after.type_name == "Activation" and after.activation == "relu"
    return 3 if conv.activation == "linear" and relu_after else 0


def plan(layers) -> dict[int, object]:
    """Layer index -> the speed-up that may run the layers from there; layers not in it always run plainly."""
    steps: dict[int, object] = {}
    fused = conv_pool_for(layers)
    if fused is not None:
        steps[0] = fused
    taken = fused.span if fused is not None else 0  # layers before this index belong to a speed-up
    for index, layer in enumerate(layers):
        if index < taken:
            continue
        span = relu_pool_span(layers, index) if kernels.WHY_OFF is None else 0
        if span:
            steps[index], taken = ConvReluPool(layer, span), index + span
        elif layer.type_name == "Dense" and onednn_dense_fits(layer.linear):
            steps[index] = OneDnnDense(layer)
        elif layer.type_name == "Dropout" and kernels.WHY_OFF is None:
            steps[index] = HashedDropout(layer)
    return steps


class FastModel(nn.Module):
    """``model``'s layers, in order, each speed-up of ``plan`` taking its layers where it can take the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.steps = plan(model.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> logits (B, classes), as model(x)
        layers, index = self.model.layers, 0
        while index < len(layers):
            step = self.steps.get(index)
            if step is not None and step.applies(x):
                x, index = step(x), index + step.span
            else:
                x, index = layers[index](x), index + 1
        return x


# --- the speed-up for the optimizer ---------------------------------------------------------------------


class OnePassRMSprop(KerasRMSprop):
    """KerasRMSprop with its update in one compiled pass over each weight, where the tensors allow it."""

    @staticmethod
    def _update(params, grads, velocities, group) -> None:
        if kernels.rmsprop_applies(params, grads, velocities):
            kernels.rmsprop_step(
                params, grads, velocities, group["lr"], group["rho"], group["epsilon"], group["weight_decay"]
            )
        else:
            KerasRMSprop._update(params, grads, velocities, group)


def accelerate(model, optimizer=None):
    """(what to call instead of ``model``, ``optimizer`` with its fast update); both share the model's weights.

    The optimizer stays the same object (its state, its param groups): Keras's RMSprop only changes class to
    ``OnePassRMSprop``, a subclass that adds no state, so whoever holds it sees every step it takes.
    """
    if optimizer is not None and type(optimizer) is KerasRMSprop and kernels.WHY_OFF is None:
        optimizer.__class__ = OnePassRMSprop
    return FastModel(model), optimizer


# --- what applies here ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speedup:
    name: str
    on: bool
    why: str  # where it applies, or why it does not


def speedups(model=None) -> list[Speedup]:
    """Each speed-up of the engine, whether it is on in this process, and (with ``model``) where it applies."""
    compiled = kernels.WHY_OFF is None
    off = f"off: {kernels.WHY_OFF}" if not compiled else ""
    steps = plan(model.layers) if model is not None else {}

    def where(kind: type, otherwise: str) -> str:
        names = [model.layers[index].name for index, step in steps.items() if isinstance(step, kind)]
        return ("in this model: " + ", ".join(names)) if names else otherwise if model is not None else ""

    fused_why = off or (
        "no AVX2 or AVX-512 on this processor"
        if not kernels.VECTOR_BITS
        else f"{kernels.VECTOR_BITS}-bit vectors; " + where(ConvPool, "not in this model")
    )
    return [
        Speedup("first Conv2D + 2×2 MaxPool2D fused", compiled and bool(kernels.VECTOR_BITS), fused_why.rstrip("; ")),
        Speedup(
            "ReLU + 2×2 MaxPool2D after a deeper Conv2D fused",
            compiled,
            off or where(ConvReluPool, "not in this model"),
        ),
        Speedup(
            f"Dense with ≥ {ONEDNN_DENSE_MIN_INPUTS:,} inputs and ≥ {ONEDNN_DENSE_MIN_WEIGHTS:,} weights "
            "through oneDNN",
            ONEDNN_DENSE_DETOUR,
            "off: MKL's torch.mm is faster on Intel processors"
            if not ONEDNN_DENSE_DETOUR
            else "CPU tensors; " + where(OneDnnDense, "not in this model")
            if model is not None
            else "CPU tensors",
        ),
        Speedup("Dropout masks from a parallel hash", compiled, off or where(HashedDropout, "not in this model")),
        Speedup("RMSprop in one pass", compiled, off or "float32 CPU weights"),
    ]


def format_speedups(items: list[Speedup]) -> str:
    """One line each: ``  on   Dropout masks from a parallel hash (in this model: dropout)``."""
    return "\n".join(f"  {'on ' if s.on else 'off'}  {s.name}{f' ({s.why})' if s.why else ''}" for s in items)
