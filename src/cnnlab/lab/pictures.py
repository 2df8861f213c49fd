"""The pictures of the convolution lab page, and how its arrays become PNG images.

A ``PictureStore`` holds what the page can filter, by id: the course's gray 512×512 photo
(``photo``), the same photograph in colour (``photo-colour``), the IMAGE given to ``cnnlab lab``
(``image``), and the latest uploads and drawings (``upload-1``, ``upload-2``...). Pixels are
float32 in [0, 1], (H, W) for gray or (H, W, 3) for colour, as ``cnnlab.lab.vision`` reads them.

``png_data_url`` draws an array as ``cnnlab filter`` does: gray from its minimum (black) to its
maximum (white), or, when it has both signs (edges), blue for negative, white for 0, red for positive.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import numpy as np
from matplotlib import cbook
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.lab import vision

MAX_SIDE = 1024  # pixels a side of an uploaded picture: larger ones would not filter live (the page sends ≤ 512)
MAX_UPLOADS = 16  # uploads kept; the oldest is forgotten first
SATURATION_PERCENTILE = 99.5  # the strongest 0.5 % of a signed output saturate, as in `cnnlab filter`
NEGATIVE_RGB = np.array([33, 102, 172])  # blue, |value| at the limit ...
POSITIVE_RGB = np.array([178, 24, 43])  # ... red; 0 is white
WHITE_RGB = np.array([255, 255, 255])


@dataclass(frozen=True)
class Picture:
    id: str
    name: str  # what the page lists it as
    pixels: np.ndarray  # float32 in [0, 1]: (H, W) or (H, W, 3)

    def describe(self) -> dict:
        return {"id": self.id, "name": self.name, "shape": list(self.pixels.shape)}


@cache
def colour_photo() -> np.ndarray:
    """The default photo's photograph in colour, its centre square: (512, 512, 3) float32."""
    pixels = vision.load_image(cbook.get_sample_data(vision.DEFAULT_PHOTO, asfileobj=False))  # (600, 512, 3)
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2  # the crop default_photo makes
    return pixels[top : top + side, left : left + side]


@cache
def gray_photo() -> np.ndarray:
    return vision.default_photo()  # (512, 512)


def decode_picture(data: bytes, name: str) -> np.ndarray:
    """An uploaded PNG/JPEG/... as float32 pixels; a picture whose three channels are equal is gray (H, W).

    A canvas (the page's drawings and reduced uploads) is always RGBA, so gray is told by the pixels.
    """
    pixels = vision.load_image(io.BytesIO(data))  # cnnlab's one picture reader: its checks and messages
    if max(pixels.shape[:2]) > MAX_SIDE:
        raise CnnlabError(
            f"{name}: {vision.format_shape(pixels.shape[:2])} pixels; the lab takes at most "
            f"{MAX_SIDE} a side, to stay live: scale it down"
        )
    if pixels.ndim == 3 and (pixels == pixels[:, :, :1]).all():
        return pixels[:, :, 0]
    return pixels


class PictureStore:
    """Pictures by id, the built-in ones first; uploads are kept for the MAX_UPLOADS latest (thread-safe)."""

    def __init__(self, image_path: str | None = None):
        self._builtin = {"photo": ("the course's photo", gray_photo), "photo-colour": ("the photo", colour_photo)}
        if image_path is not None:  # read now: a bad file is reported before the server starts
            pixels = vision.load_image(image_path)
            self._builtin = {"image": (image_path, lambda: pixels), **self._builtin}
        self._uploads: OrderedDict[str, Picture] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def get(self, picture_id: str) -> Picture:
        if picture_id in self._builtin:
            name, pixels = self._builtin[picture_id]
            return Picture(picture_id, name, pixels())
        with self._lock:
            picture = self._uploads.get(picture_id)
        if picture is None:
            raise KeyError(
                f"no picture {picture_id!r}: the lab keeps the built-in ones ({', '.join(self._builtin)}) "
                f"and the {MAX_UPLOADS} latest uploads; upload it again"
            )
        return picture

    def pictures(self) -> list[Picture]:
        with self._lock:
            uploads = list(self._uploads.values())
        return [self.get(picture_id) for picture_id in self._builtin] + uploads

    def add(self, data: bytes, name: str) -> Picture:
        pixels = decode_picture(data, name)
        with self._lock:
            self._count += 1
            picture = Picture(f"upload-{self._count}", name, pixels)
            self._uploads[picture.id] = picture
            while len(self._uploads) > MAX_UPLOADS:
                self._uploads.popitem(last=False)
        return picture


# ---------------------------------------------------------------------------------- drawing arrays


def display_rule(values: np.ndarray) -> str:
    """How ``png_data_url`` draws ``values``, in words for the page."""
    low, high = float(values.min()), float(values.max())
    if low < 0.0 < high:
        return "blue negative, white 0, red positive"
    return "gray: the minimum black, the maximum white"


def _diverging_palette() -> list[int]:
    """Blue (index 0, the most negative) to white (127, zero) to red (254, the most positive); 255 unused."""
    indices = np.arange(256)[:, None]
    weights = np.abs(indices - 127) / 127  # (256, 1): how far from white
    ends = np.where(indices < 127, NEGATIVE_RGB, POSITIVE_RGB)
    return np.round(WHITE_RGB + np.minimum(weights, 1.0) * (ends - WHITE_RGB)).astype(np.uint8).ravel().tolist()


DIVERGING = _diverging_palette()


def _drawn(values: np.ndarray) -> Image.Image:
    """A 2-D array drawn by the rule of ``display_rule``: gray levels, or a palette image (small, fast to encode)."""
    low, high = float(values.min()), float(values.max())
    if low < 0.0 < high:
        limit = float(np.percentile(np.abs(values), SATURATION_PERCENTILE)) or max(-low, high)
        indices = np.round(127 + 127 * np.clip(values / limit, -1.0, 1.0)).astype(np.uint8)  # 0..254
        image = Image.fromarray(indices, mode="P")
        image.putpalette(DIVERGING)
        return image
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return Image.fromarray(np.round(scaled * 255).astype(np.uint8))


def png_bytes(pixels: np.ndarray) -> bytes:
    """A picture (floats in [0, 1], gray or RGB) as PNG bytes, as it is: no rescaling."""
    return _encode(Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)))


def png_data_url(values: np.ndarray) -> str:
    """A 2-D filter output as a PNG data URL, drawn by the rule of ``display_rule``."""
    return "data:image/png;base64," + base64.b64encode(_encode(_drawn(values))).decode("ascii")


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast: the page waits for it
    return buffer.getvalue()
