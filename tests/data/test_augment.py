"""Augmentation: the policy text, shapes, what a shift and a flip do, and randomness drawn from (seed, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data.augment import Augmentation, parse_augment
from cnnlab.data.registry import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.nn.registry import create_model
from cnnlab.training.checkpoint import Progress
from cnnlab.training.config import FitConfig
from cnnlab.training.loop import fit
from cnnlab.training.train import seed_everything


def test_policy_text_round_trips():
    assert parse_augment("shift:2,flip") == Augmentation(shift=2, flip=True)
    assert parse_augment(" FLIP ") == Augmentation(flip=True)
    assert str(parse_augment("flip,shift:3")) == "shift:3,flip"
    assert parse_augment(None) is None and parse_augment("none") is None and parse_augment("") is None


@pytest.mark.parametrize("text", ["shift", "shift:0", "shift:-1", "shift:two", "rotate:10", "flip:1"])
def test_unreadable_policy_names_the_option(text):
    with pytest.raises(CnnlabError, match="--augment"):
        parse_augment(text)


def test_choices_come_from_seed_and_step_only():
    policy = Augmentation(shift=2, flip=True)
    torch.manual_seed(123)  # the global generator plays no part
    first = policy.draw(64, seed=5, step=17)
    torch.manual_seed(456)
    assert torch.equal(first, policy.draw(64, seed=5, step=17))
    assert not torch.equal(first, policy.draw(64, seed=5, step=18))
    assert not torch.equal(first, policy.draw(64, seed=6, step=17))
    assert first[:, :2].min() >= 0 and first[:, :2].max() <= 4 and set(first[:, 2].tolist()) == {0, 1}


def test_shape_and_type_are_kept():
    images = torch.randint(0, 256, (9, 28, 28, 3), dtype=torch.uint8)
    policy = Augmentation(shift=3, flip=True)
    out = policy.apply(images, policy.draw(9, seed=0, step=0))
    assert out.shape == images.shape and out.dtype == torch.uint8


def test_a_shift_moves_the_image_and_fills_with_black():
    images = torch.randint(1, 256, (2, 6, 7, 1), dtype=torch.uint8)
    # offsets are the crop's corner in the image padded by 2: (0, 4) moves down 2 and left 2
    choices = torch.tensor([[0, 4, 0], [2, 2, 0]])
    out = Augmentation(shift=2).apply(images, choices).numpy()
    expected = np.zeros((6, 7, 1), np.uint8)
    expected[2:, :5] = images[0, :4, 2:].numpy()
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], images[1].numpy())  # the centre crop is the image itself


def test_a_flip_mirrors_left_to_right():
    images = torch.randint(0, 256, (2, 5, 6, 1), dtype=torch.uint8)
    choices = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = Augmentation(shift=1, flip=True).apply(images, choices)
    assert torch.equal(out[0], images[0].flip(1)) and torch.equal(out[1], images[1])


def test_wrong_choices_are_refused():
    with pytest.raises(ValueError, match="Received"):
        Augmentation(shift=1).apply(torch.zeros(4, 5, 5, 1, dtype=torch.uint8), torch.zeros(3, 3, dtype=torch.long))


@pytest.mark.slow
def test_training_in_two_parts_sees_the_same_augmented_images():
    """The draws depend on (seed, global step): stopping after an epoch and going on changes nothing."""
    data = load_dataset("mnist")
    train_data = (data.x_train[:256], data.y_train[:256])
    config = FitConfig(epochs=2, batch_size=64, augment="shift:2", device="cpu")

    seed_everything(0)
    whole = create_model("cnn")
    fit(whole, train_data, config=config, verbose=False)

    seed_everything(0)
    parts = create_model("cnn")
    first = FitConfig(**{**config.__dict__, "epochs": 1})
    progress, optimizer = Progress(), make_optimizer(parts, config)
    fit(parts, train_data, config=first, progress=progress, optimizer=optimizer, verbose=False)
    fit(parts, train_data, config=config, progress=progress, optimizer=optimizer, verbose=False)
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(parts.state_dict()[key], value, rtol=0, atol=0)

    seed_everything(0)
    plain = create_model("cnn")
    fit(plain, train_data, config=FitConfig(**{**config.__dict__, "augment": None}), verbose=False)
    assert not torch.equal(plain.state_dict()["layers.0.conv.weight"], whole.state_dict()["layers.0.conv.weight"])
