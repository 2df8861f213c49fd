"""The yardstick for `cnnlab train --recipe mnist-fast`: the fastest public MNIST-to-99% recipe, in plain PyTorch.

    python benchmarks/public_mnist_recipe.py [--seed 0] [--limit N]

The recipe as issue 4 describes it: conv 24@5×5 → ReLU → max-pool 2 → conv 32@3×3 → ReLU → max-pool 2 →
fc 256 → ReLU → fc 10 (PyTorch's default initialisation, NCHW), Adam lr 0.01 betas (0.7, 0.9) with a one-cycle
schedule, batch 256, one epoch, the whole data set in memory as one normalised float tensor. The images come
from the MNIST files cnnlab ships (torchvision is not needed). Prints the fit's own seconds and the test
accuracy; time the whole process from outside to compare it with `cnnlab train --recipe mnist-fast`
(see README.md).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.registry import load_dataset

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--limit", type=int, help="train on the first N images only (a quick check that it runs)")
arguments = parser.parse_args()
torch.manual_seed(arguments.seed)

mnist = load_dataset("mnist")


def as_input(images) -> torch.Tensor:  # uint8 (N, 28, 28, 1) -> normalised float32 (N, 1, 28, 28)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.1307) / 0.3081


x_train, y_train = as_input(mnist.x_train[: arguments.limit]), torch.from_numpy(mnist.y_train[: arguments.limit])
x_test, y_test = as_input(mnist.x_test), torch.from_numpy(mnist.y_test)

model = nn.Sequential(
    nn.Conv2d(1, 24, 5),
    nn.ReLU(),
    nn.MaxPool2d(2),  # (B, 24, 12, 12)
    nn.Conv2d(24, 32, 3),
    nn.ReLU(),
    nn.MaxPool2d(2),  # (B, 32, 5, 5)
    nn.Flatten(),
    nn.Linear(800, 256),
    nn.ReLU(),
    nn.Linear(256, 10),
)
batch_size = 256
steps = len(x_train) // batch_size  # one epoch; the last partial batch is dropped
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.7, 0.9))
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=steps)

started = time.perf_counter()
order = torch.randperm(len(x_train))
for step in range(steps):
    batch = order[step * batch_size : (step + 1) * batch_size]
    loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
seconds = time.perf_counter() - started

model.eval()
with torch.inference_mode():
    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in zip(x_test.split(1000), y_test.split(1000)))
print(f"public recipe: fit {seconds:.2f} s, test accuracy {correct / len(x_test):.4f}")
