"""What the drawing tests check in a PNG file: its size, and that it is not blank."""

from __future__ import annotations

import numpy as np
from PIL import Image


def png_size(path, min_colours: int = 16) -> tuple[int, int]:
    """(width, height) of a PNG holding more than ``min_colours`` different colours (so not blank)."""
    with Image.open(path) as picture:
        assert picture.format == "PNG", f"{path} is a {picture.format} file"
        pixels = np.asarray(picture.convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > min_colours, f"{path} looks blank: {colours} colours"
    return pixels.shape[1], pixels.shape[0]


def figure_pixels(figure) -> tuple[int, int]:
    """(width, height) in pixels of a figure saved at its own dpi."""
    width, height = figure.get_size_inches() * figure.dpi
    return round(width), round(height)
