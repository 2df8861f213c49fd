"""The convolution lab: what a Conv2D or a pooling layer computes, on plain NumPy arrays.

Every result equals what Keras (TensorFlow) returns for the same weights:

* `convolve` is a cross-correlation (the kernel is not flipped), like Conv2D and torch's conv2d.
  `convolve1d` is a true convolution (the kernel is flipped), like ``np.convolve`` in the course.
* padding="same" pads like TensorFlow: max((ceil(n / s) - 1) * s + k - n, 0) pixels per axis in
  total, half before and the odd one after (bottom/right), so the output has ceil(n / s) pixels.
* Pooling never counts padding: "same" max pooling ignores it, "same" average pooling divides by
  the number of real pixels in each window; "valid" pooling drops what does not fill a window.

Arrays are (H, W) or (H, W, C). Image files and the default photo are read as float32 in [0, 1]
(the course's ``x / 255``), what a Keras model is fed. Results are float64. No torch needed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from matplotlib import cbook
from matplotlib.figure import Figure
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from cnnlab.data.images import open_image
from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic
from cnnlab.lab.plots import save_figure

PADDINGS = ("valid", "same")
POOLS = ("max", "avg")
FORMULA = "out = floor((in + pad − k) / s) + 1"  # the output size of a sliding window, as Keras computes it
PANEL_INCHES = 4.0  # each picture of a figure gets a 4 × 4 inch panel ...
DPI = 100  # ... of 400 × 400 pixels in the PNG
DEFAULT_PHOTO = "grace_hopper.jpg"  # a real photograph in matplotlib's sample data


# ---------------------------------------------------------------------------------- arguments


def _is_positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _positive_pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ 1, as (rows, cols)."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(_is_positive_int(v) for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them. Received: {name}={value!r}")
    return int(pair[0]), int(pair[1])


def _as_real_array(values, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """``values`` as float64, checked to be non-empty, of bools, ints or floats, and of an allowed rank."""
    array = np.asarray(values)
    if array.ndim not in ndims or array.size == 0 or array.dtype.kind not in "biuf":
        ranks = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(
            f"{name} must be a non-empty {ranks} array of real numbers. "
            f"Received: {name} of shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.float64)


def _as_kernel(kernel) -> np.ndarray:
    """The kernel as float64 (kh, kw) or (kh, kw, C), checked to hold finite numbers."""
    weights = _as_real_array(kernel, "kernel", (2, 3))
    if not np.isfinite(weights).all():
        bad = int((~np.isfinite(weights)).sum())
        raise ValueError(f"kernel must hold finite numbers. Received: a kernel with {bad} NaN or infinite values")
    return weights


# ---------------------------------------------------------------------------------- sizes


def output_size(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """Pixels along one axis after a k-wide window with stride s: ``(out, pad_total)``.

    out = floor((n + pad_total - k) / s) + 1, where "valid" adds no padding and "same" adds
    TensorFlow's max((ceil(n / s) - 1) * s + k - n, 0), which makes out = ceil(n / s).
    """
    for name, value in (("n", n), ("k", k), ("s", s)):
        if not _is_positive_int(value):
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
    if padding == "same":
        pad_total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    elif k > n:
        raise ValueError(
            f"a {k}-pixel window does not fit in {n} pixels with padding='valid'; "
            f"use padding='same' or a smaller window. Received: n={n}, k={k}"
        )
    else:
        pad_total = 0
    return (n + pad_total - k) // s + 1, pad_total


def _windows(
    planes: np.ndarray, window: tuple[int, int], stride: tuple[int, int], padding: str, fill: float
) -> np.ndarray:
    """Every window the layer looks at, (H', W', C, kh, kw): a view of the padded planes."""
    widths = []
    for n, k, s in zip(planes.shape[:2], window, stride):
        _, pad_total = output_size(n, k, s, padding)
        widths.append((pad_total // 2, pad_total - pad_total // 2))  # the odd pixel goes after
    padded = np.pad(planes, widths + [(0, 0)], constant_values=fill)  # (H + pad, W + pad, C)
    rows, cols = stride
    return sliding_window_view(padded, window, axis=(0, 1))[::rows, ::cols]


# ---------------------------------------------------------------------------------- operations


def convolve(image, kernel, stride=(1, 1), padding: str = "valid", per_channel: bool = False) -> np.ndarray:
    """What ``Conv2D(1, kernel.shape[:2], strides=stride, padding=padding, use_bias=False)`` returns.

    A cross-correlation: output[y, x] = sum(window * kernel), the kernel not flipped. For an
    (H, W, C) image a 2-D kernel is applied to every channel and a (kh, kw, C) kernel gives each
    channel its own weights; the channels are summed into (H', W') as Conv2D does, or kept apart,
    (H', W', C), with ``per_channel=True``. A 2-D image gives (H', W').
    """
    planes = _as_real_array(image, "image", (2, 3))
    planes = planes if planes.ndim == 3 else planes[:, :, None]  # (H, W, C)
    weights = _as_kernel(kernel)
    if weights.ndim == 2:  # the same weights for every channel
        weights = np.broadcast_to(weights[:, :, None], weights.shape + planes.shape[2:])
    elif weights.shape[2] != planes.shape[2]:
        raise ValueError(
            f"a 3-D kernel needs one (kh, kw) slice per image channel ({planes.shape[2]}). "
            f"Received: kernel of shape {weights.shape}"
        )
    windows = _windows(planes, weights.shape[:2], _positive_pair(stride, "stride"), padding, fill=0.0)
    if per_channel and np.ndim(image) == 3:
        return np.einsum("yxcij,ijc->yxc", windows, weights)  # (H', W', C)
    return np.einsum("yxcij,ijc->yx", windows, weights)  # (H', W')


def pool(image, size, kind: str = "max", stride=None, padding: str = "valid") -> np.ndarray:
    """What ``MaxPool2D`` / ``AvgPool2D(size, strides=stride, padding=padding)`` returns.

    Each channel is pooled on its own; the stride defaults to the pool size, as in Keras.
    Returns an array of the image's rank: (H', W') or (H', W', C).
    """
    if kind not in POOLS:
        raise ValueError(f"kind must be 'max' or 'avg'. Received: kind={kind!r}")
    window = _positive_pair(size, "size")
    steps = window if stride is None else _positive_pair(stride, "stride")
    planes = _as_real_array(image, "image", (2, 3))
    planes = planes if planes.ndim == 3 else planes[:, :, None]  # (H, W, C)
    if kind == "max":  # padding of -inf never wins a maximum
        pooled = _windows(planes, window, steps, padding, fill=-np.inf).max(axis=(-2, -1))
    else:  # the sum of the real pixels over how many real pixels each window holds
        sums = _windows(planes, window, steps, padding, fill=0.0).sum(axis=(-2, -1))
        counts = _windows(np.ones_like(planes[:, :, :1]), window, steps, padding, fill=0.0)
        pooled = sums / counts.sum(axis=(-2, -1))
    return pooled if np.ndim(image) == 3 else pooled[:, :, 0]  # (H', W', C) or (H', W')


def convolve1d(signal, kernel) -> np.ndarray:
    """``np.convolve(signal, kernel)`` ("full" mode): a true convolution, the kernel flipped.

    The output has len(signal) + len(kernel) - 1 values. With the course's step
    [0,0,0,0,0,1,1,1,1,1,0,0,0,0,0] and [-1, 1] it is -1 where the step rises, +1 where it falls.
    """
    values = _as_real_array(signal, "signal", (1,))
    weights = _as_real_array(kernel, "kernel", (1,))
    padded = np.pad(values, len(weights) - 1)  # zeros, so that every partial overlap is counted
    return sliding_window_view(padded, len(weights)) @ weights[::-1]  # flipped: a convolution


# ---------------------------------------------------------------------------------- kernels

_FIXED_KERNELS = {
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "sobel-x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "sobel-y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}

KERNELS = {  # name -> what it does (a cross-correlation, so "left minus right" is literal)
    "identity": "1 at the centre: the image unchanged (odd sizes only)",
    "box": "all ones: the course's blur (each pixel becomes the sum of k×k pixels)",
    "mean": "all 1/k²: a blur that keeps the brightness",
    "gaussian": "binomial weights (1 2 1, 1 4 6 4 1, ...) summing to 1: a softer blur",
    "sharpen": "5 at the centre, -1 at the four neighbours",
    "sobel-x": "vertical edges: left minus right",
    "sobel-y": "horizontal edges: top minus bottom, the course's [[1,2,1],[0,0,0],[-1,-2,-1]]",
    "laplacian": "edges in every direction: the four neighbours minus 4 × the centre",
    "emboss": "relief: bottom right minus top left",
    "random": "glorot-uniform weights, as an untrained Conv2D(1, (k, k)) starts (seeded)",
}


def make_kernel(name: str, size: int | None = None, seed: int = 0) -> np.ndarray:
    """The named kernel of KERNELS as a (size, size) float64 array; ``size`` defaults to 3.

    sharpen, sobel-x, sobel-y, laplacian and emboss are fixed 3 × 3 kernels; identity needs an
    odd size (it has a centre pixel); the others take any size, even ones too, as Keras does.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel; choose one of {', '.join(KERNELS)}. Received: name={name!r}")
    if name in _FIXED_KERNELS:
        if size not in (None, 3):
            raise ValueError(f"{name} is a fixed 3×3 kernel; leave the size out. Received: kernel_size={size}")
        return np.array(_FIXED_KERNELS[name], dtype=np.float64)
    size = 3 if size is None else _positive_pair(size, "kernel_size")[0]
    if name == "identity":
        if size % 2 == 0:
            raise ValueError(f"identity needs an odd size to have a centre pixel. Received: kernel_size={size}")
        kernel = np.zeros((size, size))
        kernel[size // 2, size // 2] = 1.0
        return kernel
    if name == "box":
        return np.ones((size, size))
    if name == "mean":
        return np.full((size, size), 1.0 / size**2)
    if name == "gaussian":
        row = np.array([math.comb(size - 1, i) for i in range(size)], dtype=np.float64)  # Pascal's row
        return np.outer(row, row) / row.sum() ** 2
    # Keras's glorot-uniform limit for one input and one output channel: sqrt(6 / (fan_in + fan_out))
    limit = math.sqrt(6.0 / (2 * size * size))
    return np.random.default_rng(seed).uniform(-limit, limit, (size, size))


def parse_kernel(spec: str, size: int | None = None, seed: int = 0) -> tuple[str, np.ndarray]:
    """A kernel as people type it: ``(label, weights)``, checked (a ValueError means bad numbers).

    ``spec`` is a name of KERNELS, a matrix with rows separated by ';' and values by ','
    ("1,2,1;0,0,0;-1,-2,-1"), a .npy file (2-D or (kh, kw, C)) or a .txt file (rows of numbers).
    ``size`` and ``seed`` are for named kernels only.
    """
    if spec in KERNELS:
        return spec, make_kernel(spec, size, seed)
    if size is not None:
        raise CnnlabError(f"--kernel-size: only named kernels take a size; {spec!r} has its own; leave it out")
    path = Path(spec)
    if path.suffix.lower() in (".npy", ".txt"):
        return path.name, _as_kernel(_read_kernel_file(path))
    try:
        rows = [[float(value) for value in row.split(",")] for row in spec.split(";")]
    except ValueError:
        raise CnnlabError(
            f"--kernel {spec!r}: not a kernel name, a matrix or a .npy/.txt file; use one of "
            f"{', '.join(KERNELS)}, a matrix like '1,2,1;0,0,0;-1,-2,-1', or a file"
        ) from None
    if len({len(row) for row in rows}) > 1:
        lengths = ", ".join(str(len(row)) for row in rows)
        raise CnnlabError(
            f"--kernel {spec!r}: its rows have {lengths} values; give every row "
            "(rows end with ';') as many values (separated by ',')"
        )
    return "matrix", _as_kernel(rows)


def _read_kernel_file(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)  # never unpickle a file handed to us
        # rows of numbers separated by spaces, as np.savetxt writes them (commas allowed too)
        return np.loadtxt(path.read_text().replace(",", " ").splitlines(), ndmin=2)
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such kernel file; check the path") from None
    except (OSError, ValueError) as problem:
        raise CnnlabError(
            f"{path}: cannot read a kernel from it ({problem}); write one with np.save or np.savetxt"
        ) from None


# ---------------------------------------------------------------------------------- images


def load_image(path) -> np.ndarray:
    """An image file at full size as float32 in [0, 1]: (H, W) if grayscale, else (H, W, 3) (alpha dropped)."""
    picture = open_image(path, max_side=None)  # the one reader, and its checks, of every picture cnnlab opens
    gray = picture.getbands() in (("1",), ("L",), ("L", "A"), ("I",), ("F",))
    return np.asarray(picture.convert("L" if gray else "RGB")).astype(np.float32) / 255.0


def default_photo(size: int = 512) -> np.ndarray:
    """The lab's default picture, (size, size) float32 in [0, 1]: matplotlib's photograph of
    Grace Hopper, cropped to its centre square and made gray, as big as the course's image."""
    with Image.open(cbook.get_sample_data(DEFAULT_PHOTO, asfileobj=False)) as photo:
        width, height = photo.size  # 512 × 600
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).convert("L")
    if side != size:
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(square).astype(np.float32) / 255.0


def random_color_image(seed: int = 0, size: int = 4) -> np.ndarray:
    """The course's random colour image: (size, size, 3) float32, uniform in [0, 1)."""
    return np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


def channel_names(count: int) -> list[str]:
    """What to call the channels of an (H, W, count) array: red, green, blue for three."""
    return ["red", "green", "blue"] if count == 3 else [f"channel {c}" for c in range(count)]


def format_shape(shape: tuple[int, ...]) -> str:
    """(255, 510) -> '255×510', as the lab prints shapes."""
    return "×".join(str(n) for n in shape)


# ---------------------------------------------------------------------------------- pictures


def _show(axes, picture: np.ndarray, title: str) -> None:
    """One panel: colour as it is; a plane in gray, or blue/white/red around 0 if it has both signs.

    matplotlib's default interpolation draws small arrays with one square per pixel ("nearest")
    and smooths photos that are shrunk to fit.
    """
    if picture.ndim == 3:
        axes.imshow(np.clip(picture, 0.0, 1.0))
    else:
        low, high = float(picture.min()), float(picture.max())
        if low < 0.0 < high:  # edges: negative blue, zero white, positive red
            # the strongest 0.5 % saturate, so that a few extremes do not wash the other edges out
            limit = float(np.percentile(np.abs(picture), 99.5)) or max(-low, high)
            shown = axes.imshow(picture, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            shown = axes.imshow(picture, cmap="gray", vmin=low, vmax=high)
        axes.figure.colorbar(shown, ax=axes, shrink=0.75)
    axes.set_title(title, fontsize=10)
    axes.set_axis_off()


def draw_filter(image: np.ndarray, output: np.ndarray, description: str = "", out=None) -> Figure:
    """The input and the output side by side, shapes in the titles; an (H, W, C) output gets a
    panel per channel. ``description`` (kernel, stride, pooling) goes under the output titles."""
    if output.ndim == 2:
        planes, names = [output], ["output"]
    else:
        planes = [output[:, :, c] for c in range(output.shape[2])]
        names = [f"output, {name}" for name in channel_names(output.shape[2])]
    figure = Figure(figsize=(PANEL_INCHES * (1 + len(planes)), PANEL_INCHES), dpi=DPI, layout="constrained")
    panels = figure.subplots(1, 1 + len(planes), squeeze=False)[0]
    _show(panels[0], image, f"input {format_shape(image.shape)}")
    for axes, plane, name in zip(panels[1:], planes, names):
        _show(axes, plane, f"{name} {format_shape(plane.shape)}\n{description}".strip())
    if out is not None:
        save_figure(figure, out)
    return figure


def draw_channels(image: np.ndarray, out=None) -> Figure:
    """The course's colour picture: the image combined, then its red, green and blue planes."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB. Received: image of shape {image.shape}")
    figure = Figure(figsize=(2 * PANEL_INCHES, 2 * PANEL_INCHES), dpi=DPI, layout="constrained")
    panels = figure.subplots(2, 2).ravel()
    panels[0].imshow(np.clip(image, 0.0, 1.0))
    panels[0].set_title(f"all channels combined {format_shape(image.shape)}")
    colormaps = ("Reds", "Greens", "Blues")  # white at 0, the full colour at 1
    for channel, (axes, name, colormap) in enumerate(zip(panels[1:], channel_names(3), colormaps)):
        axes.imshow(image[:, :, channel], cmap=colormap, vmin=0.0, vmax=1.0)
        axes.set_title(f"{name} channel {format_shape(image.shape[:2])}")
    for axes in panels:
        axes.set_axis_off()
    if out is not None:
        save_figure(figure, out)
    return figure


# ---------------------------------------------------------------------------------- files


def save_array(array: np.ndarray, path) -> None:
    """The array as a .npy file (np.load reads it back), written atomically; never pickled."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)  # object arrays fail here, before any file is touched
    write_atomic(path, buffer.getvalue())
