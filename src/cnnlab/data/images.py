"""The one picture reader: every image cnnlab opens (folder datasets, predict, serve, the lab) comes through here.

``open_image`` decodes a file or its bytes the same way for everyone: PNG, JPEG, BMP, GIF or WebP only,
upright as the camera saw it (EXIF orientation), 8 bits per channel (16-bit gray scaled, not clipped),
reduced to at most 1024 pixels a side, with a limit on the pixels decoded (decompression bombs).
``fit_picture`` makes it the size and channels a model takes: transparency flattened onto a background
the drawing stands out from, then one bilinear resize. ``read_picture`` is the two in one, what a
folder dataset does for each file, so a model sees the same pixels for a file at training and at predict.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlab.errors import CnnlabError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # Pillow is never asked to try any other decoder
MAX_PIXELS = 50_000_000  # width × height decoded at most (a 50-megapixel photo); beyond: a decompression bomb?
WORKING_SIDE = 1024  # pictures are reduced to this longest side first: a model's input is far smaller


class PictureError(CnnlabError):
    """A picture that cannot be read; ``reason`` says why in a few words (for lists of skipped files)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def open_image(source: str | Path | bytes, name: str | None = None, max_side: int | None = WORKING_SIDE) -> Image.Image:
    """Decode a PNG, JPEG, BMP, GIF or WebP (a path or its bytes), reduced to at most ``max_side`` a side
    (None: full size), upright as the camera saw it, 8 bits per channel.

    Every problem is a CnnlabError naming ``name`` (default: the path): not an image, damaged, too many pixels.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "image")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's own pixel limit: refuse, never decode
        try:
            with Image.open(stream, formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{width}×{height} pixels")
                if max_side is not None:
                    image.draft(image.mode, (max_side, max_side))  # JPEG: decode at a reduced scale, fast
                image = _eight_bit(ImageOps.exif_transpose(image))  # a copy, decoded: phone photos made upright
                if max_side is not None:
                    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                return image
        except UnidentifiedImageError:
            raise PictureError(
                f"{name}: not an image cnnlab can read; use {', '.join(IMAGE_FORMATS)}", "not an image"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as problem:
            raise PictureError(
                f"{name}: too many pixels ({problem}); a possible decompression bomb. cnnlab decodes "
                f"at most {MAX_PIXELS:,}: scale the picture down",
                "too many pixels: a possible decompression bomb",
            ) from None
        except OSError as problem:
            if problem.errno is not None:  # from the file system: missing, a folder, no permission
                raise PictureError(
                    f"{name}: cannot read it ({problem.strerror})", f"cannot read it: {problem.strerror}"
                ) from None
            raise PictureError(f"{name}: damaged image ({problem}); save it again", f"damaged: {problem}") from None
        except (SyntaxError, ValueError, EOFError, struct.error, zlib.error) as problem:  # Pillow's decoders' too
            raise PictureError(f"{name}: damaged image ({problem}); save it again", f"damaged: {problem}") from None


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit gray (PNG): scaled to 0..255 here, because Pillow's own conversion clips everything above 255."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).round().astype(np.uint8))
    return image


def flatten_alpha(image: Image.Image) -> Image.Image:
    """RGB, transparent pixels made background: white behind dark ink, black behind light ink."""
    rgba = image.convert("RGBA")
    pixels = np.asarray(rgba, dtype=np.float32)  # (H, W, 4)
    opacity = pixels[..., 3] / 255.0
    if opacity.min() == 1.0:
        return rgba.convert("RGB")
    brightness = pixels[..., :3].mean(-1)
    drawn_brightness = (brightness * opacity).sum() / max(opacity.sum(), 1e-6)  # what the opaque pixels show
    background = (255, 255, 255, 255) if drawn_brightness < 128 else (0, 0, 0, 255)
    return Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba).convert("RGB")


def fit_picture(image: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """``image`` as uint8 (H, W, C) for ``size`` (H, W) and 1 (gray) or 3 (RGB) ``channels``."""
    height, width = size
    mode = "L" if channels == 1 else "RGB"
    # BILINEAR: Pillow widens the filter when shrinking, so it averages rather than aliases
    resized = flatten_alpha(image).convert(mode).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized).reshape(height, width, channels)


def read_picture(source: str | Path | bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """A picture file (or its bytes) as uint8 (H, W, C): ``open_image``, then ``fit_picture``."""
    return fit_picture(open_image(source), size, channels)
