"""Inside a trained model: its learned kernels, and what its conv and pooling layers compute for one input.

Kernel weights are drawn with a diverging colormap centred at 0 (blue negative, white 0, red positive),
one scale for the whole layer so that kernels can be compared. A Conv2D kernel has a (kh, kw) slice per
input channel: the first layer of an RGB model is drawn in colour (those three slices as the red, green
and blue of one picture, mid-gray for 0); any other layer with several input channels is drawn
channel-averaged, one (kh, kw) plane per filter, which keeps the sign pattern of what it looks for.

Feature maps are drawn one layer to a row, titled with the layer's name and output shape; each map is
scaled to its own largest |value|, so weak channels are as visible as strong ones (white is 0 in all).

Every drawing function returns a matplotlib Figure and writes a PNG when given ``out``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.errors import CnnlabError
from cnnlab.lab.plots import save_figure
from cnnlab.lab.vision import format_shape

SPATIAL_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D")
DPI = 100
KERNEL_INCHES = 0.9  # one kernel panel: 90 × 90 pixels, 30 per weight of a 3×3 kernel
MAP_INCHES = 1.1  # one feature map panel: 110 × 110 pixels, about 4 per pixel of a 26×26 map
INPUT_INCHES = 2.2  # the input picture, twice a map
TITLE_INCHES = 0.45  # room for the title above each row
MAX_COLUMNS = 16  # feature maps per line; a layer showing more channels wraps onto further lines
DEFAULT_MAX_CHANNELS = 16


@torch.inference_mode()
def feature_maps(model, inputs: torch.Tensor, kinds=SPATIAL_LAYERS) -> list[tuple[object, torch.Tensor]]:
    """Run ``inputs`` (B, C, H, W) through ``model``: (layer, output (B, C', H', W')) for each layer of ``kinds``."""
    model.eval()
    maps = []
    x = inputs
    for layer in model.layers:
        x = layer(x)
        if layer.type_name in kinds:
            maps.append((layer, x.float()))
    return maps


# ---------------------------------------------------------------------------------- choosing


def conv_layers(model) -> list:
    """The model's Conv2D layers, first to last; a CnnlabError when it has none."""
    convs = [layer for layer in model.layers if layer.type_name == "Conv2D"]
    if not convs:
        raise CnnlabError(
            f"model {model.name!r}: it has no Conv2D layer, so no kernels or feature maps to draw; "
            "give a CNN's run (cnnlab train --model cnn)"
        )
    return convs


def conv_layer(model, layer: str | int | None = None):
    """The Conv2D layer ``layer`` names: its name (conv2d_1) or its 1-based number among the conv layers.

    None gives the first conv layer. Anything else is a CnnlabError listing the conv layers.
    """
    convs = conv_layers(model)
    if layer is None:
        return convs[0]
    wanted = str(layer)
    if wanted.isdigit() and 1 <= int(wanted) <= len(convs):
        return convs[int(wanted) - 1]
    for candidate in model.layers:
        if candidate.name == wanted and candidate.type_name == "Conv2D":
            return candidate
        if candidate.name == wanted:
            problem = f"{wanted} is a layer of type {candidate.type_name}, which has no kernels"
            break
    else:
        problem = (
            f"the model has {len(convs)} conv layer{'s' * (len(convs) > 1)}"
            if wanted.isdigit()
            else "the model has no layer of that name"
        )
    choices = ", ".join(
        f"{number} {conv.name} ({format_shape(conv.output_shape)})" for number, conv in enumerate(convs, 1)
    )
    raise CnnlabError(f"--layer {wanted}: {problem}; choose a conv layer by name or number: {choices}")


# ---------------------------------------------------------------------------------- kernels


def kernel_pictures(model, layer: str | int | None = None) -> tuple[object, np.ndarray, str]:
    """(layer, pictures, how): one picture per filter of the chosen conv layer, and how they were made.

    pictures are (filters, kh, kw) weights, averaged over the input channels when there are several,
    or (filters, kh, kw, 3) for the first conv layer of an RGB model (its weights as they are).
    """
    chosen = conv_layer(model, layer)
    weights = chosen.conv.weight.detach().float().cpu().numpy()  # (filters, channels, kh, kw)
    channels = weights.shape[1]
    if chosen is conv_layers(model)[0] and channels == 3 and model.input_shape[-1] == 3:
        return (
            chosen,
            weights.transpose(0, 2, 3, 1),
            "in colour: each kernel's red, green and blue slices, mid-gray = 0",
        )
    signs = "blue negative, white 0, red positive"
    how = signs if channels == 1 else f"each averaged over its {channels} input channels; {signs}"
    return chosen, weights.mean(axis=1), how


def kernel_shape_line(layer) -> str:
    """'conv2d: 32 kernels 3×3×1 (Keras kernel shape (3, 3, 1, 32))': the weights as the course prints them."""
    filters, channels, height, width = layer.conv.weight.shape
    return (
        f"{layer.name}: {filters} kernels {height}×{width}×{channels} "
        f"(Keras kernel shape {(height, width, channels, filters)})"
    )


def draw_kernels(model, layer: str | int | None = None, out=None) -> Figure:
    """Every learned kernel of a conv layer (the first by default), one panel per filter, numbered."""
    chosen, pictures, how = kernel_pictures(model, layer)
    filters = len(pictures)
    columns = min(filters, math.ceil(math.sqrt(2 * filters)))  # about twice as wide as tall
    rows = math.ceil(filters / columns)
    colour = pictures.ndim == 4
    colorbar_inches = 0.3 if colour else 1.2
    figure = Figure(
        figsize=(columns * KERNEL_INCHES + colorbar_inches, rows * KERNEL_INCHES + 2 * TITLE_INCHES),
        dpi=DPI,
        layout="constrained",
    )
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    limit = float(np.abs(pictures).max()) or 1.0  # one scale for the layer, symmetric around 0
    for index, axes in enumerate(panels):
        if index >= filters:
            axes.set_axis_off()
            continue
        if colour:  # 0 -> mid-gray; each channel's weight adds (positive) or removes (negative) its colour
            axes.imshow(0.5 + pictures[index] / (2 * limit), interpolation="nearest")
        else:
            shown = axes.imshow(pictures[index], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        axes.set_title(str(index), fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    if not colour:
        figure.colorbar(shown, ax=panels.tolist(), shrink=0.8, label="weight")
    kernel = format_shape(pictures.shape[1:3])
    figure.suptitle(f"{chosen.name} ({format_shape(chosen.output_shape)}): {filters} learned {kernel} kernels\n{how}")
    if out is not None:
        save_figure(figure, out)
    return figure


# ---------------------------------------------------------------------------------- inputs


def dataset_image(model, settings: dict, index: int = 0) -> tuple[np.ndarray, str]:
    """Test image ``index`` of the dataset in ``settings`` (a run's, see ``cnnlab.training.run.Run.dataset_settings``):
    uint8 (H, W, C), and what it is."""
    from cnnlab.data.registry import load_dataset

    if not settings.get("dataset"):
        raise CnnlabError("the run has no config.json and the model names no dataset; give an IMAGE instead")
    data = load_dataset(
        settings["dataset"],
        data_dir=settings.get("data_dir"),
        image_size=settings.get("image_size", 28),
        channels=settings.get("channels", 1),
    )
    count = len(data.x_test)
    if not 0 <= index < count:
        raise CnnlabError(f"--index {index}: the {data.name} test split has {count} images; give 0 to {count - 1}")
    image = data.x_test[index]  # (H, W, C) uint8
    if image.shape != tuple(model.input_shape):
        raise CnnlabError(
            f"{data.name}: its images are {format_shape(image.shape)}, the model takes "
            f"{format_shape(model.input_shape)}; give an IMAGE instead"
        )
    return image, f"test image {index} of {data.name} (label: {data.class_names[data.y_test[index]]})"


def image_file_input(model, path) -> np.ndarray:
    """A picture file made into the model's input, uint8 (H, W, C), as ``cnnlab predict`` makes it:
    MNIST's own preprocessing for digit models, a plain resize for others (see cnnlab.data.digits)."""
    from cnnlab.data.digits import model_input
    from cnnlab.data.images import open_image

    return model_input(open_image(path), model.input_shape, model.dataset)


# ---------------------------------------------------------------------------------- feature maps


def draw_feature_maps(
    model, image: np.ndarray, out=None, max_channels: int = DEFAULT_MAX_CHANNELS, source: str = ""
) -> Figure:
    """The input, then the first ``max_channels`` maps of every conv and pooling layer, a row per layer.

    ``image`` is uint8 (H, W, C) shaped like the model's input; ``source`` says where it came from.
    """
    from cnnlab.nn.inputs import as_model_input

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.shape != tuple(model.input_shape):
        raise ValueError(
            f"image must be uint8 {tuple(model.input_shape)}, the model's input. "
            f"Received: image of shape {image.shape} and dtype {image.dtype}"
        )
    if not (isinstance(max_channels, int) and max_channels >= 1):
        raise ValueError(f"max_channels must be a positive integer. Received: max_channels={max_channels!r}")
    conv_layers(model)  # a model without conv layers has nothing to show
    inputs = as_model_input(torch.from_numpy(image[None])).to(next(model.parameters()).device)  # (1, C, H, W)
    maps = feature_maps(model, inputs)  # [(layer, (1, C', H', W'))]
    shown = [min(tensor.shape[1], max_channels) for _, tensor in maps]
    lines = [math.ceil(count / MAX_COLUMNS) for count in shown]
    columns = min(MAX_COLUMNS, max(shown))
    heights = [INPUT_INCHES + TITLE_INCHES] + [n * MAP_INCHES + TITLE_INCHES for n in lines]
    figure = Figure(
        figsize=(max(columns * MAP_INCHES, 2 * INPUT_INCHES) + 0.2, sum(heights) + TITLE_INCHES),
        dpi=DPI,
        layout="constrained",
    )
    rows = figure.subfigures(len(heights), 1, height_ratios=heights)

    axes = rows[0].subplots()
    if image.shape[2] == 1:
        axes.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axes.imshow(image, interpolation="nearest")
    axes.set_axis_off()
    rows[0].suptitle(f"input ({format_shape(image.shape)}) {source}".strip(), fontsize=11)

    for row, (layer, tensor), count, line_count in zip(rows[1:], maps, shown, lines):
        planes = tensor[0].cpu().numpy()  # (C, H, W)
        panels = row.subplots(line_count, columns, squeeze=False).ravel()
        for channel, axes in enumerate(panels):
            if channel >= count:
                axes.set_axis_off()
                continue
            limit = float(np.abs(planes[channel]).max()) or 1.0  # an all-zero map stays white
            axes.imshow(planes[channel], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            axes.set_title(str(channel), fontsize=7, pad=2)
            axes.set_xticks([])
            axes.set_yticks([])
        which = "" if count == len(planes) else f": channels 0–{count - 1} of {len(planes)}"
        row.suptitle(f"{layer.name} ({format_shape(layer.output_shape)}){which}", fontsize=11)
    figure.suptitle(
        f"feature maps of {model.name}: red positive, blue negative, white 0; "
        "each map scaled to its own largest |value|",
        fontsize=10,
    )
    if out is not None:
        save_figure(figure, out)
    return figure
