"""Digits drawn with Pillow, shared by the preprocessing, server and browser tests."""

from __future__ import annotations

from PIL import Image, ImageDraw


def draw_digit(
    digit: int, size=(200, 200), box=(60, 30, 140, 170), width=14, ink=(0, 0, 0), paper=(255, 255, 255), mode="RGB"
) -> Image.Image:
    """A '1' (a slightly slanted vertical stroke), '0' (an ellipse) or '7' (a bar and a diagonal) inside ``box``."""
    image = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(image)
    left, top, right, bottom = box
    middle, height = (left + right) / 2, bottom - top
    if digit == 1:
        pen.line([(middle + 0.05 * height, top), (middle - 0.05 * height, bottom)], fill=ink, width=width)
    elif digit == 0:
        pen.ellipse([middle - 0.36 * height, top, middle + 0.36 * height, bottom], outline=ink, width=width)
    elif digit == 7:
        pen.line(
            [(middle - 0.3 * height, top), (middle + 0.3 * height, top), (middle - 0.1 * height, bottom)],
            fill=ink,
            width=width,
            joint="curve",
        )
    return image
