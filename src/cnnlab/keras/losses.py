"""``cnnlab.keras.losses``: Keras's losses, as names for ``compile`` and as callables on arrays.

``compile(loss=...)`` takes a name ('categorical_crossentropy', 'sparse_categorical_crossentropy',
'binary_crossentropy', 'mse' / 'mean_squared_error'), one of the functions below, or a loss object
(``CategoricalCrossentropy(from_logits=True)``). Training computes every loss from the model's logits
(``cnnlab.training.losses``); called here on arrays, a loss takes ``y_pred`` as the model's outputs, as Keras.
"""

from __future__ import annotations

from cnnlab import names


class Loss:
    """A loss by its Keras name; ``loss(y_true, y_pred)`` is the mean over the samples, as Keras's objects return."""

    name = ""

    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size", name: str | None = None):
        if reduction != "sum_over_batch_size":
            raise NotImplementedError(
                f"{type(self).__name__}: cnnlab implements reduction='sum_over_batch_size' only. "
                f"Received: reduction={reduction!r}"
            )
        if not isinstance(from_logits, bool):
            raise ValueError(f"{type(self).__name__}: from_logits must be True or False. Received: {from_logits!r}")
        self.from_logits = from_logits
        self.label_smoothing = 0.0
        self.display_name = name or self.name

    def __call__(self, y_true, y_pred) -> float:
        return float(per_sample(self, y_true, y_pred).mean())


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(from_logits, reduction, name)
        if axis != -1:
            raise NotImplementedError(f"CategoricalCrossentropy: cnnlab implements axis=-1 only. Received: axis={axis}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"


class MeanSquaredError(Loss):
    name = "mean_squared_error"


def per_sample(loss: Loss, y_true, y_pred):
    """NumPy (N,): each sample's loss, for outputs ``y_pred`` (probabilities, or logits with from_logits)."""
    import torch

    from cnnlab.training.losses import loss_activation, per_sample_loss, prepare_targets

    outputs = torch.as_tensor(y_pred, dtype=torch.float32)
    outputs = outputs[:, None] if outputs.dim() == 1 else outputs
    targets = prepare_targets(loss.name, y_true, tuple(outputs.shape[1:]))
    activation = loss_activation("linear", loss.name, loss.from_logits)
    return per_sample_loss(loss.name, outputs, targets, activation, loss.label_smoothing).numpy()


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    return per_sample(CategoricalCrossentropy(from_logits), y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return per_sample(SparseCategoricalCrossentropy(from_logits), y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    return per_sample(BinaryCrossentropy(from_logits), y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return per_sample(MeanSquaredError(), y_true, y_pred)


mse = mean_squared_error
BY_NAME = {cls.name: cls for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy)}
BY_NAME[MeanSquaredError.name] = MeanSquaredError
FUNCTIONS = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
}


def get(identifier) -> Loss:
    """A loss from what ``compile`` takes: a Loss, one of this module's functions, or a name."""
    if isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and identifier in FUNCTIONS:
        return FUNCTIONS[identifier]()
    if isinstance(identifier, str) and names.LOSS_ALIASES.get(identifier, identifier) in BY_NAME:
        return BY_NAME[names.LOSS_ALIASES.get(identifier, identifier)]()
    raise ValueError(
        f"Could not interpret loss identifier; cnnlab.keras knows {', '.join([*names.LOSSES, *names.LOSS_ALIASES])}. "
        f"Received: loss={identifier!r}"
    )
