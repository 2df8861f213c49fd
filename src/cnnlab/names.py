"""The one table of names: models, recipes, datasets, optimizers, schedules, precisions, devices.

The command line's choices and help texts, the web pages and the tests all read these tables; the
modules that implement each name (``cnnlab.nn.registry``, ``cnnlab.training.optimizers``, ...) are keyed
by them, and a test checks that every name here has an implementation and no implementation lacks a
name. Only data lives here: importing it costs no torch, so ``cnnlab --help`` stays fast.

Models are one-line specs (the layers of ``cnnlab.nn.layers``, see ``cnnlab.nn.specs``); a recipe is a
model and the training settings that differ from the course's defaults, kept with what was measured
when it was written: the test accuracy of several seeds and the wall time of each whole run, from
process start to the written run folder, on the named machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# --- models: the course's, as one-line specs -----------------------------------------------------


@dataclass(frozen=True)
class ModelCard:
    """A named model from the course: its architecture as one line, and what the course reported."""

    name: str
    spec: str
    description: str
    dataset: str = "mnist"
    course_epochs: int = 2
    course_batch_size: int = 128
    course_accuracy: float | None = None  # test accuracy the course reports
    # hyper-parameters the spec leaves open ({name} in it) -> the course's values; `--set NAME=VALUE` changes them
    options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # TrainConfig fields `cnnlab reproduce` adds where the course has none

    def spec_line(self, options: dict | None = None) -> str:
        """The one-line spec with the course's hyper-parameters, or those in ``options``."""
        return self.spec.format(**{**self.options, **(options or {})})

    def option_problem(self, key: str, value) -> str | None:
        """What is wrong with hyper-parameter ``key=value`` for this model (None: nothing)."""
        if key not in self.options:
            have = f"{self.name}'s are {', '.join(self.options)}" if self.options else f"{self.name} has none"
            return f"not a hyper-parameter of {self.name} ({have})"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(self.options[key], int):  # sizes: whole and positive
            if not (number and isinstance(value, int) and value >= 1):
                return f"must be a positive integer. Received: {key}={value!r}"
        elif not (number and 0 <= value < 1):  # rates
            return f"must be a number in [0, 1). Received: {key}={value!r}"
        return None


_MNIST = "input(28,28,1)"
# the W&B lesson's config names: the first convolution's kernel (width, height) and the Dense layer's units
_CONV = "conv(32,{first_layer_conv_height}x{first_layer_conv_width}"
_LESSON = {"first_layer_conv_width": 3, "first_layer_conv_height": 3, "dense_layer_size": 128}
MODEL_CARDS = {
    card.name: card
    for card in [
        ModelCard(
            "mlp",
            f"{_MNIST}-flatten-dense(512,relu)-dense(256,relu)-dense(128,relu)-dense(32,relu)-dense(10,softmax)",
            "the course's fully connected baseline",
            course_epochs=10,
            course_accuracy=0.9794,
        ),
        ModelCard(
            "cnn",
            f"{_MNIST}-{_CONV})-maxpool(2)-relu-flatten-dense({{dense_layer_size}},relu)-dense(10,softmax)",
            "the course's first CNN",
            course_accuracy=0.9752,
            options=_LESSON,
        ),
        ModelCard(
            "cnn2",
            f"{_MNIST}-{_CONV},relu)-maxpool(2)-conv(64,3,relu)-maxpool(2)-flatten-dense({{dense_layer_size}},relu)"
            "-dense(10,softmax)",
            "two conv layers: fewer parameters, better (exercise 1)",
            course_accuracy=0.9824,
            options=_LESSON,
        ),
        ModelCard(
            "cnn-dropout",
            f"{_MNIST}-{_CONV})-maxpool(2)-relu-flatten-dropout({{dropout}})-dense({{dense_layer_size}},relu)"
            "-dropout({dropout})-dense(10,softmax)",
            "the first CNN with dropout 0.4 before each Dense",
            course_accuracy=0.98,
            options={**_LESSON, "dropout": 0.4},
        ),
        ModelCard(
            "cnn-deep",
            f"{_MNIST}-{_CONV},relu)-conv(32,3,relu)-maxpool(2)-conv(64,3,relu)-conv(64,3,relu)"
            "-maxpool(2)-flatten-dropout({dropout})-dense({dense_layer_size},relu)-dropout({dropout})-dense(10,softmax)",
            "several conv layers, the course's ≈99% model",
            course_epochs=3,
            course_accuracy=0.99,
            options={**_LESSON, "dropout": 0.4},
            # the course names no settings for it; 3 epochs at a constant rate end anywhere in 97.4-99.1% by seed
            settings={"epochs": 5, "schedule": "onecycle"},
        ),
        ModelCard(
            "cifar-cnn",
            "input(32,32,3)-conv(32,3,same,relu)-conv(32,3,relu)-maxpool(2)-conv(64,3,same,relu)"
            "-conv(64,3,relu)-maxpool(2)-flatten-dense(512,relu)-dense(10,softmax)",
            "the course's CIFAR-10 CNN (exercise 2)",
            dataset="cifar10",
            course_batch_size=32,
        ),
    ]
}
COURSE_EXPERIMENTS = ("mlp", "cnn", "cnn2", "cnn-dropout", "cnn-deep")  # what `cnnlab reproduce` runs

# --- recipes: a model and the settings that train it well, fast ------------------------------------

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
            record["measured"].update(
                mean_accuracy=round(self.measured.mean_accuracy, 4),
                median_seconds=round(self.measured.median_seconds, 1),
            )
        return record


RECIPES = {
    recipe.name: recipe
    for recipe in [
        Recipe(
            "mnist-fast",
            "99% on MNIST in seconds: a small CNN with BatchNorm, one pass over the data, Adam with a one-cycle "
            "schedule",
            "mnist",
            "input(28,28,1)-conv(16,5)-maxpool(2)-batchnorm(0.9)-relu-conv(16,3)-maxpool(2)-batchnorm(0.9)-relu"
            "-flatten-dense(128,relu)-dense(10,softmax)",
            {
                "epochs": 1,
                "batch_size": 256,
                "optimizer": "adam",
                "lr": 0.02,
                "betas": (0.7, 0.9),
                "schedule": "onecycle",
                "validation_split": 0.0,
            },
            target=0.99,
            measured=Measured(
                accuracies=(0.9903, 0.9913, 0.9901, 0.9908, 0.9915),
                seconds=(3.20, 3.35, 3.71, 3.69, 3.29),
                date="2026-12-02",
                machine=HERE,
                conditions="no other jobs; compiled kernels on",
            ),
        ),
        Recipe(
            "mnist-best",
            "99.6% on MNIST: three BatchNorm conv layers, random shifts of 2 pixels, 20 epochs with a one-cycle "
            "schedule",
            "mnist",
            "input(28,28,1)-conv(32,5)-batchnorm(0.9)-relu-maxpool(2)-conv(64,3)-batchnorm(0.9)-relu-conv(64,3)"
            "-batchnorm(0.9)-relu-maxpool(2)-flatten-dropout(0.3)-dense(128,relu)-dense(10,softmax)",
            {
                "epochs": 20,
                "batch_size": 128,
                "optimizer": "adam",
                "lr": 0.002,
                "schedule": "onecycle",
                "augment": "shift:2",
                "label_smoothing": 0.1,
                "validation_split": 0.0,
            },
            target=0.996,
            measured=Measured(
                accuracies=(0.9965,),
                seconds=(238.1,),
                date="2026-11-22",
                machine=HERE,
                conditions="no other jobs; compiled kernels on",
            ),
        ),
        Recipe(
            "fashion-best",
            "93.5% on Fashion-MNIST: three BatchNorm conv blocks, random shifts and left-right flips, 30 epochs",
            "fashion-mnist",
            "input(28,28,1)-conv(32,3,same)-batchnorm(0.9)-relu-maxpool(2)-conv(64,3,same)-batchnorm(0.9)-relu"
            "-maxpool(2)-conv(128,3,same)-batchnorm(0.9)-relu-flatten-dropout(0.4)-dense(256,relu)-dense(10,softmax)",
            {
                "epochs": 30,
                "batch_size": 128,
                "optimizer": "adamw",
                "lr": 0.002,
                "weight_decay": 0.05,
                "schedule": "onecycle",
                "augment": "shift:2,flip",
                "label_smoothing": 0.1,
                "validation_split": 0.0,
            },
            target=0.935,
            measured=Measured(
                accuracies=(0.9407,),
                seconds=(570.9,),
                date="2026-11-22",
                machine=HERE,
                conditions="no other jobs; compiled kernels on",
            ),
        ),
    ]
}


# --- datasets, optimizers, schedules, precisions, devices --------------------------------------------

DATASETS = {  # name -> what it is; any "folder:PATH" is a dataset too (one sub-folder of images per class)
    "mnist": "handwritten digits, 28×28 gray, shipped with cnnlab",
    "fashion-mnist": "clothes, 28×28 gray (Debian package dataset-fashion-mnist, or a download)",
    "cifar10": "objects, 32×32 colour (cifar-10-binary.tar.gz, found or downloaded)",
}
FOLDER_PREFIX = "folder:"

OPTIMIZERS = {  # name -> Keras's default learning rate
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "adamw": 1e-3,
    "sgd": 1e-2,
}
LOSSES = {  # Keras's names; each takes the model's logits (cnnlab.training.losses)
    "sparse_categorical_crossentropy": "integer class labels (N,) or (N, 1)",
    "categorical_crossentropy": "one-hot or probability rows (N, classes)",
    "binary_crossentropy": "0/1 targets shaped like the output, e.g. (N, 1) under a sigmoid",
    "mean_squared_error": "targets shaped like the output",
}
LOSS_ALIASES = {"mse": "mean_squared_error"}
SCHEDULES = {
    "constant": "the same learning rate throughout",
    "onecycle": "linear warm-up over the first 25% of steps, then linear decay to 0",
}
PRECISIONS = {  # Keras's dtype-policy names
    "auto": "mixed_bfloat16 on a GPU, float32 elsewhere",
    "float32": "everything in float32",
    "mixed_bfloat16": "matrix products in bfloat16, weights in float32",
}
DEVICES = ("auto", "cpu", "cuda")
TRACKERS = {  # --log NAME -> the package it needs
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow-skinny",
}
