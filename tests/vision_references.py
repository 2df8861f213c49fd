"""Independent references for cnnlab.vision: TensorFlow's padding rule written out, scipy's
correlate2d on an explicitly padded image, and a plain loop over pooling windows."""

from __future__ import annotations

import numpy as np
import scipy.signal


def tf_padding(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(out, before, after) as TensorFlow's documentation defines them, written out independently."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def reference_convolve(image, kernel, stride, padding, per_channel=False):
    """scipy's valid cross-correlation of the explicitly padded image, then strided slicing."""
    planes = image if image.ndim == 3 else image[:, :, None]
    weights = kernel if kernel.ndim == 3 else np.stack([kernel] * planes.shape[2], axis=2)
    pads = [tf_padding(n, k, s, padding)[1:] for n, k, s in zip(planes.shape, kernel.shape, stride)]
    padded = np.pad(planes, pads + [(0, 0)])
    each = np.stack(
        [scipy.signal.correlate2d(padded[:, :, c], weights[:, :, c], mode="valid") for c in range(planes.shape[2])],
        axis=2,
    )[:: stride[0], :: stride[1]]
    return each if (per_channel and image.ndim == 3) else each.sum(axis=2)


def reference_pool(image, size, kind, stride, padding):
    """A loop over output pixels; each window clipped to the real pixels (no padding at all)."""
    planes = image if image.ndim == 3 else image[:, :, None]
    (rows, top, _), (cols, left, _) = (tf_padding(n, k, s, padding) for n, k, s in zip(planes.shape, size, stride))
    result = np.empty((rows, cols, planes.shape[2]))
    for i in range(rows):
        for j in range(cols):
            y, x = i * stride[0] - top, j * stride[1] - left
            block = planes[max(y, 0) : y + size[0], max(x, 0) : x + size[1]]
            result[i, j] = block.max(axis=(0, 1)) if kind == "max" else block.mean(axis=(0, 1))
    return result if image.ndim == 3 else result[:, :, 0]
