"""Trackers for ``model.fit(callbacks=[...])``: TensorBoard, Weights & Biases and MLflow, as Keras code uses them.

    from cnnlab.keras.callbacks import TensorBoard, WandbCallback, MlflowCallback
    model.fit(X_train, y_train, validation_data=(X_test, y_test),
              callbacks=[WandbCallback(data_type="image", labels=labels, config=config)])

Each is one of ``cnnlab.training.trackers``' callbacks (what ``cnnlab train --log`` uses) riding on the Keras
fit: it is handed the cnnlab model under the Keras one and the loop's state when training begins, the Keras
logs every epoch, and it finishes (closes its files or run) when training ends. ``cnnlab.keras.callbacks``
exports them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.keras.callbacks import Callback
from cnnlab.training import trackers


class _Tracking(Callback):
    """A Keras callback around a cnnlab tracker (``self.tracker``, made in the subclass's ``__init__``)."""

    tracker: trackers.Tracker

    def on_train_begin(self, logs=None):
        self.tracker.set_model(self.model.module)  # the cnnlab model: what the trackers summarise and predict with
        self.tracker.set_state(self.state)
        self.tracker.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.tracker.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        self.tracker.finish()


def _samples(validation, labels, count: int):
    """The first ``count`` validation pictures, their integer labels (from one-hot rows too), and class names."""
    images, targets = validation
    images, targets = np.asarray(images[:count]), np.asarray(targets[:count])
    if targets.ndim == 2 and targets.shape[1] > 1:
        targets = targets.argmax(1)
    names = list(labels) if labels is not None else [str(index) for index in range(int(targets.max()) + 1)]
    return images, targets.reshape(-1).astype(np.int64), names


class TensorBoard(_Tracking):
    """Keras's ``TensorBoard(log_dir="logs")``: scalars per epoch and the model summary as text, in event files.

    Histograms, images of weights, profiling and embeddings are not in cnnlab: asking for them is refused.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False, update_freq="epoch"):
        for name, value, default in (
            ("histogram_freq", histogram_freq, 0),
            ("write_images", write_images, False),
            ("update_freq", update_freq, "epoch"),
        ):
            if value != default:
                raise NotImplementedError(
                    f"TensorBoard: cnnlab implements {name}={default!r} only. Received: {value!r}"
                )
        self.tracker = trackers.TensorBoardLogger(Path(log_dir))


class WandbCallback(_Tracking):
    """A Weights & Biases run of the fit, as the lesson's ``WandbCallback``: ``config``, per-epoch metrics, and
    with ``data_type="image"`` the first ``predictions`` validation pictures captioned with the model's guesses
    (``labels``: the class names). Offline without an API key (``wandb sync`` uploads it later)."""

    def __init__(
        self,
        project="cnnlab",
        config=None,
        data_type=None,
        labels=None,
        predictions=trackers.SAMPLES,
        validation_data=None,
        mode=None,
        dir=None,
    ):
        if data_type not in (None, "image"):
            raise ValueError(f'WandbCallback: data_type must be None or "image". Received: data_type={data_type!r}')
        if not isinstance(predictions, int) or isinstance(predictions, bool) or predictions < 1:
            raise ValueError(
                f"WandbCallback: predictions must be a positive integer. Received: predictions={predictions!r}"
            )
        self.data_type, self.labels, self.predictions = data_type, labels, predictions
        self.validation_data = validation_data  # None: fit's own (cnnlab.keras's fit sets it, as Keras 2 did)
        self.tracker = trackers.WandbLogger(project, dict(config or {}), mode=mode, dir=dir)

    def on_train_begin(self, logs=None):
        if self.data_type == "image":
            if self.validation_data is None:
                raise ValueError(
                    'WandbCallback: data_type="image" shows validation pictures; give fit validation_data or '
                    "validation_split, or WandbCallback validation_data. Received: no validation data"
                )
            self.tracker.samples = _samples(self.validation_data, self.labels, self.predictions)
        super().on_train_begin(logs)


class MlflowCallback(_Tracking):
    """An MLflow run of the fit: the fit's settings as params and the metrics per epoch, in ``tracking_uri``
    (default: a local ``mlruns/`` store in the current folder)."""

    def __init__(self, tracking_uri=None, experiment="cnnlab"):
        self.tracker = trackers.MlflowLogger(tracking_uri, experiment)
