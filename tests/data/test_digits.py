"""Pictures people draw -> what the model sees: MNIST's preprocessing, and ``cnnlab predict``."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from drawings import draw_digit
from PIL import Image, ImageDraw

import cnnlab
from cnnlab.data.digits import BlankImageError, centre_of_mass, digit_input, fitted_input, model_input
from cnnlab.data.images import open_image
from cnnlab.errors import CnnlabError
from cnnlab.nn.inputs import as_model_input
from cnnlab.serve.predict import predict_image

VARIANTS = {
    "plain": {},
    "off-centre": dict(box=(10, 10, 60, 80)),
    "tiny": dict(box=(95, 93, 103, 107), width=2),
    "huge": dict(size=(1200, 900), box=(300, 50, 900, 850), width=80),
    "thick": dict(width=28),
    "thin": dict(width=2),
    "inverted": dict(ink=(255, 255, 255), paper=(0, 0, 0)),
    "coloured": dict(ink=(30, 60, 200), paper=(250, 240, 150)),  # blue ink on yellow paper
    "alpha dark ink": dict(mode="RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)),
    "alpha light ink": dict(mode="RGBA", ink=(255, 255, 255, 255), paper=(255, 255, 255, 0)),
}


@pytest.fixture(scope="module")
def model(trained_run):
    return cnnlab.load(trained_run)


@pytest.mark.parametrize("digit", [0, 1])
@pytest.mark.parametrize("variant", VARIANTS)
def test_drawn_digits_are_recognised_in_every_variant(model, variant, digit):
    prediction = predict_image(model, draw_digit(digit, **VARIANTS[variant]))
    assert prediction.label == digit, f"{variant} {digit}: probabilities {np.round(prediction.probabilities, 3)}"


def test_a_drawn_seven_is_recognised(model):
    assert predict_image(model, draw_digit(7)).label == 7


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_digit_fits_20x20_and_its_centre_of_mass_is_at_14_14(variant):
    pixels = digit_input(draw_digit(0, **VARIANTS[variant]))
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    rows, columns = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    height, width = rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1
    assert 18 <= max(height, width) <= 20  # scaled so the longer side fills the 20-pixel box
    assert pixels.max() == 255  # strokes reach full white, as MNIST's do
    row, column = centre_of_mass(pixels.astype(float))
    assert abs(row - 14) <= 0.6 and abs(column - 14) <= 0.6  # whole-pixel moves: within half a pixel, plus rounding


def test_the_aspect_ratio_is_kept():
    pixels = digit_input(draw_digit(1, width=20))  # a tall stroke: 20 rows high, a few columns wide
    columns = np.flatnonzero(pixels.any(0))
    assert len(np.flatnonzero(pixels.any(1))) >= 18 and len(columns) <= 8


def test_mnist_digits_photographed_large_come_back_as_the_model_knows_them(model):
    """Each test digit enlarged 10× as dark ink on white paper, then preprocessed: the model must answer
    as it does for the original, because this is the preprocessing MNIST's images went through."""
    dataset = cnnlab.load_dataset("mnist")
    originals = dataset.x_test[:200]  # (N, 28, 28, 1)
    photographed = np.stack(
        [digit_input(Image.fromarray(255 - digit[..., 0]).resize((280, 280), Image.BICUBIC)) for digit in originals]
    )[..., None]
    predict = lambda images: model.predict_proba(as_model_input(torch.from_numpy(images))).argmax(1)
    agreement = (predict(originals) == predict(photographed)).float().mean().item()
    assert agreement >= 0.93


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("RGB", (120, 90), (255, 255, 255)),
        Image.new("L", (28, 28), 0),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
        Image.fromarray(np.random.default_rng(0).normal(200, 6, (300, 400)).clip(0, 255).astype(np.uint8)),  # grain
    ],
    ids=["white", "black", "transparent", "paper grain"],
)
def test_a_blank_picture_says_so_instead_of_guessing(model, picture):
    with pytest.raises(BlankImageError, match="blank"):
        predict_image(model, picture)


def test_fashion_models_get_the_object_fitted_to_28x28():
    shirt = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(shirt).rectangle([100, 40, 160, 160], fill=(90, 90, 90))  # 61 wide, 121 high
    pixels = fitted_input(shirt)
    rows, columns = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    assert (rows[0], rows[-1]) == (0, 27)  # the longer side fills the field
    assert 12 <= len(columns) <= 16 and abs((columns[0] + columns[-1]) / 2 - 13.5) <= 1  # aspect kept, centred


def test_other_models_get_a_plain_resize_with_their_channels():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8))
    pixels = model_input(picture, (32, 32, 3), "cifar10")
    assert pixels.shape == (32, 32, 3)
    np.testing.assert_array_equal(pixels, np.asarray(picture.resize((32, 32), Image.BILINEAR)))
    assert model_input(picture, (16, 16, 1), "folder:pets").shape == (16, 16, 1)


@pytest.mark.parametrize(
    "shape, dataset, message",
    [
        ((28, 28, 3), "mnist", "takes 3 channels"),
        ((28, 28, 2), "folder:x", "gray or"),
        ((784,), "mnist", "inputs shaped"),
    ],
)
def test_a_wrong_channel_count_is_a_clear_error(shape, dataset, message):
    with pytest.raises(CnnlabError, match=message):
        model_input(draw_digit(1), shape, dataset)


# --- reading files ----------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_every_supported_format_is_read(model, tmp_path, file_format):
    path = tmp_path / f"one.{file_format.lower()}"
    draw_digit(1).save(path, format=file_format)
    assert predict_image(model, open_image(path)).label == 1


def test_16_bit_gray_pngs_keep_their_ink(model, tmp_path):
    levels = np.asarray(draw_digit(1).convert("L"), dtype=np.uint16) * 257  # 0..65535
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert predict_image(model, open_image(tmp_path / "deep.png")).label == 1


def test_large_pictures_are_reduced_on_opening():
    buffer = io.BytesIO()
    draw_digit(1, size=(3000, 2000), box=(1000, 200, 2000, 1800), width=150).save(buffer, format="PNG")
    assert max(open_image(buffer.getvalue()).size) == 1024


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(CnnlabError, match="notes.png: not an image"):
        open_image(path)


def test_decompression_bombs_are_refused_before_decoding(monkeypatch):
    buffer = io.BytesIO()
    Image.new("L", (400, 300)).save(buffer, format="PNG")
    monkeypatch.setattr("cnnlab.data.images.MAX_PIXELS", 100_000)  # cnnlab's own limit
    with pytest.raises(CnnlabError, match="decompression bomb"):
        open_image(buffer.getvalue(), name="bomb.png")
    monkeypatch.setattr("cnnlab.data.images.MAX_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # Pillow's: 120,000 pixels is over twice that
    with pytest.raises(CnnlabError, match="bomb.png: too many pixels"):
        open_image(buffer.getvalue(), name="bomb.png")


# --- cnnlab predict -----------------------------------------------------------------------------


@pytest.fixture
def pictures(tmp_path):
    one, zero, blank = tmp_path / "one.png", tmp_path / "zero.jpg", tmp_path / "blank.png"
    draw_digit(1).save(one)
    draw_digit(0, ink=(200, 30, 30), paper=(245, 245, 240)).save(zero, quality=90)
    Image.new("RGB", (100, 100), "white").save(blank)
    return one, zero, blank


def test_predict_prints_the_top_classes(run_cli, trained_run, pictures):
    one, zero, _ = pictures
    result = run_cli("predict", trained_run, one, zero, "--top-k", "2")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [lines[0], lines[3]] == [f"{one}: 1", f"{zero}: 0"]
    assert len(lines) == 6 and lines[1].split()[0] == "1" and lines[4].split()[0] == "0"
    assert float(lines[1].split()[1]) >= float(lines[2].split()[1])  # most probable first


def test_predict_json_prints_one_object_per_file(run_cli, trained_run, pictures):
    one, _, blank = pictures
    result = run_cli("predict", trained_run, one, blank, "--json")
    assert result.code == 0, result.err
    answers = [json.loads(line) for line in result.out.splitlines()]
    assert [list(answer) for answer in answers] == [["file", "label", "probabilities"]] * 2
    assert answers[0]["file"] == str(one) and answers[0]["label"] == "1"
    assert list(answers[0]["probabilities"]) == [str(digit) for digit in range(10)]
    assert sum(answers[0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert answers[1] == {"file": str(blank), "label": None, "probabilities": None}


def test_predict_says_when_a_picture_is_blank(run_cli, trained_run, pictures):
    blank = pictures[2]
    result = run_cli("predict", trained_run, blank)
    assert (result.code, result.out) == (0, f"{blank}: blank image: no ink found; nothing to predict\n")


def test_predict_show_writes_what_the_model_saw(run_cli, trained_run, pictures, tmp_path):
    one = pictures[0]
    result = run_cli("predict", trained_run, one, "--show", tmp_path / "seen")
    assert result.code == 0, result.err
    with Image.open(tmp_path / "seen" / "one.png") as shown:
        np.testing.assert_array_equal(np.asarray(shown), digit_input(Image.open(one)))


def test_predict_reports_unreadable_files_and_carries_on(run_cli, trained_run, pictures, tmp_path):
    one = pictures[0]
    result = run_cli("predict", trained_run, tmp_path / "missing.png", one)
    assert result.code == 1
    assert result.err == f"cnnlab: error: {tmp_path / 'missing.png'}: cannot read it (No such file or directory)\n"
    assert result.out.startswith(f"{one}: 1\n")
