"""Optimizers by name with Keras's defaults, Keras's RMSprop update, torch's others without their slow first call."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cnnlab.nn import optimizers
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.nn.registry import create_model
from cnnlab.training.config import TrainConfig


def test_optimizers_use_keras_defaults():
    model = create_model("cnn")
    rmsprop = make_optimizer(model, TrainConfig(optimizer="rmsprop")).defaults
    adam = make_optimizer(model, TrainConfig(optimizer="adam")).defaults
    sgd = make_optimizer(model, TrainConfig(optimizer="sgd")).defaults
    assert (rmsprop["lr"], rmsprop["rho"], rmsprop["epsilon"]) == (1e-3, 0.9, 1e-7)
    assert (adam["lr"], adam["betas"], adam["eps"]) == (1e-3, (0.9, 0.999), 1e-7)
    assert (sgd["lr"], sgd["momentum"]) == (1e-2, 0.0)


def test_rmsprop_divides_by_the_root_of_velocity_plus_epsilon_as_keras_does():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(50))
    optimizer = make_optimizer(torch.nn.Linear(1, 1), TrainConfig())  # Keras's defaults
    optimizer = type(optimizer)([weight], **optimizer.defaults)
    expected, velocity = weight.detach().clone(), torch.zeros(50)
    for step in range(3):
        gradient = torch.randn(50) * 10.0 ** -(step + 3)  # small gradients: where the two forms differ
        weight.grad = gradient.clone()
        optimizer.step()
        velocity = 0.9 * velocity + 0.1 * gradient**2
        expected -= 1e-3 * gradient / torch.sqrt(velocity + 1e-7)
    torch.testing.assert_close(weight.detach(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "ours, torchs, options",
    [
        (optimizers.Adam, torch.optim.Adam, {"lr": 0.01, "fused": True}),
        (optimizers.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1, "fused": True}),
        (optimizers.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "fused": True}),
        (optimizers.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ],
)
def test_torch_optimizers_update_exactly_as_torch_does(ours, torchs, options):
    torch.manual_seed(0)
    mine = torch.nn.Parameter(torch.randn(3, 40))
    theirs = torch.nn.Parameter(mine.detach().clone())
    optimizer, reference = ours([mine], **options), torchs([theirs], **options)
    for _ in range(4):
        gradient = torch.randn(3, 40)
        mine.grad, theirs.grad = gradient.clone(), gradient.clone()
        optimizer.step()
        reference.step()
        optimizer.zero_grad()
        assert mine.grad is None
    assert torch.equal(mine, theirs)
    state = optimizer.state_dict()
    assert state["param_groups"][0]["lr"] == options["lr"]
    restored = ours([torch.nn.Parameter(torch.zeros(3, 40))], **options)
    restored.load_state_dict(state)
    (saved,), (loaded,) = optimizer.state.values(), restored.state.values()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[key], loaded[key]) for key in saved)


@pytest.mark.slow
def test_no_optimizer_imports_torch_dynamo():
    """torch._dynamo takes 1.0-1.4 s to import; none of cnnlab's optimizers may pull it in."""
    probe = """
import sys, torch
from cnnlab.training.config import TrainConfig
from cnnlab.nn.optimizers import make_optimizer
model = torch.nn.Linear(3, 2)
for name in ("rmsprop", "adam", "adamw", "sgd"):
    optimizer = make_optimizer(model, TrainConfig(optimizer=name))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    optimizer.load_state_dict(optimizer.state_dict())
print("torch._dynamo" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
