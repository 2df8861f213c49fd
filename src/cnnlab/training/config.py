"""Settings, as data: ``FitConfig`` for one ``fit`` (how to train), ``TrainConfig`` for a whole run (what to train
on, where to keep it, and how to fit).

A ``TrainConfig`` is what ``cnnlab train`` takes and what a run folder's ``config.json`` records; its fit
settings become a ``FitConfig`` with ``fit_config()``. ``fit`` takes a ``FitConfig`` only, so nothing a run
setting says (``limit``, ``validate_on_test``...) can be silently ignored by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cnnlab import names
from cnnlab.data.augment import parse_augment
from cnnlab.errors import CnnlabError


@dataclass
class FitConfig:
    """How to train: Keras's ``model.fit`` arguments and the optimizer's, with the course's defaults."""

    epochs: int = 2
    batch_size: int = 128  # the global batch: under torchrun each process takes every world-th sample
    optimizer: str = "rmsprop"  # a name of cnnlab.names.OPTIMIZERS
    lr: float | None = None  # None: the optimizer's Keras default
    momentum: float | None = None  # sgd only
    weight_decay: float | None = None
    betas: tuple[float, float] | None = None  # adam, adamw; None: Keras's (0.9, 0.999)
    schedule: str = "constant"  # a name of cnnlab.names.SCHEDULES
    label_smoothing: float = 0.0
    loss: str = "sparse_categorical_crossentropy"  # a name of cnnlab.names.LOSSES
    from_logits: bool = False  # Keras's: the last layer is linear and its outputs are logits
    augment: str | None = None  # e.g. "shift:2,flip" (see cnnlab.data.augment)
    validation_split: float = 0.0  # Keras's rule: the last fraction of the training data, before shuffling
    shuffle: bool = True  # a new order of the training samples every epoch
    seed: int = 0  # the shuffle derives from (seed, epoch), the augmentation from (seed, step)
    device: str = "auto"  # auto, cpu or cuda
    precision: str = "auto"  # a name of cnnlab.names.PRECISIONS

    def check(self) -> None:
        """Reject out-of-range values with the option's name, before anything is loaded or written."""
        problems = [
            (self.epochs < 1, f"--epochs must be at least 1. Received: {self.epochs}"),
            (self.batch_size < 1, f"--batch-size must be at least 1. Received: {self.batch_size}"),
            (
                not 0 <= self.validation_split < 1,
                f"--validation-split must be in [0, 1). Received: {self.validation_split}",
            ),
            (
                self.optimizer not in names.OPTIMIZERS,
                f"--optimizer must be one of {', '.join(names.OPTIMIZERS)}. Received: {self.optimizer!r}",
            ),
            (self.lr is not None and not self.lr > 0, f"--lr must be positive. Received: {self.lr}"),
            (
                self.schedule not in names.SCHEDULES,
                f"--schedule must be one of {', '.join(names.SCHEDULES)}. Received: {self.schedule!r}",
            ),
            (
                self.loss not in names.LOSSES,
                f"loss must be one of {', '.join(names.LOSSES)}. Received: loss={self.loss!r}",
            ),
            (
                not 0 <= self.label_smoothing < 1,
                f"--label-smoothing must be in [0, 1). Received: {self.label_smoothing}",
            ),
            (
                self.device not in names.DEVICES,
                f"--device must be {', '.join(names.DEVICES[:-1])} or {names.DEVICES[-1]}. Received: {self.device!r}",
            ),
            (
                self.precision not in names.PRECISIONS,
                f"--precision must be one of {', '.join(names.PRECISIONS)}. Received: {self.precision!r}",
            ),
            (
                self.betas is not None and (len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas)),
                f"betas (adam, adamw) must be two numbers in [0, 1). Received: {self.betas}",
            ),
        ]
        for failed, message in problems:
            if failed:
                raise CnnlabError(message)
        parse_augment(self.augment)


def model_option_problem(model: str, key: str, value) -> str | None:
    """What is wrong with hyper-parameter ``key=value`` of ``model`` (None: nothing)."""
    card = names.MODEL_CARDS.get(model)
    if card is None or key not in card.options:
        with_options = ", ".join(name for name, each in names.MODEL_CARDS.items() if each.options)
        if card is None:
            return f"not a train setting, and {model!r} is not a registry model with options ({with_options})"
        have = f"{model}'s are {', '.join(card.options)}" if card.options else f"models with some: {with_options}"
        return f"not a train setting (see cnnlab train --help) nor a hyper-parameter of {model} ({have})"
    return card.option_problem(key, value)


@dataclass
class TrainConfig(FitConfig):
    """A whole run (``cnnlab train``): the model and data, the run folder, and the fit settings above."""

    model: str = "cnn"  # a registry name, a .json spec or a one-line spec
    model_options: dict = field(default_factory=dict)  # a registry model's hyper-parameters (--set NAME=VALUE)
    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: int = 28  # folder datasets are resized to this
    channels: int = 1  # folder datasets: 1 gray, 3 RGB
    validation_split: float = 0.3  # the course's
    limit: int | None = None  # use only the first N training images (quick experiments, tests)
    validate_on_test: bool = False  # the course's CIFAR exercise validates on the test set
    recipe: str | None = None  # the recipe these settings came from (cnnlab.training.recipes), kept in config.json
    name: str | None = None
    runs_dir: str = "runs"

    def check(self) -> None:
        super().check()
        if self.limit is not None and self.limit < 2:
            raise CnnlabError(f"--limit must be at least 2. Received: {self.limit}")
        for key, value in self.model_options.items():
            problem = model_option_problem(self.model, key, value)
            if problem:
                raise CnnlabError(f"model option {key}: {problem}")

    def fit_config(self) -> FitConfig:
        """The settings of this run's fit. The validation split is the run's to make (see ``cnnlab.training.train``)."""
        settings = {field.name: getattr(self, field.name) for field in fields(FitConfig)}
        return FitConfig(**{**settings, "validation_split": 0.0})

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The settings in a run's config.json (which also holds facts about the run: data source, torch...)."""
        known = {field.name for field in fields(cls)}
        settings = {key: value for key, value in record.items() if key in known}
        if isinstance(settings.get("betas"), list):
            settings["betas"] = tuple(settings["betas"])
        return cls(**settings)
