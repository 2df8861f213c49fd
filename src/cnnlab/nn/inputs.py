"""The one conversion from stored images to what a model takes.

Datasets keep images as uint8 ``(N, H, W, C)`` (Keras's channels-last order, 1 byte a pixel); models
take float32 ``(B, C, H, W)`` scaled to [0, 1]. Float images are taken as already scaled (what Keras code
passes after ``x.astype('float32') / 255``), and vectors ``(B, F)`` keep their shape. Training, evaluation,
prediction, the pages and the lab all convert through here, so a picture becomes the same tensor wherever it goes.
"""

from __future__ import annotations

import torch


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, H, W, C) -> float32 (B, C, H, W) in [0, 1], stored channels_last (no copy of the layout).

    Float images (B, H, W, C) only change axes (and to float32); vectors (B, F) only their dtype, scaled as images.
    """
    batch = images.permute(0, 3, 1, 2) if images.dim() == 4 else images
    return batch.float().div_(255.0) if images.dtype == torch.uint8 else batch.float()
