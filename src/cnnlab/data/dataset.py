"""The shape of every dataset in cnnlab: ``Dataset`` (train and test arrays), ``DatasetInfo``, and label helpers.

Images are NumPy ``uint8`` arrays shaped ``(N, H, W, C)`` (Keras's channels-last order; C is 1 for
gray), labels ``int64`` ``(N,)``; ``cnnlab.nn.inputs`` turns a batch into what a model takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DIGITS = [str(digit) for digit in range(10)]


@dataclass
class Dataset:
    """Train and test splits: ``uint8`` images ``(N, H, W, C)`` and ``int64`` labels ``(N,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str  # the folder or file the data was read from
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files left out, and why

    def __post_init__(self) -> None:
        for images, labels in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if not (
                images.dtype == np.uint8
                and images.ndim == 4
                and images.shape[1:] == self.x_train.shape[1:]
                and labels.dtype == np.int64
                and labels.shape == images.shape[:1]
            ):
                raise ValueError(
                    "A Dataset needs uint8 (N, H, W, C) images of one shape and int64 (N,) labels. "
                    f"Received: images {images.dtype} {images.shape}, "
                    f"labels {labels.dtype} {labels.shape}"
                )

    def skipped_message(self, limit: int = 5) -> str:
        """``skipped 3 unreadable files: a.png (not an image), ...``, or '' when nothing was skipped."""
        if not self.skipped:
            return ""
        shown = ", ".join(
            f"{path.relative_to(self.source) if path.is_relative_to(self.source) else path} ({reason})"
            for path, reason in self.skipped[:limit]
        )
        more = f", and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        plural = "s" if len(self.skipped) > 1 else ""
        return f"skipped {len(self.skipped)} unreadable file{plural}: {shown}{more}"


@dataclass(frozen=True)
class DatasetInfo:
    """What ``list_datasets`` knows about a dataset without loading it."""

    name: str
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_classes: int
    train_size: int
    test_size: int
    location: str  # where it is read from, or how to get it


def to_categorical(y, num_classes: int | None = None) -> np.ndarray:
    """One-hot float32 rows for integer labels, as Keras's ``to_categorical``: shape ``y.shape + (classes,)``."""
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:  # Keras drops a trailing axis of 1: (N, 1) -> (N, classes)
        labels = labels[..., 0]
    if labels.dtype.kind not in "iu" or labels.min(initial=0) < 0:
        raise ValueError(
            f"to_categorical needs non-negative integer labels. Received: {labels.dtype} labels, "
            f"min {labels.min(initial=0)}"
        )
    labels = labels.astype(np.int64, copy=False)  # uint8 labels (Keras's datasets) cannot hold the -1 below
    num_classes = int(labels.max(initial=-1)) + 1 if num_classes is None else num_classes
    if labels.max(initial=-1) >= num_classes:
        raise ValueError(f"Labels must be < num_classes. Received: num_classes={num_classes}, max label {labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]
