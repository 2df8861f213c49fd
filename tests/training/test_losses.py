"""cnnlab.training.losses: Keras's losses from logits, and the loop trained with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.nn.layers import Dense, Flatten
from cnnlab.nn.sequential import Sequential
from cnnlab.training.config import FitConfig
from cnnlab.training.loop import fit
from cnnlab.training.losses import per_sample_accuracy, per_sample_loss, prepare_targets


@pytest.fixture
def logits():
    return torch.randn(16, 5, generator=torch.Generator().manual_seed(0)) * 3


def test_categorical_and_sparse_cross_entropy_agree(logits):
    labels = torch.arange(16) % 5
    sparse = per_sample_loss("sparse_categorical_crossentropy", logits, labels, "softmax")
    one_hot = prepare_targets("categorical_crossentropy", torch.eye(5)[labels], (5,))
    torch.testing.assert_close(per_sample_loss("categorical_crossentropy", logits, one_hot, "softmax"), sparse)
    # the outputs of a softmax given as they are (no activation left out): Keras's from_logits=False formula
    torch.testing.assert_close(
        per_sample_loss("categorical_crossentropy", torch.softmax(logits, 1), one_hot, "linear"),
        sparse,
        atol=1e-5,
        rtol=1e-4,
    )


def test_binary_cross_entropy_from_logits_is_finite_where_the_sigmoid_saturates():
    logits, targets = torch.tensor([[-200.0], [0.0], [3.0]]), torch.tensor([[1.0], [0.0], [1.0]])
    stable = per_sample_loss("binary_crossentropy", logits, targets, "sigmoid")
    assert torch.isfinite(stable).all() and stable[0] == pytest.approx(200.0)
    clipped = per_sample_loss("binary_crossentropy", torch.sigmoid(logits), targets, "linear")
    torch.testing.assert_close(clipped[1:], stable[1:], atol=1e-5, rtol=1e-4)
    assert per_sample_accuracy(logits, targets, "sigmoid").tolist() == [0.0, 1.0, 1.0]


def test_prepare_targets_takes_keras_shapes_and_refuses_others():
    assert prepare_targets("sparse_categorical_crossentropy", np.array([[1], [2]], "uint8"), (3,)).tolist() == [1, 2]
    assert prepare_targets("binary_crossentropy", np.array([0, 1]), (1,)).shape == (2, 1)
    with pytest.raises(ValueError, match=r"loss='mean_squared_error' needs targets shaped like the model's output"):
        prepare_targets("mean_squared_error", np.zeros((2, 4)), (3,))


def test_fit_takes_float_images_already_scaled_as_it_takes_uint8():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 4, 4, 1)).astype("uint8")
    labels = (pixels.reshape(64, -1).mean(1) > 127).astype("int64")

    def history(images, targets, loss):
        torch.manual_seed(0)
        model = Sequential([Flatten(), Dense(2, activation="softmax")], input_shape=(4, 4, 1))
        config = FitConfig(epochs=2, batch_size=16, loss=loss, device="cpu", precision="float32")
        return fit(model, (images, targets), config=config, verbose=False)

    from_uint8 = history(pixels, labels, "sparse_categorical_crossentropy")
    from_float = history(
        pixels.astype("float32") / 255.0, np.eye(2, dtype="float32")[labels], "categorical_crossentropy"
    )
    for mine, theirs in zip(from_uint8, from_float):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["accuracy"] == theirs["accuracy"]
