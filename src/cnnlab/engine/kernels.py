"""cnnlab's compiled CPU kernels (``csrc/kernels.cpp``), and which tensors each can take.

Four places in the course's training steps spend far more time than their arithmetic needs on a CPU:
the first convolution with the 2×2 max-pool after it (the convolution's full-size output exists only
to be pooled), the ReLU and 2×2 max-pool after a deeper convolution (torch passes over its output four
times), RMSprop (torch's foreach kernels pass over the weights five times), and dropout (torch draws its
random numbers one after another). The compiled module does each in one parallel pass.

It is optional: setup.py builds it when a C++ compiler and torch are there, and without it every model
runs on torch's own operators, with the same math: sums in another order (equal to 1e-5, tested), and
dropout masks from the same distribution, drawn from another random stream. The fused convolution has
vector code for x86-64 processors with AVX-512 or AVX2 (``VECTOR_BITS``); on others it is left out.

``CNNLAB_KERNELS=off`` in the environment switches the kernels off (for side-by-side timings).
Which layers of a model use them is decided in ``cnnlab.engine.accelerate``.
"""

from __future__ import annotations

import os

import torch

try:
    from cnnlab.engine import _kernels

    WHY_OFF = "switched off by CNNLAB_KERNELS=off" if os.environ.get("CNNLAB_KERNELS") == "off" else None
    # the fused convolution's vector code: 512 (AVX-512), 256 (AVX2), or 0 where it has none and torch is faster
    VECTOR_BITS = _kernels.widest_vectors()
except ImportError as error:  # not built (no compiler, or torch missing at install) or built for another torch
    _kernels, VECTOR_BITS = None, 0
    WHY_OFF = f"not built or not loadable ({error}); with a C++ compiler, run scripts/setup.sh again"

FUSED_FILTERS = (8, 16, 24, 32, 48, 64)  # the filter counts kernels.cpp has vector code for
MAX_TAPS = 64  # kernel rows × columns × input channels: a first layer's, not a deep layer's


def status() -> str:
    if WHY_OFF is not None:
        return f"off: {WHY_OFF}"
    return f"on ({VECTOR_BITS}-bit vectors)" if VECTOR_BITS else "on (no fused convolution: no AVX2 on this processor)"


def eager_cpu_float(x: torch.Tensor) -> bool:
    """A float32 CPU tensor in eager mode: exported and traced graphs keep torch's operators."""
    return (
        WHY_OFF is None
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    )


def _dense(t: torch.Tensor) -> bool:  # one block of memory, in torch's default or channels_last order
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


class ConvPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, relu: bool):  # x (B, C, H, W) channels_last -> (B, F, H', W') channels_last
        images = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, C): a view when x is channels_last
        kernel = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()  # (KH·KW·C, F)
        out, which = _kernels.conv_pool_forward(
            images, kernel, bias, weight.shape[2], weight.shape[3], relu, VECTOR_BITS
        )
        ctx.save_for_backward(images, which)
        ctx.shape, ctx.with_bias = weight.shape, ctx.needs_input_grad[2]
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):  # grad (B, F, H', W') -> gradients of weight and bias (the input needs none)
        images, which = ctx.saved_tensors
        filters, channels, rows, columns = ctx.shape
        grad_kernel, grad_bias = _kernels.conv_pool_backward(
            grad.permute(0, 2, 3, 1).contiguous(), images, which, rows, columns, VECTOR_BITS
        )
        grad_weight = grad_kernel.reshape(rows, columns, channels, filters).permute(3, 2, 0, 1)
        return None, grad_weight, grad_bias if ctx.with_bias else None, None


class _ReluPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, relu: bool):  # x (B, C, H, W) channels_last -> (B, C, H // 2, W // 2) channels_last
        images = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, C): a view when x is channels_last
        out, which = _kernels.relu_pool_forward(images, relu)
        ctx.save_for_backward(which)
        ctx.size = images.shape[1:3]
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):  # grad (B, C, H', W') -> the input's gradient (B, C, H, W), channels_last
        (which,) = ctx.saved_tensors
        images = _kernels.relu_pool_backward(grad.permute(0, 2, 3, 1).contiguous(), which, *ctx.size)
        return images.permute(0, 3, 1, 2), None


def relu_pool_applies(x: torch.Tensor) -> bool:  # a conv's output: (B, C, H, W) with at least one 2×2 window
    return eager_cpu_float(x) and x.dim() == 4 and x.shape[2] >= 2 and x.shape[3] >= 2


def relu_pool(x: torch.Tensor, relu: bool) -> torch.Tensor:
    """MaxPool2D(2) [then ReLU]: F.max_pool2d(x, 2) [.relu()] in one pass each way (input gradients too)."""
    return _ReluPoolFunction.apply(x, relu)


def rmsprop_applies(params, grads, velocities) -> bool:
    """Dense float32 CPU tensors whose gradient and velocity are laid out as the parameter is."""
    return WHY_OFF is None and all(
        p.device.type == "cpu"
        and p.dtype == g.dtype == v.dtype == torch.float32
        and g.stride() == v.stride() == p.stride()
        and _dense(p)
        for p, g, v in zip(params, grads, velocities)
    )


def rmsprop_step(params, grads, velocities, lr: float, rho: float, epsilon: float, weight_decay: float) -> None:
    """Keras's RMSprop update of every parameter in one pass each (see cnnlab.training.optimizers.KerasRMSprop)."""
    _kernels.rmsprop_step(params, grads, velocities, lr, rho, epsilon, weight_decay)


class _DropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rate: float):
        seed = int(
            torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64)
        )  # from torch's generator: manual_seed holds
        y, kept = _kernels.dropout_forward(x, 1.0 - rate, seed)
        ctx.save_for_backward(kept)
        ctx.scale = 1.0 / (1.0 - rate)
        return y

    @staticmethod
    def backward(ctx, grad):
        (kept,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, kept, ctx.scale), None  # grad · kept · scale


def dropout_applies(x: torch.Tensor) -> bool:
    return eager_cpu_float(x) and _dense(x) and x.numel() <= 2**32  # the hash counts positions in 32 bits


def dropout(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Training-time dropout: zero each value with probability ``rate``, scale the rest by 1 / (1 - rate)."""
    return _DropoutFunction.apply(x, rate)
