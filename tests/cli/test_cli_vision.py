"""`cnnlab filter`, `channels`, `filters` and `features`: exact output, the PNGs they write, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pngfiles import png_size

from cnnlab.cli.vision import filter_command
from cnnlab.lab import vision

PANEL = int(vision.PANEL_INCHES * vision.DPI)  # pixels per picture in the PNGs
FORMULA = "out = floor((in + pad − k) / s) + 1"
DEFAULT_INPUT = "input: 512×512 (gray) from the default photo (grace_hopper.jpg, centre square)"


@pytest.fixture
def rgb_file(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    return tmp_path / "rgb.png"


def test_filter_prints_the_course_numbers(run_cli, tmp_path):
    result = run_cli("filter", "--kernel", "box", "--stride", "2,1", "--out", tmp_path / "f.png")
    assert result.code == 0 and result.err == ""
    assert result.out.splitlines() == [
        DEFAULT_INPUT,
        "kernel: box 3×3, stride (2, 1), padding valid",
        f"output: 255×510  ({FORMULA}: rows floor((512 + 0 − 3) / 2) + 1 = 255, "
        "cols floor((512 + 0 − 3) / 1) + 1 = 510)",
        f"wrote {tmp_path / 'f.png'}",
    ]
    assert png_size(tmp_path / "f.png") == (2 * PANEL, PANEL)


def test_filter_same_padding_keeps_the_size(run_cli, tmp_path):
    result = run_cli("filter", "--kernel", "sobel-y", "--padding", "same", "--out", tmp_path / "f.png")
    assert result.code == 0
    assert result.out.splitlines()[2] == (
        f"output: 512×512  ({FORMULA}: rows floor((512 + 2 − 3) / 1) + 1 = 512, "
        "cols floor((512 + 2 − 3) / 1) + 1 = 512)"
    )
    assert png_size(tmp_path / "f.png") == (2 * PANEL, PANEL)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_filter_pools_the_photo_without_a_kernel(run_cli, tmp_path, kind):
    result = run_cli("filter", "--pool", f"{kind}:5", "--out", tmp_path / "p.png", "--save-npy", tmp_path / "p.npy")
    assert result.code == 0
    assert result.out.splitlines() == [
        DEFAULT_INPUT,
        f"pool: {kind} 5×5, stride (5, 5), padding valid",
        f"output: 102×102  ({FORMULA}: rows floor((512 + 0 − 5) / 5) + 1 = 102, "
        "cols floor((512 + 0 − 5) / 5) + 1 = 102)",
        f"wrote {tmp_path / 'p.npy'}",
        f"wrote {tmp_path / 'p.png'}",
    ]
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), vision.pool(vision.default_photo(), 5, kind))
    assert png_size(tmp_path / "p.png") == (2 * PANEL, PANEL)


def test_filter_then_pool(run_cli, tmp_path):
    result = run_cli(
        "filter", "-k", "1,2,1;0,0,0;-1,-2,-1", "--stride", "2,1", "--pool", "max", "--out", tmp_path / "f.png"
    )
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[1] == "kernel: matrix 3×3, stride (2, 1), padding valid"
    assert lines[3] == "pool: max 2×2, stride (2, 2), padding valid"  # Keras's default pool size
    assert lines[4].startswith("output: 127×255  ")


def test_filter_colour_image_sums_channels_or_keeps_them(run_cli, tmp_path, rgb_file):
    summed = run_cli(
        "filter", rgb_file, "--kernel", "laplacian", "--out", tmp_path / "sum.png", "--save-npy", tmp_path / "sum.npy"
    )
    assert summed.code == 0
    assert summed.out.splitlines()[0] == f"input: 24×30×3 (RGB) from {rgb_file}"
    assert summed.out.splitlines()[2].startswith("output: 22×28  ")
    expected = vision.convolve(vision.load_image(rgb_file), vision.make_kernel("laplacian"))
    np.testing.assert_array_equal(np.load(tmp_path / "sum.npy"), expected)
    assert png_size(tmp_path / "sum.png") == (2 * PANEL, PANEL)

    apart = run_cli("filter", rgb_file, "--kernel", "laplacian", "--per-channel", "--out", tmp_path / "pc.png")
    assert apart.code == 0
    assert apart.out.splitlines()[2].startswith("output: 22×28×3  ")
    assert png_size(tmp_path / "pc.png") == (4 * PANEL, PANEL)  # the input and one panel per channel


def test_channels_default_is_a_random_4x4x3_image(run_cli, tmp_path):
    result = run_cli("channels", "--seed", "3", "--out", tmp_path / "c.png")
    assert result.code == 0
    planes = np.moveaxis(vision.random_color_image(3), 2, 0)  # (3, 4, 4)
    expected = (
        ["input: 4×4×3 (RGB) from a random image (seed 3)"]
        + [
            f"{name}: min {plane.min():.3f}, mean {plane.mean():.3f}, max {plane.max():.3f}"
            for name, plane in zip(["red", "green", "blue"], planes)
        ]
        + [f"wrote {tmp_path / 'c.png'}"]
    )
    assert result.out.splitlines() == expected
    assert png_size(tmp_path / "c.png") == (2 * PANEL, 2 * PANEL)


def test_channels_of_an_image_file(run_cli, tmp_path, rgb_file):
    result = run_cli("channels", rgb_file, "--out", tmp_path / "c.png")
    assert result.code == 0
    assert result.out.splitlines()[0] == f"input: 24×30×3 (RGB) from {rgb_file}"
    assert png_size(tmp_path / "c.png") == (2 * PANEL, 2 * PANEL)


def test_filter_help_explains_cross_correlation_and_lists_every_kernel(run_cli):
    result = run_cli("filter", "--help")
    assert result.code == 0
    assert "cross-correlation" in result.out and "without being flipped" in result.out
    kernel_help = next(p.help for p in filter_command.params if p.name == "kernel_spec")
    assert kernel_help.split(";")[0].split(", ") == list(vision.KERNELS)
    assert {"filter", "channels"} <= set(run_cli("--help").out.split())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["filter", "missing.png", "--kernel", "box"], 1, "cnnlab: error: missing.png: cannot read it (No such file"),
        (["filter", "notes.png", "--kernel", "box"], 1, "notes.png: not an image cnnlab can read"),
        (["filter", "--kernel", "identity", "--kernel-size", "4"], 1, "identity needs an odd size"),
        (["filter", "--kernel", "sobel-x", "--kernel-size", "5"], 1, "sobel-x is a fixed 3×3 kernel"),
        (["filter", "--kernel", "1,2;3"], 1, "--kernel '1,2;3': its rows have 2, 1 values"),
        (["filter", "--kernel", "blur"], 1, "--kernel 'blur': not a kernel name"),
        (["filter", "small.png", "--kernel", "box", "--kernel-size", "9"], 1, "does not fit in 4 pixels"),
        (["filter", "--kernel", "box", "--stride", "0"], 2, "Invalid value for '--stride'"),
        (["filter", "--pool", "min:3"], 2, "Invalid value for '--pool'"),
        (["filter"], 2, "give --kernel, --pool or both"),
        (["channels", "small.png"], 1, "small.png: a grayscale image has a single plane"),
    ],
)
def test_errors_are_one_line_and_write_nothing(run_cli, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("L", (4, 4)).save(tmp_path / "small.png")
    result = run_cli(*args)
    assert result.code == code
    assert message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not list(tmp_path.glob("filter.png")) and not list(tmp_path.glob("channels.png"))


# ---------------------------------------------------------------------------------- inside a trained model


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Model folders (no config.json) of the untrained cnn2 (two conv layers) and mlp (none), for MNIST."""
    from cnnlab.nn import modelio
    from cnnlab.nn.registry import create_model

    folder = tmp_path_factory.mktemp("models")
    for name in ("cnn2", "mlp"):
        modelio.save(create_model(name), folder / name, dataset="mnist")
    return folder


def test_filters_draws_the_first_conv_layer_into_filters_png(run_cli, trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("filters", trained_run)
    assert result.code == 0 and result.err == ""
    width, height = png_size(tmp_path / "filters.png", min_colours=100)
    assert result.out.splitlines() == [
        "conv2d: 32 kernels 3×3×1 (Keras kernel shape (3, 3, 1, 32))",
        f"wrote filters.png ({width}×{height} pixels)",
    ]
    assert width > height  # 32 kernels on 4 lines of 8


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["conv2d_1", "2"])
def test_filters_of_a_deeper_layer(run_cli, saved_models, tmp_path, layer):
    result = run_cli("filters", saved_models / "cnn2", "--layer", layer, "--out", tmp_path / "k.png")
    assert result.code == 0
    assert result.out.splitlines()[0] == "conv2d_1: 64 kernels 3×3×32 (Keras kernel shape (3, 3, 32, 64))"
    png_size(tmp_path / "k.png", min_colours=100)


@pytest.mark.slow
def test_features_of_a_test_image(run_cli, trained_run, tmp_path, monkeypatch):
    from cnnlab.data.registry import load_dataset

    monkeypatch.chdir(tmp_path)
    result = run_cli("features", trained_run, "--index", "3")
    assert result.code == 0 and result.err == ""
    width, height = png_size(tmp_path / "features.png", min_colours=100)
    label = load_dataset("mnist").y_test[3]
    assert result.out.splitlines() == [
        f"input: 28×28×1 test image 3 of mnist (label: {label})",
        "conv2d (26×26×32): drew 16 of 32 channels",
        "max_pooling2d (13×13×32): drew 16 of 32 channels",
        f"wrote features.png ({width}×{height} pixels)",
    ]


def test_features_of_a_picture_file(run_cli, trained_run, tmp_path):
    picture = Image.new("L", (120, 160), 255)  # a dark 1 on white paper, as a person would draw it
    picture.paste(30, (50, 20, 66, 140))
    picture.save(tmp_path / "one.png")
    result = run_cli("features", trained_run, tmp_path / "one.png", "--max-channels", "4", "--out", tmp_path / "f.png")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:3] == [
        f"input: 28×28×1 {tmp_path / 'one.png'}, as the model sees it",
        "conv2d (26×26×32): drew 4 of 32 channels",
        "max_pooling2d (13×13×32): drew 4 of 32 channels",
    ]
    assert lines[3].startswith(f"wrote {tmp_path / 'f.png'} (")
    png_size(tmp_path / "f.png", min_colours=100)


@pytest.mark.slow
def test_features_default_to_test_image_0_of_a_model_folders_dataset(run_cli, saved_models, tmp_path):
    result = run_cli("features", saved_models / "cnn2", "--out", tmp_path / "f.png")
    assert result.code == 0
    assert result.out.splitlines()[0].startswith("input: 28×28×1 test image 0 of mnist (label: ")
    assert len(result.out.splitlines()) == 6  # input, 4 layers, wrote


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["filters", "no-run"], 1, "cnnlab: error: no-run/model.json: not found; give a run folder"),
        (["features", "no-run", "--index", "1"], 1, "no-run/model.json: not found"),
        (["filters", "{cnn2}", "--layer", "flatten"], 1, "--layer flatten: flatten is a layer of type Flatten"),
        (["filters", "{mlp}"], 1, "it has no Conv2D layer"),
        (["features", "{mlp}"], 1, "it has no Conv2D layer"),
        (["features", "{cnn2}", "--index", "99999"], 1, "--index 99999: the mnist test split has"),
        (["features", "{cnn2}", "missing.png"], 1, "missing.png: cannot read it (No such file or directory)"),
        (["features", "{cnn2}", "small.png", "--index", "2"], 2, "give IMAGE or --index, not both"),
        (["features", "{cnn2}", "--max-channels", "0"], 2, "Invalid value for '--max-channels'"),
        (["filters", "{cnn2}", "--out", "nowhere/filters.png"], 1, "nowhere/filters.png: cannot be written"),
        (
            ["filter", "--kernel", "box", "--save-npy", "nowhere/f.npy"],
            1,
            "nowhere/f.npy: cannot be written (No such file or directory); choose another --save-npy",
        ),
    ],
)
def test_model_errors_are_one_line_and_write_nothing(run_cli, saved_models, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    Image.new("L", (4, 4)).save(tmp_path / "small.png")
    result = run_cli(*(arg.format(cnn2=saved_models / "cnn2", mlp=saved_models / "mlp") for arg in args))
    assert result.code == code
    assert message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["small.png"]
