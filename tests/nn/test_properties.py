"""Property tests: random model specs and random pictures never end in anything but a CnnlabError.

The spec parser gets 3,000 generated inputs (one-line specs and JSON specs), the picture
preprocessing 1,000 (every Pillow mode a file can hold, five formats, noise, strokes, blanks and
damaged bytes). Whatever builds must also be right: a built model's shapes match its real
forward pass and its spec round-trips; a prepared picture has the model's input shape and
probabilities that sum to 1.
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.data.images import open_image
from cnnlab.errors import CnnlabError
from cnnlab.names import MODEL_CARDS
from cnnlab.nn.layers import ACTIVATIONS, LAYER_ALIASES, LAYER_TYPES, PADDINGS
from cnnlab.nn.registry import create_model, parse_model
from cnnlab.nn.specs import KEYWORDS, SpecError, model_from_spec, parse_spec_line
from cnnlab.serve.predict import predict_image

# --- model specs -----------------------------------------------------------------------------------

small = st.integers(1, 12)
odd_numbers = st.sampled_from([0, -1, -7, 10**12, 2**63])  # zero, negatives, sizes no memory holds
sizes = st.one_of(small, small, small, odd_numbers)
pairs = st.one_of(sizes, st.lists(sizes, min_size=0, max_size=3))
paddings = st.sampled_from([*PADDINGS, "full", "", None])
activations = st.sampled_from([*ACTIVATIONS, None, "wobble", 3])
anything = st.one_of(
    sizes,
    st.floats(),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.lists(sizes, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

# Layers as a user might write them (mostly valid), and layers with any arguments at all.
PLAUSIBLE = {
    "Conv2D": (
        {"filters": sizes, "kernel_size": pairs},
        {"strides": pairs, "padding": paddings, "activation": activations, "use_bias": st.booleans()},
    ),
    "MaxPool2D": ({}, {"pool_size": pairs, "strides": st.one_of(st.none(), pairs), "padding": paddings}),
    "AvgPool2D": ({}, {"pool_size": pairs, "strides": st.one_of(st.none(), pairs), "padding": paddings}),
    "Activation": ({"activation": activations}, {}),
    "Flatten": ({}, {}),
    "Dense": ({"units": sizes}, {"activation": activations, "use_bias": st.booleans()}),
    "Dropout": ({"rate": st.floats(-0.5, 1.5)}, {}),
    "BatchNormalization": ({}, {"momentum": st.floats(-0.1, 1.1), "epsilon": st.floats(-1e-3, 1e-1)}),
    "GlobalAveragePooling2D": ({}, {}),
}
plausible_layers = st.one_of(
    *[
        st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional)
        for kind, (required, optional) in PLAUSIBLE.items()
    ]
)
any_layers = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "activation",
            "units",
            "rate",
            "pool_size",
            "momentum",
            "epsilon",
            "use_bias",
            "name",
            "input_shape",
            "bogus",
        ]
    ),
    st.one_of(anything, st.sampled_from([*LAYER_TYPES, *LAYER_ALIASES, "Conv3D"])),
    max_size=5,
)
input_shapes = st.one_of(
    st.tuples(small, small, st.integers(1, 3)).map(list),
    st.tuples(small).map(list),
    st.lists(sizes, max_size=4),
    anything,
)
# Layers with valid arguments only: whether they build depends on the shapes alone.
few, window = st.integers(1, 4), st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2, max_size=2))
valid_layers = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("Conv2D"), "filters": few, "kernel_size": window},
        optional={
            "strides": window,
            "padding": st.sampled_from(PADDINGS),
            "activation": st.sampled_from(list(ACTIVATIONS)),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["MaxPool2D", "AvgPool2D", "MaxPooling2D"])},
        optional={"pool_size": window, "strides": window, "padding": st.sampled_from(PADDINGS)},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["Flatten", "GlobalAveragePooling2D", "BatchNormalization"])}),
    st.fixed_dictionaries(
        {"type": st.just("Dense"), "units": st.integers(1, 16)},
        optional={"activation": st.sampled_from(list(ACTIVATIONS))},
    ),
    st.fixed_dictionaries({"type": st.just("Dropout"), "rate": st.floats(0, 0.9)}),
)
specs = st.one_of(
    st.fixed_dictionaries(
        {
            "input_shape": st.tuples(small, small, st.integers(1, 3)).map(list),
            "layers": st.lists(valid_layers, min_size=1, max_size=6),
        }
    ),
    st.fixed_dictionaries(
        {"layers": st.lists(st.one_of(plausible_layers, plausible_layers, any_layers), max_size=6)},
        optional={"input_shape": input_shapes, "name": st.one_of(st.text(max_size=8), anything)},
    ),
    anything,  # not even an object with layers
)


def _check_model(model) -> None:
    """A built model's spec round-trips, and its real forward pass has the shape it claims."""
    spec = model.to_spec()
    assert model_from_spec(spec).to_spec() == spec
    if math.prod(model.input_shape) > 50_000:  # huge inputs build fine; running them is not this test's business
        return
    channels_first = (
        (model.input_shape[-1], *model.input_shape[:-1]) if len(model.input_shape) == 3 else model.input_shape
    )
    with torch.no_grad():
        output = model.eval()(torch.rand(2, *channels_first))
    expected = model.output_shape if len(model.output_shape) == 1 else (model.output_shape[2], *model.output_shape[:2])
    assert tuple(output.shape) == (2, *expected)


@settings(max_examples=settings.default.max_examples * 2)
@given(spec=specs)
def test_any_json_spec_builds_or_is_refused_with_a_spec_error(spec):
    try:
        model = model_from_spec(spec)
    except SpecError:
        event("refused")
        return
    event("built")
    _check_model(model)


words = st.one_of(
    st.integers(-2, 40).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(
        [*PADDINGS, *ACTIVATIONS, "5x3", "0x2", "strides=2", "padding=same", "rate=0.5", "units=", "=", "x", ""]
    ),
    st.text(alphabet="0123456789x=.e-", max_size=4),
)
valid_tokens = st.sampled_from(
    [
        "conv(4,3)",
        "conv(2,3,same,relu)",
        "conv(3,2x1,strides=2)",
        "maxpool(2)",
        "avgpool(3,same)",
        "relu",
        "softmax",
        "flatten",
        "gap",
        "dense(8,relu)",
        "dense(10)",
        "dropout(0.3)",
        "batchnorm",
    ]
)
tokens = st.one_of(
    valid_tokens,
    valid_tokens,
    st.builds(
        lambda keyword, arguments: f"{keyword}({','.join(arguments)})" if arguments is not None else keyword,
        st.sampled_from([*KEYWORDS, "input", *ACTIVATIONS, "wobble"]),
        st.one_of(st.none(), st.lists(words, max_size=4)),
    ),
    st.text(alphabet="abcdefgilmnoprstuvx0123456789(),=._ ", max_size=12),
)
lines = st.lists(tokens, max_size=6).map("-".join)


@given(text=lines, input_shape=st.one_of(st.none(), st.just((28, 28, 1)), st.tuples(small, small, small)))
def test_any_one_line_spec_builds_or_is_refused_with_a_spec_error(text, input_shape):
    try:
        spec = parse_spec_line(text)
    except SpecError:
        spec = None
    try:
        model = parse_model(text, input_shape=input_shape)
    except CnnlabError:
        event("refused")
        return
    event("built")
    assert spec is not None or text in MODEL_CARDS  # a model that is no registry name was read as a line
    _check_model(model)


# --- pictures --------------------------------------------------------------------------------------

# Which file formats Pillow writes each mode to (the others would convert it or refuse).
FORMATS = {
    "1": ["PNG", "BMP", "GIF"],
    "L": ["PNG", "JPEG", "BMP", "GIF", "WEBP"],
    "P": ["PNG", "BMP", "GIF"],
    "RGB": ["PNG", "JPEG", "BMP", "GIF", "WEBP"],
    "RGBA": ["PNG", "WEBP", "GIF"],
    "LA": ["PNG"],
    "I;16": ["PNG"],
    "CMYK": ["JPEG"],
}


@cache
def models() -> dict[str, torch.nn.Module]:
    """Untrained models for each kind of preprocessing: MNIST's, Fashion-MNIST's, a plain resize (colour)."""
    digits = create_model("cnn")
    digits.dataset = "mnist"
    fashion = create_model("cnn2")
    fashion.dataset = "fashion-mnist"
    colour = create_model("cifar-cnn")
    colour.dataset = "cifar10"
    for model in (digits, fashion, colour):
        model.class_names = [str(k) for k in range(10)]
    return {"mnist": digits, "fashion-mnist": fashion, "cifar10": colour}


@st.composite
def picture_files(draw) -> bytes:
    """A small picture of a random mode, content and format, as its file's bytes (sometimes damaged)."""
    mode = draw(st.sampled_from(list(FORMATS)))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    content = draw(st.sampled_from(["noise", "stroke", "blank"]))
    gray = np.full((height, width), draw(st.integers(0, 255)), dtype=np.uint8)
    if content == "noise":
        gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif content == "stroke":
        top, left = rng.integers(0, height), rng.integers(0, width)
        gray[top : top + max(1, height // 2), left : left + max(1, width // 6)] = 255 - gray[0, 0]
    colour = [rng.integers(0, 256, gray.shape, dtype=np.uint8) if content == "noise" else gray for _ in range(2)]
    picture = Image.fromarray(np.stack([gray, *colour], axis=-1) if draw(st.booleans()) else gray).convert(mode)
    if mode in ("RGBA", "LA"):  # some transparency: see-through paper, or see-through ink
        picture.putalpha(Image.fromarray(np.where(gray > 127, draw(st.integers(0, 255)), 255).astype(np.uint8)))
    buffer = io.BytesIO()
    picture.save(buffer, format=draw(st.sampled_from(FORMATS[mode])))
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "truncated", "flipped", "garbage"]))
    if damage == "truncated":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == "flipped":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    elif damage == "garbage":
        data = rng.integers(0, 256, draw(st.integers(0, 64)), dtype=np.uint8).tobytes()
    return data


@given(data=picture_files(), dataset=st.sampled_from(["mnist", "fashion-mnist", "cifar10"]))
def test_any_picture_is_prepared_or_refused_with_a_cnnlab_error(data, dataset):
    model = models()[dataset]
    try:
        prediction = predict_image(model, open_image(data, name="picture"))
    except CnnlabError as problem:
        event(f"refused: {type(problem).__name__}")
        return
    event("prepared")
    assert prediction.model_input.dtype == np.uint8
    assert prediction.model_input.shape == tuple(model.input_shape)
    assert prediction.probabilities.shape == (10,)
    assert np.isfinite(prediction.probabilities).all()
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
