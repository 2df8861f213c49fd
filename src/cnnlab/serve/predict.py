"""A person's picture -> a trained model's answer: what the model saw and its class probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnlab.data.digits import model_input


@dataclass
class Prediction:
    """What the model saw, uint8 (H, W, C), and its class probabilities (classes,)."""

    model_input: np.ndarray
    probabilities: np.ndarray

    @property
    def label(self) -> int:
        return int(self.probabilities.argmax())


def predict_image(model, image: Image.Image) -> Prediction:
    """Prepare ``image`` for ``model`` (see ``model_input``) and return what it saw and its probabilities."""
    import torch

    from cnnlab.nn.inputs import as_model_input

    pixels = model_input(image, model.input_shape, getattr(model, "dataset", None))
    batch = as_model_input(
        torch.from_numpy(pixels[None].copy())
    )  # (1, C, H, W) in [0, 1]; Pillow's arrays are read-only
    return Prediction(pixels, model.predict_proba(batch)[0].numpy())
