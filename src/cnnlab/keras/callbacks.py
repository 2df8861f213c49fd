"""``cnnlab.keras.callbacks``: Keras's callbacks, with Keras's arguments, on cnnlab's training loop.

``Callback`` is cnnlab's (``cnnlab.training.callbacks.Callback``: Keras's hooks and ``logs``) with ``self.params``
({'verbose', 'epochs', 'steps'}), and ``self.model`` is the Keras model being fitted: a callback stops training
with ``self.model.stop_training = True`` and reaches the learning rate as ``self.model.optimizer.learning_rate``.
``fit`` always ends with a ``History``, which it returns.

``LoopBridge`` is how these callbacks ride on ``cnnlab.training.loop.fit``: one loop callback that hands each
hook on with Keras's logs (the compiled metrics, in Keras's order: accuracy, loss, val_accuracy, val_loss).

The trackers (``TensorBoard``, ``WandbCallback``, ``MlflowCallback``) live in ``cnnlab.keras.tracking`` and are
loaded from there when first named, so that these callbacks never import a tracker's package.
"""

from __future__ import annotations

import csv
import math
import sys
import time
import warnings
from pathlib import Path

from cnnlab.keras.progress import REDRAW_SECONDS, bar_line, epoch_line, interactive, redraw
from cnnlab.training import callbacks as loop_callbacks

_TRACKERS = ("TensorBoard", "WandbCallback", "MlflowCallback")  # defined in cnnlab.keras.tracking


def __getattr__(name: str):
    if name in _TRACKERS:
        import importlib

        return getattr(importlib.import_module("cnnlab.keras.tracking"), name)
    raise AttributeError(f"module 'cnnlab.keras.callbacks' has no attribute {name!r}")


HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
)


class Callback(loop_callbacks.Callback):
    """Keras's base class: every hook does nothing; ``self.model``, ``self.params`` are set by ``fit``."""

    params: dict = {}

    def set_params(self, params: dict) -> None:
        self.params = params


class LoopBridge(loop_callbacks.Callback):
    """A loop callback calling Keras callbacks (model and params already set) with Keras's logs."""

    def __init__(self, callbacks: list[Callback], log_keys: dict[str, str]):
        self.callbacks = callbacks
        self.log_keys = log_keys  # Keras's key -> the loop's ('acc' -> 'accuracy'), in Keras's order

    def set_state(self, state) -> None:  # the loop's state (optimizer, device, run) for every Keras callback too
        super().set_state(state)
        for callback in self.callbacks:
            callback.set_state(state)

    def keras_logs(self, logs) -> dict:
        """Only the compiled metrics (the loop also reports accuracy and seconds), under Keras's names."""
        return {keras: logs[loop] for keras, loop in self.log_keys.items() if logs and loop in logs}

    def _call(self, hook: str, *position, logs=None) -> None:
        shared = self.keras_logs(logs)  # one dict per hook: a callback may add to it for the next
        for callback in self.callbacks:
            getattr(callback, hook)(*position, shared)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)


class History(Callback):
    """``history.history``: metric name -> one value per epoch; ``history.epoch``: the epochs run (from 0)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class _Monitor:
    """Which way a monitored value improves: Keras's ``mode`` ('auto': up for accuracies, else down)."""

    def __init__(self, kind: str, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{kind}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
        self.monitor, self.kind = monitor, kind
        self.maximise = mode == "max" or (mode == "auto" and monitor.endswith(("acc", "accuracy", "auc")))
        self.min_delta = abs(min_delta)

    @property
    def worst(self) -> float:
        return -math.inf if self.maximise else math.inf

    def improves(self, value: float, reference: float) -> bool:
        return value - self.min_delta > reference if self.maximise else value + self.min_delta < reference

    def value(self, logs) -> float | None:
        found = (logs or {}).get(self.monitor)
        if found is None:
            warnings.warn(
                f"{self.kind}: the monitored metric {self.monitor!r} is not in the logs; available: "
                f"{', '.join(logs or {})}",
                stacklevel=3,
            )
        return found


class EarlyStopping(Callback):
    """Stop once ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Keras's rules)."""

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        self.watch = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = self.watch.worst, None

    def on_epoch_end(self, epoch, logs=None):
        current = self.watch.value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first epoch's, in case none improves
        self.wait += 1
        if self.watch.improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.watch.improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (a cnnlab model folder) or its weights (a safetensors file) at the end of epochs.

    ``filepath`` may hold ``{epoch:02d}`` (counted from 1) and the logs' keys, ``{val_loss:.2f}``.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        if save_freq != "epoch":
            raise NotImplementedError(f"ModelCheckpoint: cnnlab saves once an epoch. Received: save_freq={save_freq!r}")
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.watch = _Monitor("ModelCheckpoint", monitor, mode, 0)
        self.best = self.watch.worst if initial_value_threshold is None else initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        if self.save_best_only:
            current = self.watch.value(logs)
            if current is None or not self.watch.improves(current, self.best):
                return
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.watch.monitor} improved from {self.best:.5f} to {current:.5f}, "
                    f"saving model to {path}"
                )
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """One row an epoch in ``filename``: ``epoch`` (from 0) and the logs' keys in sorted order, as Keras writes."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = Path(filename), separator, append
        self.keys: list[str] | None = None
        self.file = self.writer = None

    def on_train_begin(self, logs=None):
        continuing = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self.keys = None
        self.header_written = continuing
        self.file = open(self.filename, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, ["epoch", *self.keys], delimiter=self.separator)
            if not self.header_written:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{key: logs.get(key, "NA") for key in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class LambdaCallback(Callback):
    """A callback made of functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs,
    ):
        given = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        for hook, function in given.items():
            if hook not in (*HOOKS, "on_batch_begin", "on_batch_end"):
                raise ValueError(f"Unrecognized keyword arguments passed to LambdaCallback: {{{hook!r}: {function!r}}}")
            if function is not None:
                setattr(self, hook, function)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``)."""

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        current = float(self.model.optimizer.learning_rate)
        try:
            rate = self.schedule(epoch, current)
        except TypeError:  # Keras's older form: schedule(epoch)
            rate = self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise ValueError(f'The output of the "schedule" function should be a float. Got: {rate!r}')
        self.model.optimizer.learning_rate = float(rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.watch = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = self.watch.worst, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self.watch.value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watch.improves(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and optimizer.learning_rate > self.min_lr:
                rate = max(optimizer.learning_rate * self.factor, self.min_lr)
                optimizer.learning_rate = rate
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {rate}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class ProgbarLogger(Callback):
    """Keras's progress display of ``fit``, by ``self.params['verbose']`` (see ``cnnlab.keras.progress``)."""

    def __init__(self):
        self.started = self.drawn = 0.0
        self.live = False
        self.width = 0  # characters of the longest line drawn on the bar's row

    def on_train_begin(self, logs=None):
        self.live = self.params["verbose"] == 1 and interactive()

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
        self.started = self.drawn = time.perf_counter()
        self.width = 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.live and now - self.drawn >= REDRAW_SECONDS:
            self.drawn = now
            line = bar_line(batch + 1, self.params["steps"], now - self.started, logs or {})
            sys.stdout.write(redraw(line, self.width))
            sys.stdout.flush()
            self.width = max(self.width, len(line))

    def on_epoch_end(self, epoch, logs=None):
        seconds, steps = time.perf_counter() - self.started, self.params["steps"]
        if self.params["verbose"] == 1:
            line = bar_line(steps, steps, seconds, logs or {})
            sys.stdout.write((redraw(line, self.width) if self.live else line) + "\n")
        else:
            sys.stdout.write(epoch_line(steps, seconds, logs or {}) + "\n")
        sys.stdout.flush()
