"""cnnlab.vision against independent references: scipy's correlate2d, explicit loops, np.convolve,
hand-computed arrays and the course's own numbers. The references are in vision_references.py."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.figure import Figure
from PIL import Image
from pngfiles import png_size
from vision_references import reference_convolve, reference_pool

from cnnlab.errors import CnnlabError
from cnnlab.lab import vision

COURSE_SOBEL = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
COURSE_STEP = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


# ---------------------------------------------------------------------------------- generated cases

small_ints = st.integers(-9, 9)  # integer pixels and weights make every sum exact in float64


@st.composite
def images(draw, channels=st.sampled_from([None, 1, 3])):
    count = draw(channels)
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    shape = shape if count is None else shape + (count,)
    return draw(arrays(np.int64, shape, elements=small_ints)).astype(np.float64)


strides = st.tuples(st.integers(1, 3), st.integers(1, 3))
windows = st.tuples(st.integers(1, 5), st.integers(1, 5))


@settings(max_examples=settings.default.max_examples)
@given(
    image=images(),
    window=windows,
    stride=strides,
    padding=st.sampled_from(vision.PADDINGS),
    per_kernel_channel=st.booleans(),
    per_channel=st.booleans(),
    data=st.data(),
)
def test_convolve_equals_scipy_correlate2d(image, window, stride, padding, per_kernel_channel, per_channel, data):
    kernel_shape = window + image.shape[2:] if per_kernel_channel else window
    kernel = data.draw(arrays(np.int64, kernel_shape, elements=small_ints)).astype(np.float64)
    if padding == "valid" and (window[0] > image.shape[0] or window[1] > image.shape[1]):
        with pytest.raises(ValueError, match="does not fit"):
            vision.convolve(image, kernel, stride, padding)
        return
    result = vision.convolve(image, kernel, stride, padding, per_channel=per_channel)
    expected = reference_convolve(image, kernel, stride, padding, per_channel)
    np.testing.assert_array_equal(result, expected)
    rows, cols = (vision.output_size(n, k, s, padding)[0] for n, k, s in zip(image.shape, window, stride))
    assert result.shape[:2] == (rows, cols)


@settings(max_examples=settings.default.max_examples * 4 // 5)
@given(
    image=images(),
    size=windows,
    stride=st.none() | strides,
    padding=st.sampled_from(vision.PADDINGS),
    kind=st.sampled_from(vision.POOLS),
)
def test_pool_equals_a_loop_over_windows(image, size, stride, padding, kind):
    steps = size if stride is None else stride
    if padding == "valid" and (size[0] > image.shape[0] or size[1] > image.shape[1]):
        with pytest.raises(ValueError, match="does not fit"):
            vision.pool(image, size, kind, stride, padding)
        return
    result = vision.pool(image, size, kind, stride, padding)
    np.testing.assert_allclose(result, reference_pool(image, size, kind, steps, padding), rtol=1e-12)


@settings(max_examples=settings.default.max_examples // 5)
@given(
    signal=arrays(np.int64, st.integers(1, 30), elements=small_ints),
    kernel=arrays(np.int64, st.integers(1, 6), elements=small_ints),
)
def test_convolve1d_equals_numpy_convolve(signal, kernel):
    np.testing.assert_array_equal(vision.convolve1d(signal, kernel), np.convolve(signal, kernel))


# ---------------------------------------------------------------------------------- by hand


def test_the_kernel_is_not_flipped():
    image = np.array([[1, 2, 3], [4, 5, 6]])
    # out[y, x] = image[y, x] * 1 + image[y, x + 1] * 2
    np.testing.assert_array_equal(vision.convolve(image, [[1, 2]]), [[5, 8], [14, 17]])


def test_same_padding_with_stride_puts_the_extra_row_and_column_bottom_right():
    image = np.arange(16).reshape(4, 4)
    # 4 pixels, k=3, s=2: 2 outputs, 1 pixel of padding, after the image: windows rows/cols 0-2 and 2-4
    np.testing.assert_array_equal(vision.convolve(image, np.ones((3, 3)), 2, "same"), [[45, 39], [66, 50]])
    np.testing.assert_array_equal(vision.pool(image, 3, "max", 2, "same"), [[10, 11], [14, 15]])
    # average pooling divides by the real pixels only: 9, 6, 6 and 4 of them
    np.testing.assert_array_equal(vision.pool(image, 3, "avg", 2, "same"), [[5, 6.5], [11, 12.5]])


def test_valid_pooling_drops_what_does_not_fill_a_window():
    image = np.arange(25).reshape(5, 5)  # the last row and column are dropped by 2×2 windows
    np.testing.assert_array_equal(vision.pool(image, 2, "max"), [[6, 8], [16, 18]])
    np.testing.assert_array_equal(vision.pool(image, 2, "avg"), [[3, 5], [13, 15]])


def test_colour_convolution_sums_one_kernel_per_channel():
    rgb = np.random.default_rng(0).random((6, 7, 3))
    weights = np.random.default_rng(1).random((3, 2, 3))
    each = [vision.convolve(rgb[:, :, c], weights[:, :, c]) for c in range(3)]
    np.testing.assert_allclose(vision.convolve(rgb, weights), sum(each))
    np.testing.assert_allclose(vision.convolve(rgb, weights, per_channel=True), np.stack(each, axis=2))
    same_for_all = vision.convolve(rgb, weights[:, :, 0], per_channel=True)
    np.testing.assert_allclose(same_for_all[:, :, 2], vision.convolve(rgb[:, :, 2], weights[:, :, 0]))


def test_course_step_edges():
    result = vision.convolve1d(COURSE_STEP, [-1, 1])
    np.testing.assert_array_equal(result, np.convolve(COURSE_STEP, [-1, 1]))
    assert len(result) == 16
    assert np.flatnonzero(result).tolist() == [5, 10]  # -1 where the step rises, +1 where it falls
    assert (result[5], result[10]) == (-1, 1)


# ---------------------------------------------------------------------------------- the course


@pytest.fixture(scope="module")
def photo():
    return vision.default_photo()


def test_default_photo_is_a_512_gray_photograph(photo):
    assert photo.shape == (512, 512) and photo.dtype == np.float32
    assert 0.0 <= photo.min() < photo.max() <= 1.0
    assert photo.std() > 0.1  # a real picture, far from blank


@pytest.mark.parametrize(
    ("stride", "padding", "shape", "pad"), [((2, 1), "valid", (255, 510), (0, 0)), ((1, 1), "same", (512, 512), (2, 2))]
)
def test_course_conv2d_shapes(photo, stride, padding, shape, pad):
    assert vision.convolve(photo, vision.make_kernel("box"), stride, padding).shape == shape
    sizes = [vision.output_size(512, 3, s, padding) for s in stride]
    assert sizes == [(shape[0], pad[0]), (shape[1], pad[1])]


@pytest.mark.parametrize("kind", vision.POOLS)
def test_course_pooling_shape(photo, kind):
    assert vision.pool(photo, (5, 5), kind).shape == (102, 102)


def test_all_ones_kernel_is_a_blur(photo):
    box = vision.convolve(photo, vision.make_kernel("box"))
    mean = vision.convolve(photo, vision.make_kernel("mean"))
    np.testing.assert_allclose(box, 9 * mean)  # the box sums what the mean averages
    assert mean.var() < photo.var()
    assert np.abs(np.diff(mean, axis=1)).mean() < np.abs(np.diff(photo, axis=1)).mean()  # smoother


def test_course_filter_on_the_photo_is_scipy_correlate_and_minus_convolve(photo):
    result = vision.convolve(photo, COURSE_SOBEL, (2, 1))
    correlated = scipy.signal.correlate2d(photo.astype(np.float64), COURSE_SOBEL, mode="valid")
    np.testing.assert_allclose(result, correlated[::2, :])
    # the course's convolve2d flips the kernel; flipping this one upside down negates it
    flipped = scipy.signal.convolve2d(photo.astype(np.float64), COURSE_SOBEL, mode="valid")
    np.testing.assert_allclose(result, -flipped[::2, :])


# ---------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("name", vision.KERNELS)
def test_every_named_kernel_is_a_finite_3x3_by_default(name):
    kernel = vision.make_kernel(name)
    assert kernel.shape == (3, 3) and np.isfinite(kernel).all() and kernel.any()


def test_fixed_kernels():
    np.testing.assert_array_equal(vision.make_kernel("sobel-y"), COURSE_SOBEL)
    np.testing.assert_array_equal(vision.make_kernel("sobel-x"), np.transpose(COURSE_SOBEL))
    for name in ("sharpen", "laplacian"):
        assert vision.make_kernel(name).sum() == (1 if name == "sharpen" else 0)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_sized_kernels(size):
    for name in ("box", "mean", "gaussian", "random"):
        assert vision.make_kernel(name, size).shape == (size, size)
    assert vision.make_kernel("box", size).sum() == size * size
    assert vision.make_kernel("mean", size).sum() == pytest.approx(1.0)
    gaussian = vision.make_kernel("gaussian", size)
    assert gaussian.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(gaussian, gaussian.T)
    assert gaussian[(size - 1) // 2, (size - 1) // 2] == gaussian.max()


def test_gaussian_3_is_the_binomial_kernel():
    np.testing.assert_allclose(vision.make_kernel("gaussian"), np.outer([1, 2, 1], [1, 2, 1]) / 16)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_identity_returns_the_image(size):
    image = np.random.default_rng(size).random((9, 8))
    np.testing.assert_array_equal(vision.convolve(image, vision.make_kernel("identity", size), padding="same"), image)


def test_random_kernel_is_seeded_and_glorot_bounded():
    first, again, other = (vision.make_kernel("random", 5, seed) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.abs(first).max() <= np.sqrt(6 / 50)


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("identity", 4, "odd size"),
        ("sobel-x", 5, "fixed 3×3"),
        ("box", 0, "kernel_size"),
        ("blur", None, "unknown kernel"),
    ],
)
def test_bad_named_kernels_say_what_they_received(name, size, message):
    with pytest.raises(ValueError, match=message) as caught:
        vision.make_kernel(name, size)
    assert "Received:" in str(caught.value)


def test_parse_kernel_names_and_matrices():
    label, kernel = vision.parse_kernel("box", size=5)
    assert label == "box" and kernel.shape == (5, 5)
    label, kernel = vision.parse_kernel("1,2,1;0,0,0;-1,-2,-1")
    assert label == "matrix"
    np.testing.assert_array_equal(kernel, COURSE_SOBEL)
    np.testing.assert_array_equal(vision.parse_kernel(" 0.5 , -1 ")[1], [[0.5, -1]])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1,2;3", "rows have 2, 1 values"),
        ("1,a", "not a kernel name"),
        ("", "not a kernel name"),
        ("missing.npy", "no such kernel file"),
    ],
)
def test_parse_kernel_rejects_bad_text(spec, message):
    with pytest.raises(CnnlabError, match=message):
        vision.parse_kernel(spec)


def test_parse_kernel_rejects_a_size_for_a_matrix_and_non_finite_values():
    with pytest.raises(CnnlabError, match="--kernel-size"):
        vision.parse_kernel("1,2", size=3)
    with pytest.raises(ValueError, match="finite"):
        vision.parse_kernel("1,nan")


def test_parse_kernel_files(tmp_path):
    np.save(tmp_path / "k.npy", np.array(COURSE_SOBEL))
    np.savetxt(tmp_path / "k.txt", np.array(COURSE_SOBEL))
    (tmp_path / "commas.txt").write_text("1,2,1\n0,0,0\n-1,-2,-1\n")
    for name in ("k.npy", "k.txt", "commas.txt"):
        label, kernel = vision.parse_kernel(str(tmp_path / name))
        assert label == name
        np.testing.assert_array_equal(kernel, COURSE_SOBEL)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CnnlabError, match="objects.npy: cannot read a kernel"):  # never unpickled
        vision.parse_kernel(str(tmp_path / "objects.npy"))
    np.save(tmp_path / "flat.npy", np.arange(3))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        vision.parse_kernel(str(tmp_path / "flat.npy"))


# ---------------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("stride", [0, (1, 0), 1.5, (1, 2, 3), True, "2"])
def test_bad_strides_say_what_they_received(stride):
    with pytest.raises(ValueError, match=re.escape(f"Received: stride={stride!r}")):
        vision.convolve(np.ones((4, 4)), np.ones((2, 2)), stride)


@pytest.mark.parametrize(
    ("image", "kernel", "message"),
    [
        (np.ones(5), np.ones((2, 2)), "image must be a non-empty 2-D or 3-D"),
        (np.ones((2, 2, 2, 2)), np.ones((2, 2)), "image must be"),
        (np.ones((0, 3)), np.ones((2, 2)), "image must be"),
        (np.ones((3, 3), dtype=complex), np.ones((2, 2)), "real numbers"),
        (np.ones((3, 3)), np.ones((0, 2)), "kernel must be"),
        (np.ones((3, 3)), [[1.0, np.nan]], "finite"),
        (np.ones((3, 3, 3)), np.ones((2, 2, 2)), "one \\(kh, kw\\) slice per image channel"),
        (np.ones((3, 3)), np.ones((4, 1)), "does not fit"),
    ],
)
def test_bad_arrays_are_refused(image, kernel, message):
    with pytest.raises(ValueError, match=message):
        vision.convolve(image, kernel)


def test_bad_padding_and_pool_arguments():
    with pytest.raises(ValueError, match="Received: padding='full'"):
        vision.convolve(np.ones((3, 3)), np.ones((2, 2)), padding="full")
    with pytest.raises(ValueError, match="Received: kind='min'"):
        vision.pool(np.ones((4, 4)), 2, kind="min")
    with pytest.raises(ValueError, match="Received: size=0"):
        vision.pool(np.ones((4, 4)), 0)
    with pytest.raises(ValueError, match="Received: s=0"):
        vision.output_size(5, 3, 0, "valid")
    with pytest.raises(ValueError, match="signal must be a non-empty 1-D"):
        vision.convolve1d(np.ones((2, 2)), [1])


# ---------------------------------------------------------------------------------- images and files


def test_load_image_gray_colour_and_alpha(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "gray.png")
    Image.fromarray(pixels[:, :, :3]).save(tmp_path / "rgb.png")
    Image.fromarray(pixels, mode="RGBA").save(tmp_path / "rgba.png")
    gray = vision.load_image(tmp_path / "gray.png")
    assert gray.shape == (5, 7) and gray.dtype == np.float32
    np.testing.assert_allclose(gray, pixels[:, :, 0] / 255, rtol=1e-6)
    for name in ("rgb.png", "rgba.png"):  # alpha is dropped
        np.testing.assert_allclose(vision.load_image(tmp_path / name), pixels[:, :, :3] / 255, rtol=1e-6)


def test_load_image_errors_name_the_file(tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(CnnlabError, match=r"missing.png: cannot read it \(No such file or directory\)"):
        vision.load_image(tmp_path / "missing.png")
    with pytest.raises(CnnlabError, match="notes.png: not an image cnnlab can read; use PNG, JPEG"):
        vision.load_image(tmp_path / "notes.png")
    Image.new("L", (10, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 100 pixels > twice the limit: a "bomb"
    with pytest.raises(CnnlabError, match="big.png: too many pixels .*a possible decompression bomb"):
        vision.load_image(tmp_path / "big.png")


def test_load_image_keeps_the_full_size(tmp_path):
    Image.new("L", (1500, 40), 128).save(tmp_path / "wide.png")  # wider than the predictor's working side
    assert vision.load_image(tmp_path / "wide.png").shape == (40, 1500)


def test_random_colour_image_is_seeded():
    image = vision.random_color_image(3)
    assert image.shape == (4, 4, 3) and 0 <= image.min() and image.max() < 1
    np.testing.assert_array_equal(image, vision.random_color_image(3))
    assert not np.array_equal(image, vision.random_color_image(4))


def test_draw_filter_writes_one_panel_per_picture(tmp_path):
    image = np.random.default_rng(0).random((20, 30, 3))
    panel = int(vision.PANEL_INCHES * vision.DPI)
    summed, apart = (vision.convolve(image, COURSE_SOBEL, per_channel=flag) for flag in (False, True))
    for output, panels in ((summed, 2), (apart, 4)):  # the input, then the output or each channel
        figure = vision.draw_filter(image, output, "sobel-y", out=tmp_path / "f.png")
        assert isinstance(figure, Figure) and len(figure.axes) >= panels
        assert png_size(tmp_path / "f.png", min_colours=100) == (panels * panel, panel)
    assert isinstance(vision.draw_filter(image[:, :, 0], image[:, :, 1]), Figure)  # out=None: no file


def test_draw_channels(tmp_path):
    figure = vision.draw_channels(vision.random_color_image(0), out=tmp_path / "c.png")
    assert len(figure.axes) == 4
    assert png_size(tmp_path / "c.png") == (2 * int(vision.PANEL_INCHES * vision.DPI),) * 2
    with pytest.raises(ValueError, match="Received: image of shape \\(4, 4\\)"):
        vision.draw_channels(np.zeros((4, 4)))


def test_files_are_written_atomically(tmp_path):
    target = tmp_path / "out.npy"
    vision.save_array(np.arange(3), target)
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # the usual permissions, not owner-only
    with pytest.raises(ValueError):  # object arrays cannot be saved without pickling
        vision.save_array(np.array([{}], dtype=object), target)
    np.testing.assert_array_equal(np.load(target), np.arange(3))  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]  # and no temporary is left
    with pytest.raises(FileNotFoundError):  # the CLI turns it into a one-line error
        vision.save_array(np.arange(3), tmp_path / "no-such-folder" / "out.npy")
