"""Inside a trained model: what its conv and pooling layers compute for one input."""

from __future__ import annotations

import torch

SPATIAL_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D")


@torch.inference_mode()
def feature_maps(model, inputs: torch.Tensor, kinds=SPATIAL_LAYERS) -> list[tuple[object, torch.Tensor]]:
    """Run ``inputs`` (B, C, H, W) through ``model``; return (layer, output (B, C', H', W')) for each layer of ``kinds``."""
    model.eval()
    maps = []
    x = inputs
    for layer in model.layers:
        x = layer(x)
        if layer.type_name in kinds:
            maps.append((layer, x.float()))
    return maps
