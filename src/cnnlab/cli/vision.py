"""Commands of the convolution lab: ``filter`` and ``channels`` (cnnlab.lab.vision on the command line),
and ``filters`` and ``features``, which look inside a trained model (cnnlab.lab.inspect).

Each command parses its options, calls the Python API, prints what it computed and writes a PNG.
The shared pieces are the N|NY,NX option type, ``--out``, and turning the lab's ValueErrors and
unwritable output files into one-line user errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from cnnlab.errors import CnnlabError


class PositivePair(click.ParamType):
    """``N`` or ``NY,NX``: one positive integer for both axes, or one for rows and one for columns."""

    name = "N|NY,NX"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",")]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or min(numbers) < 1:
            self.fail(
                f"expected a positive integer or two separated by a comma (2 or 2,1); received {value!r}", param, ctx
            )
        return (numbers[0], numbers[-1])


class PoolSpec(click.ParamType):
    """``max`` or ``avg``, optionally ``:K`` or ``:KY,KX`` (Keras's default pool size is 2)."""

    name = "max|avg[:K]"

    def convert(self, value, param, ctx) -> tuple[str, tuple[int, int]]:
        if isinstance(value, tuple):
            return value
        kind, _, size = str(value).partition(":")
        if kind not in ("max", "avg"):
            self.fail(f"expected max or avg, optionally with :K (max:5); received {value!r}", param, ctx)
        return kind, PositivePair().convert(size or "2", param, ctx)


def out_option(default: str):
    """The ``--out FILE.png`` option every drawing command has."""
    return click.option(
        "--out",
        default=default,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="PNG file to write (through a temporary file, then renamed).",
    )


@contextmanager
def lab_errors(command: str) -> Iterator[None]:
    """cnnlab.lab.vision rejects impossible settings with ValueError; here they are the user's to fix."""
    try:
        yield
    except ValueError as problem:
        raise CnnlabError(f"{command}: {problem}") from None


@contextmanager
def written(path, option: str = "--out") -> Iterator[None]:
    """An output file that cannot be written (no such folder, no permission) is the user's to fix."""
    try:
        yield
    except OSError as problem:
        raise CnnlabError(
            f"{path}: cannot be written ({problem.strerror or problem}); choose another {option}"
        ) from None


def _wrote(figure, out) -> str:
    """'wrote filters.png (870×480 pixels)'."""
    width, height = (round(inches * figure.dpi) for inches in figure.get_size_inches())
    return f"wrote {out} ({width}×{height} pixels)"


def _read_image(path: str | None):
    """(image, where it came from): the file, or the lab's default photo when none is given."""
    from cnnlab.lab import vision

    if path is None:
        return vision.default_photo(), f"the default photo ({vision.DEFAULT_PHOTO}, centre square)"
    return vision.load_image(path), path


def _output_line(before: tuple[int, ...], after: tuple[int, ...], window, stride, padding: str) -> str:
    """``output: 255×510  (out = ...: rows floor((512 + 0 − 3) / 2) + 1 = 255, cols ...)``."""
    from cnnlab.lab import vision

    steps = []
    for axis, n, k, s in zip(("rows", "cols"), before, window, stride):
        out, pad = vision.output_size(n, k, s, padding)
        steps.append(f"{axis} floor(({n} + {pad} − {k}) / {s}) + 1 = {out}")
    return f"output: {vision.format_shape(after)}  ({vision.FORMULA}: {', '.join(steps)})"


def _apply_kernel(image, label: str, weights, stride, padding: str, per_channel: bool):
    """Convolve, print the kernel and the output shape; (output, short description)."""
    from cnnlab.lab import vision

    window = weights.shape[:2]
    print(f"kernel: {label} {vision.format_shape(window)}, stride {stride}, padding {padding}")
    output = vision.convolve(image, weights, stride=stride, padding=padding, per_channel=per_channel)
    print(_output_line(image.shape, output.shape, window, stride, padding))
    return output, f"{label} {vision.format_shape(window)}, stride {stride}, {padding}"


def _apply_pool(image, kind: str, size: tuple[int, int]):
    """Pool K×K with stride K (Keras's default), print the output shape; (output, short description)."""
    from cnnlab.lab import vision

    print(f"pool: {kind} {vision.format_shape(size)}, stride {size}, padding valid")
    output = vision.pool(image, size, kind=kind)
    print(_output_line(image.shape, output.shape, size, size, "valid"))
    return output, f"{kind} pool {vision.format_shape(size)}"


@click.command("filter")
@click.argument("image", required=False)
@click.option(
    "--kernel",
    "-k",
    "kernel_spec",
    metavar="NAME|MATRIX|FILE",
    help="identity, box, mean, gaussian, sharpen, sobel-x, sobel-y, laplacian, emboss, random; "
    "or a matrix, rows separated by ';' (\"1,2,1;0,0,0;-1,-2,-1\"); or a .npy/.txt file.",
)
@click.option(
    "--kernel-size",
    type=click.IntRange(min=1),
    default=None,
    help="Size K of a K×K identity (odd), box, mean, gaussian or random kernel.  [default: 3]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random kernel.")
@click.option(
    "--stride",
    type=PositivePair(),
    default="1",
    show_default=True,
    help="Step of the kernel: one for both axes, or rows,cols (2,1).",
)
@click.option(
    "--padding",
    type=click.Choice(["valid", "same"]),
    default="valid",
    show_default=True,
    help="valid: no padding; same: zeros as TensorFlow pads them (the odd one bottom/right).",
)
@click.option(
    "--pool",
    "pool_spec",
    type=PoolSpec(),
    default=None,
    metavar="max|avg[:K]",
    help="Then pool K×K with stride K (max:5, avg:5; valid padding); alone, pools the image.",
)
@click.option(
    "--per-channel", is_flag=True, help="For a colour image: filter and show each channel instead of summing them."
)
@click.option(
    "--save-npy",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also save the raw output array (float64) as a .npy file.",
)
@out_option("filter.png")
def filter_command(image, kernel_spec, kernel_size, seed, stride, padding, pool_spec, per_channel, save_npy, out):
    """Apply a kernel to IMAGE as a Conv2D layer does; draw input and output side by side.

    This is a cross-correlation, as in Keras and PyTorch: the kernel is slid over the image
    without being flipped. A colour image gets the kernel on each channel, the results summed
    (a Conv2D with three input channels), unless --per-channel. Pixels are floats in [0, 1].

    Without IMAGE: a 512×512 grayscale photo (Grace Hopper, from matplotlib's sample data), the
    size of the course's picture. It prints each shape and the formula that gave it:
    out = floor((in + pad − k) / s) + 1.

    \b
    Examples:
      cnnlab filter --kernel box --stride 2,1      # 512×512 -> 255×510, a blur
      cnnlab filter --kernel sobel-y --padding same
      cnnlab filter --pool max:5                   # 512×512 -> 102×102
      cnnlab filter photo.jpg --kernel "0,-1,0;-1,5,-1;0,-1,0" --per-channel
    """
    from cnnlab.lab import vision

    if kernel_spec is None and pool_spec is None:
        raise click.UsageError("give --kernel, --pool or both")
    if kernel_spec is None and kernel_size is not None:
        raise click.UsageError("--kernel-size needs --kernel")
    with lab_errors("filter"):
        kernel = None if kernel_spec is None else vision.parse_kernel(kernel_spec, size=kernel_size, seed=seed)
        picture, source = _read_image(image)
        mode = "RGB" if picture.ndim == 3 else "gray"
        print(f"input: {vision.format_shape(picture.shape)} ({mode}) from {source}")
        result, steps = picture, []
        if kernel is not None:
            result, step = _apply_kernel(result, *kernel, stride, padding, per_channel)
            steps.append(step)
        if pool_spec is not None:
            result, step = _apply_pool(result, *pool_spec)
            steps.append(step)
    if save_npy is not None:
        with written(save_npy, "--save-npy"):
            vision.save_array(result, save_npy)
        print(f"wrote {save_npy}")
    with written(out):
        vision.draw_filter(picture, result, description="\nthen ".join(steps), out=out)
    print(f"wrote {out}")


@click.command("channels")
@click.argument("image", required=False)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random image (without IMAGE).")
@out_option("channels.png")
def channels_command(image, seed, out):
    """Show a colour image combined and as its red, green and blue planes.

    Without IMAGE: a random 4×4×3 image, as in the course, drawn with one square per pixel.
    Pixels are floats in [0, 1]; each plane is drawn from white (0) to its full colour (1).
    """
    from cnnlab.lab import vision

    if image is None:
        picture, source = vision.random_color_image(seed), f"a random image (seed {seed})"
    else:
        picture, source = vision.load_image(image), image
        if picture.ndim != 3:
            raise CnnlabError(f"{image}: a grayscale image has a single plane; give a colour image")
    print(f"input: {vision.format_shape(picture.shape)} (RGB) from {source}")
    for channel, name in enumerate(vision.channel_names(3)):
        plane = picture[:, :, channel]
        print(f"{name}: min {plane.min():.3f}, mean {plane.mean():.3f}, max {plane.max():.3f}")
    with written(out):
        vision.draw_channels(picture, out=out)
    print(f"wrote {out}")


@click.command("filters")
@click.argument("run")
@click.option(
    "--layer",
    metavar="NAME|N",
    default=None,
    help="A conv layer: its name (conv2d_1) or its number among the conv layers (2).  [default: the first]",
)
@out_option("filters.png")
def filters_command(run, layer, out):
    """Draw every learned kernel of a conv layer of RUN (a folder made by `cnnlab train`).

    One panel per filter, numbered, the weights blue (negative), white (0) and red (positive) on
    one scale for the layer. A layer with several input channels has a kernel slice per channel:
    they are averaged into one picture per filter, except for the first layer of an RGB model,
    whose red, green and blue slices are drawn in colour (gray is 0).

    \b
    Examples:
      cnnlab filters runs/cnn-mnist-20250101-120000
      cnnlab filters runs/deep --layer conv2d_1 --out second-layer.png
    """
    from cnnlab.lab import inspect
    from cnnlab.training.run import Run

    model = Run(run).load_model()
    chosen = inspect.conv_layer(model, layer)
    print(inspect.kernel_shape_line(chosen))
    with written(out):
        figure = inspect.draw_kernels(model, chosen.name, out=out)
    print(_wrote(figure, out))


@click.command("features")
@click.argument("run")
@click.argument("image", required=False)
@click.option(
    "--index",
    type=click.IntRange(min=0),
    default=None,
    help="Use test image N of the run's dataset (instead of IMAGE).  [default: 0]",
)
@click.option(
    "--max-channels",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Draw the first K channels of each layer.",
)
@out_option("features.png")
def features_command(run, image, index, max_channels, out):
    """Draw what every conv and pooling layer of RUN computes for one input: its feature maps.

    The input is IMAGE, prepared as `cnnlab predict` prepares it (for MNIST models: the digit
    cropped, scaled to 20×20 and centred in 28×28, light on dark), or test image --index N of
    the dataset the run was trained on. A row per layer, titled with its name and output shape;
    each map is scaled to its own largest |value| (blue negative, white 0, red positive).

    \b
    Examples:
      cnnlab features runs/cnn-mnist-20250101-120000 --index 7
      cnnlab features runs/cnn-mnist-20250101-120000 my-digit.png --max-channels 32
    """
    from cnnlab.lab import inspect, vision
    from cnnlab.training.run import Run

    if image is not None and index is not None:
        raise click.UsageError("give IMAGE or --index, not both")
    model = Run(run).load_model()
    inspect.conv_layers(model)  # refuse a model without conv layers before reading any data
    if image is None:
        pixels, source = inspect.dataset_image(model, Run(run).dataset_settings(model), index or 0)
    else:
        pixels, source = inspect.image_file_input(model, image), f"{image}, as the model sees it"
    print(f"input: {vision.format_shape(pixels.shape)} {source}")
    for layer in model.layers:
        if layer.type_name in inspect.SPATIAL_LAYERS:
            channels = layer.output_shape[-1]
            print(
                f"{layer.name} ({vision.format_shape(layer.output_shape)}): "
                f"drew {min(channels, max_channels)} of {channels} channels"
            )
    with written(out):
        figure = inspect.draw_feature_maps(model, pixels, out=out, max_channels=max_channels, source=source)
    print(_wrote(figure, out))


COMMANDS = [filter_command, channels_command, filters_command, features_command]
