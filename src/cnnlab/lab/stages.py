"""What the lab page shows, computed by ``cnnlab.lab.vision``: a Conv2D, then optionally a pooling layer.

``filter_picture`` turns a picture and the page's knobs into the answer of ``POST /api/lab/filter``:
each stage with the numbers of ``out = floor((in + pad − k) / s) + 1`` along rows and columns, the
output's shape and value range, and the output drawn as PNG data URLs. ``step_crop`` gives the raw
numbers of a small crop, for the page's step-by-step mode (the kernel slid cell by cell).

A colour picture is filtered in one of three ways: ``gray`` (made gray first, one plane), ``sum``
(each of the three planes with its own kernel, the results summed: a Conv2D with three input
channels) or ``per-channel`` (the same, the three results shown apart).
"""

from __future__ import annotations

import numpy as np

from cnnlab.lab import vision
from cnnlab.lab.pictures import display_rule, png_data_url

COLOUR_MODES = ("gray", "sum", "per-channel")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, the weights of PIL's convert("L")


class SettingError(ValueError):
    """A knob the lab cannot use; ``field`` names the part of the request it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def prepared_input(pixels: np.ndarray, colour: str) -> np.ndarray:
    """The array the first stage sees: a gray picture as it is, a colour one made gray or kept (H, W, 3)."""
    if colour not in COLOUR_MODES:
        raise SettingError("colour", f"colour must be one of {', '.join(COLOUR_MODES)}. Received: {colour!r}")
    if pixels.ndim == 3 and colour == "gray":
        return pixels @ LUMA.astype(pixels.dtype)  # (H, W)
    return pixels


def stacked_kernel(kernel: list | None, channel_kernels: list[list] | None, image: np.ndarray) -> np.ndarray | None:
    """The weights as float64: (kh, kw) for every channel, (kh, kw, C) from one kernel per channel of a
    colour input, or None (no convolution: pooling only)."""
    if channel_kernels is None:
        return None if kernel is None else np.asarray(kernel, dtype=np.float64)
    if image.ndim != 3 or len(channel_kernels) != image.shape[2]:
        planes = 1 if image.ndim == 2 else image.shape[2]
        raise SettingError(
            "channel_kernels",
            f"one kernel per channel: this input has {planes} plane(s). Received: {len(channel_kernels)} kernels",
        )
    weights = [np.asarray(grid, dtype=np.float64) for grid in channel_kernels]
    if len({grid.shape for grid in weights}) > 1:
        shapes = ", ".join(vision.format_shape(grid.shape) for grid in weights)
        raise SettingError("channel_kernels", f"every channel's kernel must have the same size. Received: {shapes}")
    return np.stack(weights, axis=2)


def stage(name: str, shape: tuple[int, ...], window, stride, padding: str, field: str) -> dict:
    """One layer's sizes: per axis n (in), pad (total), k, s and out of out = floor((n + pad − k) / s) + 1."""
    try:
        axes = []
        for axis, n, k, s in zip(("rows", "cols"), shape[:2], window, stride):
            out, pad = vision.output_size(n, k, s, padding)
            axes.append({"axis": axis, "n": n, "pad": pad, "k": k, "s": s, "out": out})
    except ValueError as problem:
        raise SettingError(field, f"{name}: {problem}") from None
    return {
        "name": name,
        "window": list(window),
        "stride": list(stride),
        "padding": padding,
        "input_shape": list(shape),
        "axes": axes,
    }


def filter_picture(
    pixels: np.ndarray,
    kernel: list | None = None,
    channel_kernels: list[list] | None = None,
    stride=(1, 1),
    padding: str = "valid",
    pool: tuple[str, tuple[int, int]] | None = None,
    colour: str = "gray",
    step: tuple[int, int, int] | None = None,
) -> dict:
    """The page's answer: the stages, the output (shape, range, pictures), the array itself (``values``)
    and, with ``step`` = (top, left, size) and a kernel, the numbers of the step-by-step crop."""
    image = prepared_input(pixels, colour)
    weights = stacked_kernel(kernel, channel_kernels, image)
    result, stages = image, []
    if weights is not None:
        stages.append(stage("convolution", image.shape, weights.shape[:2], stride, padding, "kernel"))
        result = vision.convolve(image, weights, stride=stride, padding=padding, per_channel=colour == "per-channel")
        stages[-1]["output_shape"] = list(result.shape)  # (H', W'): the planes summed, or (H', W', C) kept apart
    if pool is not None:
        kind, size = pool  # the stride is the pool size and the padding valid: Keras's defaults, as `cnnlab filter`
        stages.append(stage(f"{kind} pooling", result.shape, size, size, "valid", "pool"))
        result = vision.pool(result, size, kind=kind)
        stages[-1]["output_shape"] = list(result.shape)
    planes = [result] if result.ndim == 2 else [result[:, :, c] for c in range(result.shape[2])]
    names = ["output"] if result.ndim == 2 else vision.channel_names(result.shape[2])
    crop = None if step is None or weights is None else step_crop(image, weights, stride, padding, *step)
    return {
        "input_shape": list(image.shape),
        "stages": stages,
        "output_shape": list(result.shape),
        "minimum": float(result.min()),
        "maximum": float(result.max()),
        "drawn_as": display_rule(result),
        "images": [{"name": name, "url": png_data_url(plane)} for name, plane in zip(names, planes)],
        "values": result,
        "step": crop,
    }


def step_crop(image: np.ndarray, kernel: np.ndarray, stride, padding: str, top: int, left: int, size: int) -> dict:
    """The numbers of the step-by-step mode: a size × size crop of the first stage's input at (top, left)
    (at least the kernel's size, moved inside the picture when it would stick out), filtered alone, as the
    teacher does on the board.

    ``values`` and ``kernels`` hold one grid per channel; ``output`` is what the layer computes (for a
    colour input in ``sum`` mode: the three channels summed), ``contributions`` each channel's part of it.
    """
    rows, cols = (max(size, k) for k in kernel.shape[:2])  # never smaller than the kernel: it must fit once
    top, left = (
        max(0, min(start, extent - side))
        for start, extent, side in ((top, image.shape[0], rows), (left, image.shape[1], cols))
    )
    crop = image[top : top + rows, left : left + cols]
    planes = crop if crop.ndim == 3 else crop[:, :, None]  # (h, w, C)
    weights = kernel if kernel.ndim == 3 else np.repeat(kernel[:, :, None], planes.shape[2], axis=2)
    sizes = stage("step crop", crop.shape, kernel.shape[:2], stride, padding, "step")
    contributions = vision.convolve(planes, weights, stride=stride, padding=padding, per_channel=True)
    return {
        "top": top,
        "left": left,
        "stride": list(stride),
        "pad_before": [axis["pad"] // 2 for axis in sizes["axes"]],  # TensorFlow's: the odd pixel goes after
        "pad_after": [axis["pad"] - axis["pad"] // 2 for axis in sizes["axes"]],
        "channel_names": ["gray"] if crop.ndim == 2 else vision.channel_names(planes.shape[2]),
        "values": _grids(planes),
        "kernels": _grids(weights),
        "contributions": _grids(contributions),
        "output": vision.convolve(crop, kernel, stride=stride, padding=padding).tolist(),
    }


def _grids(array: np.ndarray) -> list[list[list[float]]]:
    """(H, W, C) -> C nested lists of H rows of W numbers."""
    return [array[:, :, c].tolist() for c in range(array.shape[2])]
