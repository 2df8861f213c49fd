"""Training recipes: a model and the settings that train it well, fast, kept as data with their measurements.

A recipe is a one-line model spec (the layers of ``cnnlab.layers``) and the ``TrainConfig`` fields
that differ from the course's defaults: optimizer and its hyper-parameters, schedule, epochs, batch,
augmentation, label smoothing, validation split. ``cnnlab train --recipe NAME`` starts from them;
options given on the command line override them.

Each recipe keeps what was measured when it was written: the test accuracy of several seeds and the
wall time of each whole run, from process start to the written run folder, on the named machine.
Those are the numbers ``cnnlab recipes`` prints; run the recipe to measure them on yours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cnnlab.errors import CnnlabError

# Where the measurements below were taken: a 2-core virtual machine that other jobs shared.
HERE = "AMD EPYC, 2 cores (virtual machine), torch 2.13.0+cpu"


@dataclass(frozen=True)
class Measured:
    """Test accuracies and whole-process wall seconds, one per seed (seeds 0, 1, ...)."""

    accuracies: tuple[float, ...]
    seconds: tuple[float, ...]
    date: str
    machine: str
    conditions: str  # what else ran on the machine

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def median_seconds(self) -> float:
        ordered = sorted(self.seconds)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    dataset: str
    model: str  # one-line spec
    settings: dict = field(default_factory=dict)  # TrainConfig fields
    target: float = 0.0  # the test accuracy the recipe is made to reach
    measured: Measured | None = None

    def to_dict(self) -> dict:
        record = asdict(self)
        if self.measured is not None:
            record["measured"].update(mean_accuracy=round(self.measured.mean_accuracy, 4),
                                      median_seconds=round(self.measured.median_seconds, 1))
        return record


RECIPES = {recipe.name: recipe for recipe in [
    Recipe(
        "mnist-fast",
        "99% on MNIST in seconds: a small CNN with BatchNorm, one pass over the data, Adam with a one-cycle schedule",
        "mnist",
        "input(28,28,1)-conv(16,5)-maxpool(2)-batchnorm(0.9)-relu-conv(16,3)-maxpool(2)-batchnorm(0.9)-relu"
        "-flatten-dense(128,relu)-dense(10,softmax)",
        {"epochs": 1, "batch_size": 256, "optimizer": "adam", "lr": 0.02, "betas": (0.7, 0.9),
         "schedule": "onecycle", "validation_split": 0.0},
        target=0.99,
        measured=Measured(accuracies=(0.9903, 0.9913, 0.9901, 0.9908, 0.9915), seconds=(3.20, 3.35, 3.71, 3.69, 3.29),
                          date="2026-12-02", machine=HERE, conditions="no other jobs; compiled kernels on"),
    ),
    Recipe(
        "mnist-best",
        "99.6% on MNIST: three BatchNorm conv layers, random shifts of 2 pixels, 20 epochs with a one-cycle schedule",
        "mnist",
        "input(28,28,1)-conv(32,5)-batchnorm(0.9)-relu-maxpool(2)-conv(64,3)-batchnorm(0.9)-relu-conv(64,3)"
        "-batchnorm(0.9)-relu-maxpool(2)-flatten-dropout(0.3)-dense(128,relu)-dense(10,softmax)",
        {"epochs": 20, "batch_size": 128, "optimizer": "adam", "lr": 0.002, "schedule": "onecycle",
         "augment": "shift:2", "label_smoothing": 0.1, "validation_split": 0.0},
        target=0.996,
        measured=Measured(accuracies=(0.9965,), seconds=(238.1,), date="2026-11-22", machine=HERE,
                          conditions="no other jobs; compiled kernels on"),
    ),
    Recipe(
        "fashion-best",
        "93.5% on Fashion-MNIST: three BatchNorm conv blocks, random shifts and left-right flips, 30 epochs",
        "fashion-mnist",
        "input(28,28,1)-conv(32,3,same)-batchnorm(0.9)-relu-maxpool(2)-conv(64,3,same)-batchnorm(0.9)-relu"
        "-maxpool(2)-conv(128,3,same)-batchnorm(0.9)-relu-flatten-dropout(0.4)-dense(256,relu)-dense(10,softmax)",
        {"epochs": 30, "batch_size": 128, "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05,
         "schedule": "onecycle",
         "augment": "shift:2,flip", "label_smoothing": 0.1, "validation_split": 0.0},
        target=0.935,
        measured=Measured(accuracies=(0.9407,), seconds=(570.9,), date="2026-11-22", machine=HERE,
                          conditions="no other jobs; compiled kernels on"),
    ),
]}


def list_recipes() -> list[Recipe]:
    return list(RECIPES.values())


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise CnnlabError(f"--recipe {name}: no such recipe; choose one of {', '.join(RECIPES)} (see cnnlab recipes)")
    return RECIPES[name]


def recipe_config(recipe_name: str, /, **overrides):
    """The TrainConfig of a recipe; ``overrides`` (TrainConfig fields, ``name`` included) win over its settings."""
    from cnnlab.train import TrainConfig

    recipe = get_recipe(recipe_name)
    return TrainConfig(**{"model": recipe.model, "dataset": recipe.dataset, **recipe.settings,
                          "recipe": recipe_name, **overrides})


def format_recipes() -> str:
    """One block per recipe: what it is, its settings, and what was measured."""
    blocks = []
    for recipe in list_recipes():
        settings = ", ".join(f"{key} {value}" for key, value in recipe.settings.items())
        lines = [f"{recipe.name}  ({recipe.dataset}, target {recipe.target:.1%})", f"  {recipe.description}",
                 f"  model: {recipe.model}", f"  settings: {settings}"]
        if recipe.measured is None:
            lines.append("  measured: not yet")
        else:
            done = recipe.measured
            if len(done.accuracies) == 1:
                accuracy, wall = f"{done.mean_accuracy:.2%} (seed 0)", f"{done.seconds[0]:.1f} s"
            else:
                each = ", ".join(f"{value:.2%}" for value in done.accuracies)
                accuracy = f"{done.mean_accuracy:.2%} mean of {len(done.accuracies)} seeds ({each})"
                wall = f"{done.median_seconds:.1f} s median ({min(done.seconds):.1f}–{max(done.seconds):.1f} s)"
            lines.append(f"  measured: test accuracy {accuracy}; wall {wall}, whole process")
            lines.append(f"            {done.date}, {done.machine}, {done.conditions}")
        lines.append(f"  run: cnnlab train --recipe {recipe.name}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
