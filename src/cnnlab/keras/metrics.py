"""``cnnlab.keras.metrics``: the metrics ``compile(metrics=[...])`` takes; today Keras's 'accuracy'.

Keras picks the kind of accuracy from the shapes (integer labels, one output, or one-hot rows; see
``cnnlab.training.losses.per_sample_accuracy``), and so does cnnlab. The name given ('accuracy' or 'acc') is
the key in the logs and the history, with 'val_' before it for the validation data.
"""

from __future__ import annotations

ACCURACY_NAMES = ("accuracy", "acc")


def get(identifier) -> str:
    """The log key of a metric ``compile`` takes: 'accuracy' or 'acc'."""
    if identifier in ACCURACY_NAMES:
        return identifier
    raise NotImplementedError(
        f"cnnlab.keras computes the metric 'accuracy' (or 'acc') only so far. Received: metrics=[{identifier!r}]"
    )
