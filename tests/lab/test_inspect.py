"""cnnlab.inspect: the kernels and feature maps it draws are the model's own, checked against the lab's
NumPy convolution and pooling; the figures are titled from model.layers and written as PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from pngfiles import figure_pixels, png_size

from cnnlab.data.registry import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.lab import inspect, vision
from cnnlab.nn import modelio
from cnnlab.nn.registry import create_model
from cnnlab.training.run import Run


def drawn(figure_or_subfigure) -> list:
    """The axes that show a picture (not the colorbar, not the empty places of the grid), in order."""
    return [axes for axes in figure_or_subfigure.axes if axes.images]


def weights(layer) -> np.ndarray:
    return layer.conv.weight.detach().numpy()  # (filters, channels, kh, kw)


@pytest.fixture(scope="module")
def trained(trained_run):
    return modelio.load(trained_run)


@pytest.fixture(scope="module")
def cnn2():
    """The course's two-conv-layer CNN, untrained: conv2d (26×26×32) and conv2d_1 (11×11×64)."""
    return create_model("cnn2")


@pytest.mark.slow
def test_draw_kernels_draws_each_learned_kernel_as_it_is(trained, tmp_path):
    figure = inspect.draw_kernels(trained, out=tmp_path / "k.png")
    first = inspect.conv_layers(trained)[0]
    kernels = weights(first)
    panels = drawn(figure)
    assert len(panels) == kernels.shape[0] == 32  # one panel per filter of the course's cnn
    for index, axes in enumerate(panels):
        np.testing.assert_array_equal(axes.images[0].get_array(), kernels[index, 0])
        assert axes.get_title() == str(index)
    low, high = panels[0].images[0].get_clim()
    assert -low == high == pytest.approx(np.abs(kernels).max())  # one scale, centred at 0
    assert panels[0].images[0].get_cmap().name == "RdBu_r"
    assert png_size(tmp_path / "k.png", min_colours=100) == figure_pixels(figure)
    assert "conv2d (26×26×32): 32 learned 3×3 kernels" in figure.get_suptitle()


@pytest.mark.parametrize("layer", ["conv2d_1", "2"])
def test_deeper_layers_are_averaged_over_their_input_channels(cnn2, layer):
    figure = inspect.draw_kernels(cnn2, layer)
    second = cnn2.layers[2]
    assert second.name == "conv2d_1"
    panels = drawn(figure)
    assert len(panels) == 64
    averaged = weights(second).mean(axis=1)  # (64, 3, 3)
    for index in (0, 63):
        np.testing.assert_allclose(panels[index].images[0].get_array(), averaged[index], rtol=1e-6)
    assert "averaged over its 32 input channels" in figure.get_suptitle()


def test_the_first_layer_of_an_rgb_model_is_drawn_in_colour():
    model = create_model("cifar-cnn")
    panels = drawn(inspect.draw_kernels(model))
    kernels = weights(model.layers[0])  # (32, 3, 3, 3)
    limit = np.abs(kernels).max()
    picture = panels[5].images[0].get_array()
    assert picture.shape == (3, 3, 3)  # (kh, kw, red/green/blue)
    np.testing.assert_allclose(picture, 0.5 + kernels[5].transpose(1, 2, 0) / (2 * limit), rtol=1e-6)
    assert 0.0 <= picture.min() and picture.max() <= 1.0
    assert drawn(inspect.draw_kernels(model, "conv2d_1"))[0].images[0].get_array().ndim == 2  # averaged


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ("dense", "dense is a layer of type Dense, which has no kernels"),
        ("max_pooling2d", "max_pooling2d is a layer of type MaxPool2D, which has no kernels"),
        ("conv2d_7", "the model has no layer of that name"),
        (3, "the model has 2 conv layers"),
        ("0", "the model has 2 conv layers"),
    ],
)
def test_a_layer_that_is_not_a_conv_layer_is_refused_with_the_choices(cnn2, layer, problem):
    with pytest.raises(CnnlabError) as caught:
        inspect.draw_kernels(cnn2, layer)
    assert str(caught.value) == (
        f"--layer {layer}: {problem}; choose a conv layer by name or number: 1 conv2d (26×26×32), 2 conv2d_1 (11×11×64)"
    )


def test_a_model_without_conv_layers_has_nothing_to_draw():
    mlp = create_model("mlp")
    for draw in (
        lambda: inspect.draw_kernels(mlp),
        lambda: inspect.draw_feature_maps(mlp, np.zeros((28, 28, 1), np.uint8)),
    ):
        with pytest.raises(CnnlabError, match="it has no Conv2D layer"):
            draw()


def test_feature_maps_are_the_layers_outputs_titled_with_their_names_and_shapes(trained, trained_run, tmp_path):
    image, source = inspect.dataset_image(trained, Run(trained_run).dataset_settings(trained), 0)
    figure = inspect.draw_feature_maps(trained, image, out=tmp_path / "f.png", max_channels=8, source=source)
    spatial = [layer for layer in trained.layers if layer.type_name in inspect.SPATIAL_LAYERS]
    assert [row.texts[0].get_text() for row in figure.subfigs] == [f"input (28×28×1) {source}"] + [
        f"{layer.name} ({vision.format_shape(layer.output_shape)}): channels 0–7 of {layer.output_shape[-1]}"
        for layer in spatial
    ]
    assert [layer.name for layer in spatial] == ["conv2d", "max_pooling2d"]
    input_panel, conv_row, pool_row = drawn(figure.subfigs[0]), drawn(figure.subfigs[1]), drawn(figure.subfigs[2])
    np.testing.assert_array_equal(input_panel[0].images[0].get_array(), image[:, :, 0])
    assert len(conv_row) == len(pool_row) == 8
    # the same numbers from the lab's NumPy convolution (no torch): conv2d has no activation, then 2×2 max pooling
    kernels, biases = weights(spatial[0]), spatial[0].conv.bias.detach().numpy()
    for channel in (0, 7):
        expected = vision.convolve(image[:, :, 0] / 255.0, kernels[channel, 0]) + biases[channel]  # (26, 26)
        np.testing.assert_allclose(conv_row[channel].images[0].get_array(), expected, atol=1e-5)
        np.testing.assert_allclose(pool_row[channel].images[0].get_array(), vision.pool(expected, 2), atol=1e-5)
        low, high = conv_row[channel].images[0].get_clim()
        assert -low == high == pytest.approx(np.abs(expected).max(), rel=1e-5)  # each map on its own scale
    assert png_size(tmp_path / "f.png", min_colours=100) == figure_pixels(figure)


@pytest.mark.slow
def test_many_channels_wrap_onto_lines_of_sixteen(cnn2):
    figure = inspect.draw_feature_maps(cnn2, np.full((28, 28, 1), 200, np.uint8), max_channels=40)
    titles = [row.texts[0].get_text() for row in figure.subfigs]
    assert titles[1:] == [
        "conv2d (26×26×32)",
        "max_pooling2d (13×13×32)",
        "conv2d_1 (11×11×64): channels 0–39 of 64",
        "max_pooling2d_1 (5×5×64): channels 0–39 of 64",
    ]
    assert [len(drawn(row)) for row in figure.subfigs] == [1, 32, 32, 40, 40]
    assert len(figure.subfigs[3].axes) == 3 * inspect.MAX_COLUMNS  # 40 maps on three lines of 16


def test_dataset_image_is_the_runs_test_image(trained, trained_run):
    mnist = load_dataset("mnist")
    image, source = inspect.dataset_image(trained, Run(trained_run).dataset_settings(trained), 9)
    np.testing.assert_array_equal(image, mnist.x_test[9])
    assert source == f"test image 9 of mnist (label: {mnist.y_test[9]})"
    count = len(mnist.x_test)
    with pytest.raises(
        CnnlabError, match=f"--index {count}: the mnist test split has {count} images; give 0 to {count - 1}"
    ):
        inspect.dataset_image(trained, Run(trained_run).dataset_settings(trained), count)


def test_a_model_folder_without_config_uses_its_dataset(cnn2, tmp_path):
    modelio.save(cnn2, tmp_path / "saved", dataset="mnist")
    saved = modelio.load(tmp_path / "saved")
    image, source = inspect.dataset_image(saved, Run(tmp_path / "saved").dataset_settings(saved), 1)
    np.testing.assert_array_equal(image, load_dataset("mnist").x_test[1])
    modelio.save(cnn2, tmp_path / "anonymous")
    anonymous = modelio.load(tmp_path / "anonymous")
    with pytest.raises(CnnlabError, match="the run has no config.json and the model names no dataset"):
        inspect.dataset_image(anonymous, Run(tmp_path / "anonymous").dataset_settings(anonymous), 0)


@pytest.mark.parametrize(
    ("image", "max_channels", "message"),
    [
        (np.zeros((28, 28), np.uint8), 16, "Received: image of shape \\(28, 28\\)"),
        (np.zeros((28, 28, 1), np.float32), 16, "dtype float32"),
        (np.zeros((28, 28, 1), np.uint8), 0, "Received: max_channels=0"),
    ],
)
def test_draw_feature_maps_checks_its_arguments(cnn2, image, max_channels, message):
    with pytest.raises(ValueError, match=message):
        inspect.draw_feature_maps(cnn2, image, max_channels=max_channels)
