"""One picture reader for every image: a folder dataset's training pixels are the pixels predict feeds the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.digits import model_input
from cnnlab.data.images import open_image, read_picture
from cnnlab.data.registry import load_dataset

ORIENTATION = 0x0112  # the EXIF tag; 6: the camera was turned, show the picture rotated 90° clockwise


def _bar(vertical: bool, side: int = 40, offset: int = 0) -> Image.Image:
    pixels = np.full((side, side, 3), 30, np.uint8)
    middle = side // 2 + offset
    if vertical:
        pixels[:, middle - 4 : middle + 4] = 230
    else:
        pixels[middle - 4 : middle + 4, :] = 230
    return Image.fromarray(pixels)


def _phone_photo(upright: Image.Image, path) -> None:
    """Save ``upright`` as a phone does: the pixels as the sensor read them, plus an EXIF note to turn them."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # undone by orientation 6 (90° clockwise)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored.save(path, exif=exif, quality=95)


@pytest.fixture
def odd_pictures(tmp_path):
    """A folder of pictures that decode differently by different readers: EXIF-rotated, transparent, 16-bit, large."""
    root = tmp_path / "odd"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    _phone_photo(_bar(vertical=True), root / "a" / "phone.jpg")
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[5:25, 12:18] = (20, 20, 20, 255)  # dark ink on a transparent background
    Image.fromarray(rgba).save(root / "a" / "ink.png")
    deep = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(deep).save(root / "b" / "deep.png")  # 16-bit gray: Pillow's own conversion clips it
    _bar(vertical=False, side=1500).save(root / "b" / "large.png")  # reduced to 1024 a side first
    return root


@pytest.mark.parametrize("channels", [1, 3])
def test_training_pixels_equal_the_pixels_predict_feeds_the_model(odd_pictures, channels):
    loaded = load_dataset(f"folder:{odd_pictures}", image_size=28, channels=channels, test_fraction=0)
    files = sorted(odd_pictures.rglob("*.*"))
    at_predict = {path.name: model_input(open_image(path), (28, 28, channels), loaded.name) for path in files}
    assert len(loaded.x_train) == len(files) and not loaded.skipped
    matched = []
    for image, label in zip(loaded.x_train, loaded.y_train):
        names = [name for name, pixels in at_predict.items() if np.array_equal(pixels, image)]
        assert len(names) == 1, "a training image that predict would not feed the model"
        assert (odd_pictures / loaded.class_names[label] / names[0]).exists()
        matched += names
    assert sorted(matched) == sorted(at_predict)


def test_the_reader_turns_phone_photos_upright_flattens_alpha_and_scales_16_bit(odd_pictures):
    phone = read_picture(odd_pictures / "a" / "phone.jpg", (40, 40), 1)[..., 0]
    assert phone[:, 16:24].mean() > 200 and phone[16:24, :4].mean() < 60  # a vertical bar, as the camera saw it
    ink = read_picture(odd_pictures / "a" / "ink.png", (30, 30), 1)[..., 0]
    assert ink[0, 0] == 255 and ink[15, 15] == 20  # dark ink stays dark: the transparency became white paper
    deep = read_picture(odd_pictures / "b" / "deep.png", (32, 32), 1)[..., 0]
    assert deep.max() == 255 and 100 < np.median(deep) < 155  # scaled from 16 bits, not clipped at 255


@pytest.mark.slow
def test_phone_photos_in_a_folder_keep_their_classes_at_predict_time(run_cli, tmp_path):
    """Pictures stored sideways with an EXIF turn: trained upright, predicted upright (before: classes swapped)."""
    root = tmp_path / "bars"
    for name, vertical in (("horizontal", False), ("vertical", True)):
        (root / name).mkdir(parents=True)
        for index, offset in enumerate(range(-8, 9, 2)):
            _phone_photo(_bar(vertical, offset=offset), root / name / f"{index}.jpg")
    result = run_cli(
        "train",
        "--dataset",
        f"folder:{root}",
        "--epochs",
        "8",
        "--batch-size",
        "8",
        "--validation-split",
        "0",
        "--name",
        "bars",
        "--runs-dir",
        tmp_path / "runs",
        "--quiet",
    )
    assert result.code == 0, result.err
    photos = sorted(root.rglob("*.jpg"))
    result = run_cli("predict", tmp_path / "runs" / "bars", *photos, "--json")
    answers = [json.loads(line) for line in result.out.splitlines()]
    right = sum(answer["label"] == photo.parent.name for answer, photo in zip(answers, photos))
    assert right >= 0.9 * len(photos), answers
