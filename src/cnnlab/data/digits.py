"""A person's picture -> the input a trained model expects (``model_input``).

Digit models (``model.dataset == "mnist"``) get the preprocessing MNIST's own images went through:
the ink is separated from the paper (light on dark, paper at 0), cropped to its bounding box, scaled
into a 20×20 box keeping the aspect ratio (anti-aliased, so edges become gray levels), and placed in
the 28×28 field so that its centre of mass falls on pixel (14, 14), the centre MNIST's digits have.

Separating ink from paper: the paper's colour is the median colour of the picture's border, and a
pixel's ink strength is its colour distance from the paper. For a gray picture that is exactly
"grayscale, inverted when the paper is light, paper level subtracted"; for a coloured one it also
works for blue ink on yellow paper, whose gray levels may be close. Pixels within the paper's noise,
and specks of one or two pixels, count as paper; a picture with no ink left is blank, and the model
is not asked to guess.

Fashion-MNIST models get that dataset's preparation: the same ink separation, then the object's
bounding box fitted into 28×28 keeping its aspect ratio. Other models (cifar10, folder:PATH) get a
plain resize to their input size and channel count, as their training images had (``fit_picture``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnnlab.data.images import fit_picture, flatten_alpha
from cnnlab.errors import CnnlabError

DIGIT_BOX = 20 / 28  # MNIST's digits fill a 20×20 box in the 28×28 field
MIN_CONTRAST = 32.0  # gray levels (of 255) between paper and ink below which a picture is blank
NOISE_SIGMAS = 4.0  # a pixel is ink candidate when farther from the paper than 4 standard deviations of its noise
INK_FLOOR = 0.2  # ...and at least this fraction of the strokes' strength (drops shadows and paper grain)


class BlankImageError(CnnlabError):
    """The picture holds no ink: nothing to predict."""


# --- ink, paper and boxes ---------------------------------------------------------------------


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """Keep pixels with at least two marked neighbours: a stroke (even 1 px thin) keeps its pixels, noise does not."""
    height, width = mask.shape
    padded = np.pad(mask, 1).astype(np.uint8)
    marked = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))  # 3×3 counts
    return mask & (marked >= 3)


def ink_strength(image: Image.Image) -> np.ndarray:
    """Ink in [0, 1], float32 (H, W), light on dark with the paper at 0; BlankImageError when there is none."""
    rgb = np.asarray(flatten_alpha(image), dtype=np.float32)  # (H, W, 3)
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])  # (P, 3): the frame shows paper
    paper = np.median(border, axis=0)
    distance = np.sqrt(((rgb - paper) ** 2).mean(-1))  # RMS over channels: a gray picture gives |gray - paper|
    border_distance = np.sqrt(((border - paper) ** 2).mean(-1))
    noise = 1.4826 * float(np.median(border_distance))  # the paper's grain as a robust standard deviation
    candidates = _without_specks(distance > NOISE_SIGMAS * noise + 1.0)  # + 1: a clean picture has no noise
    if not candidates.any():
        raise BlankImageError("blank image: no ink found")
    strokes = float(np.percentile(distance[candidates], 90))  # the strength of the strokes' core
    if strokes < MIN_CONTRAST:
        raise BlankImageError(f"blank image: the darkest marks are only {strokes:.0f} gray levels from the paper")
    threshold = max(NOISE_SIGMAS * noise, INK_FLOOR * strokes)
    ink = np.clip((distance - threshold) / (strokes - threshold), 0.0, 1.0)
    ink *= _without_specks(ink > 0)
    if not ink.any():  # the candidates were specks once the threshold was raised to the strokes' strength
        raise BlankImageError("blank image: no ink found")
    return ink


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows, columns = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    """Scale so the longer side is ``side`` pixels, keeping the aspect ratio; anti-aliased; peak ink 1."""
    height, width = ink.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Pillow widens BILINEAR's window when shrinking: each output pixel averages the ink it covers, no ringing
    scaled = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    return scaled / scaled.max() if scaled.max() > 0 else scaled  # MNIST's strokes reach full white


def _place(ink: np.ndarray, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Paste ``ink`` into a black ``shape`` field, moved by whole pixels to put ``centre`` at the field's centre."""
    field = np.zeros(shape, dtype=np.float32)
    height, width = ink.shape
    top = int(np.clip(round(shape[0] / 2 - centre[0]), 0, shape[0] - height))
    left = int(np.clip(round(shape[1] / 2 - centre[1]), 0, shape[1] - width))
    field[top : top + height, left : left + width] = ink
    return field


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass, in pixel indices."""
    rows, columns = np.indices(ink.shape)
    total = ink.sum()
    return float((rows * ink).sum() / total), float((columns * ink).sum() / total)


def digit_input(image: Image.Image, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """MNIST's preprocessing: ink cropped, fitted in a 20×20 box, centred by mass in 28×28. uint8 (H, W)."""
    digit = _fit(_crop_to_ink(ink_strength(image)), round(min(size) * DIGIT_BOX))
    return _to_uint8(_place(digit, size, centre_of_mass(digit)))


def fitted_input(image: Image.Image, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Fashion-MNIST's preparation: the object's box fitted into the field, centred. uint8 (H, W)."""
    item = _fit(_crop_to_ink(ink_strength(image)), min(size))
    return _to_uint8(_place(item, size, (item.shape[0] / 2, item.shape[1] / 2)))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.round(values * 255.0).astype(np.uint8)


# --- the model's side -------------------------------------------------------------------------


def model_input(image: Image.Image, input_shape, dataset: str | None) -> np.ndarray:
    """The picture as the model's training images were: uint8 (H, W, C) for ``input_shape`` (H, W, C)."""
    if len(input_shape) != 3 or input_shape[2] not in (1, 3):
        raise CnnlabError(
            f"the model takes inputs shaped {tuple(input_shape)}; cnnlab makes pictures into "
            "(H, W, 1) gray or (H, W, 3) RGB inputs only"
        )
    height, width, channels = input_shape
    if dataset in ("mnist", "fashion-mnist"):
        if channels != 1:
            raise CnnlabError(
                f"the model was trained on {dataset} but takes {channels} channels; {dataset}'s "
                "pictures are gray (1 channel): check the run's model.json"
            )
        prepare = digit_input if dataset == "mnist" else fitted_input
        return prepare(image, (height, width))[..., None]
    return fit_picture(image, (height, width), channels)  # as the training images of a folder dataset were
