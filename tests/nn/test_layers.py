"""One harness every layer passes: output shape, parameter count, save/reload round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.nn import layers as L
from cnnlab.nn.modelio import load, save
from cnnlab.nn.sequential import Sequential
from cnnlab.nn.summary import summarize

# (layer, input shape (H, W, C) or (F,), expected output shape, expected Keras parameter count)
CASES = [
    (lambda: L.Conv2D(32, (3, 3)), (28, 28, 1), (26, 26, 32), 320),
    (lambda: L.Conv2D(1, (3, 3), strides=(2, 1)), (512, 512, 1), (255, 510, 1), 10),
    (lambda: L.Conv2D(4, 3, padding="same"), (7, 7, 3), (7, 7, 4), 112),
    (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (8, 8, 2), (4, 4, 4), 76),
    (lambda: L.Conv2D(2, (2, 4), padding="same", use_bias=False), (5, 6, 1), (5, 6, 2), 16),
    (lambda: L.MaxPool2D((2, 2)), (26, 26, 32), (13, 13, 32), 0),
    (lambda: L.MaxPool2D((5, 5)), (512, 512, 1), (102, 102, 1), 0),
    (lambda: L.MaxPool2D(3, strides=2, padding="same"), (7, 7, 2), (4, 4, 2), 0),
    (lambda: L.AvgPool2D((5, 5)), (512, 512, 1), (102, 102, 1), 0),
    (lambda: L.AvgPool2D(2, padding="same"), (5, 5, 3), (3, 3, 3), 0),
    (lambda: L.Activation("relu"), (13, 13, 32), (13, 13, 32), 0),
    (lambda: L.Flatten(), (13, 13, 32), (5408,), 0),
    (lambda: L.Dense(128, activation="relu"), (5408,), (128,), 692_352),
    (lambda: L.Dense(10, activation="softmax"), (128,), (10,), 1290),
    (lambda: L.Dropout(0.4), (128,), (128,), 0),
    (lambda: L.BatchNormalization(), (6, 6, 8), (6, 6, 8), 32),
    (lambda: L.BatchNormalization(), (16,), (16,), 64),
    (lambda: L.GlobalAveragePooling2D(), (6, 6, 8), (8,), 0),
]


@pytest.mark.parametrize("make, input_shape, output_shape, params", CASES)
def test_layer_harness(make, input_shape, output_shape, params, tmp_path):
    torch.manual_seed(0)
    model = Sequential([make()], input_shape=input_shape, name="harness")
    layer = model.layers[0]
    assert layer.output_shape == output_shape
    assert summarize(model).total == params
    batch = torch.rand(3, *((input_shape[2], *input_shape[:2]) if len(input_shape) == 3 else input_shape))
    model.eval()
    out = model(batch)
    keras_order = (out.shape[2], out.shape[3], out.shape[1]) if out.dim() == 4 else tuple(out.shape[1:])
    assert keras_order == output_shape
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.to_spec() == model.to_spec()
    torch.testing.assert_close(again(batch), out)


def tf_same_reference(image, kernel, stride):
    """TensorFlow's 'same' by hand: pad total = max((ceil(n/s)-1)*s + k - n, 0), extra at the end."""
    (kh, kw), (sh, sw) = kernel.shape, stride
    h, w = image.shape
    oh, ow = -(-h // sh), -(-w // sw)
    ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
    padded = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (padded[i * sh : i * sh + kh, j * sw : j * sw + kw] * kernel).sum()
    return out


@pytest.mark.parametrize(
    "size, k, stride",
    [((8, 8), (3, 3), (2, 2)), ((7, 9), (2, 2), (2, 3)), ((5, 6), (4, 3), (3, 2)), ((6, 6), (1, 1), (2, 2))],
)
def test_same_padding_with_strides_matches_tensorflow(size, k, stride):
    rng = np.random.default_rng(1)
    image, kernel = rng.normal(size=size), rng.normal(size=k)
    conv = L.Conv2D(1, k, strides=stride, padding="same", use_bias=False)
    model = Sequential([conv], input_shape=(*size, 1))
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor(kernel).reshape(1, 1, *k))
    got = model(torch.tensor(image, dtype=torch.float32)[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(got, tf_same_reference(image, kernel, stride), rtol=1e-5, atol=1e-5)


def test_same_pooling_ignores_the_padding():
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5) - 30  # all negative: padding 0 would win a max
    top_left = x[0, 0, :2, :2]
    maxed = Sequential([L.MaxPool2D(2, padding="same")], input_shape=(5, 5, 1))(x)
    averaged = Sequential([L.AvgPool2D(2, padding="same")], input_shape=(5, 5, 1))(x)
    assert maxed[0, 0, 0, 0] == top_left.max() and maxed[0, 0, 2, 2] == x[0, 0, 4, 4]
    assert averaged[0, 0, 0, 0] == top_left.mean() and averaged[0, 0, 2, 2] == x[0, 0, 4, 4]


def test_glorot_uniform_kernels_and_zero_biases():
    torch.manual_seed(0)
    conv = Sequential([L.Conv2D(32, 3)], input_shape=(28, 28, 1)).layers[0].conv
    limit = (6 / (9 * 1 + 9 * 32)) ** 0.5
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(conv.bias) == 0


def test_flatten_uses_keras_order():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 3, 2, 2)  # (B, C, H, W)
    flat = Sequential([L.Flatten()], input_shape=(2, 2, 3))(x)
    assert flat[0].tolist() == x[0].permute(1, 2, 0).flatten().tolist()


def test_last_softmax_is_left_to_predict_proba():
    model = Sequential([L.Flatten(), L.Dense(4, activation="softmax")], input_shape=(2, 2, 1))
    x = torch.rand(5, 1, 2, 2)
    logits = model(x)
    assert not torch.allclose(logits.sum(1), torch.ones(5))
    torch.testing.assert_close(model.predict_proba(x), F.softmax(logits, dim=1))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: L.Conv2D(0, 3), "Received: filters=0"),
        (lambda: L.Conv2D(8, (3, 0)), "Received: kernel_size=(3, 0)"),
        (lambda: L.Conv2D(8, 3, strides=0), "Received: strides=0"),
        (lambda: L.Conv2D(8, 3, padding="full"), "Received: padding='full'"),
        (lambda: L.Conv2D(8, 3, use_bias="false"), "use_bias must be True or False. Received: use_bias='false'"),
        (lambda: L.Dense(10, activation="softmaxx"), "Received: activation='softmaxx'"),
        (lambda: L.Dropout(1.0), "Received: rate=1.0"),
        (lambda: L.MaxPool2D(-1), "Received: pool_size=-1"),
        (lambda: L.MaxPool2D(1, strides=10**12), "from 1 to 65536 or a pair of them. Received: strides=1000000000000"),
    ],
)
def test_layers_say_what_they_received(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_impossible_shapes_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        Sequential([L.Conv2D(4, 5)], input_shape=(3, 3, 1))
    with pytest.raises(ValueError, match="add Flatten"):
        Sequential([L.Dense(4)], input_shape=(3, 3, 1))
