"""Callbacks: what happens around the training loop, in Keras's protocol.

``fit`` calls, in this order, with a ``logs`` dict of floats:

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)                      epoch counts from 0
        on_train_batch_begin(batch, logs)              batch: the step within the epoch, from 0
        on_train_batch_end(batch, logs)                logs: the epoch's running loss and accuracy
      on_epoch_end(epoch, logs)                        logs: loss, accuracy (val_loss, val_accuracy, seconds
                                                       once the callbacks before have added them)
    on_train_end(logs)

``on_train_batch_begin`` and ``on_train_batch_end`` call ``on_batch_begin`` and ``on_batch_end``, as in
Keras, so a callback may override either. A callback sees the model as ``self.model`` and the loop's state
(optimizer, progress, config) as ``self.state``; it stops training by setting ``self.model.stop_training``.

The loop's own duties are callbacks too, run before those a user gives: ``NanGuard``, ``Validation``,
``History``, ``ProgressDisplay``; a run adds ``Checkpoint``, its files and ``StopOnSignal``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training import distributed
from cnnlab.training.checkpoint import FILE as CHECKPOINT
from cnnlab.training.checkpoint import save_checkpoint


class Callback:
    """The base class: every hook does nothing."""

    model = None
    state = None  # the loop's TrainingState (cnnlab.training.loop)

    def set_model(self, model) -> None:
        self.model = model

    def set_state(self, state) -> None:
        self.state = state

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch, logs=None): ...

    def on_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls every callback's hook in turn; each hook's ``logs`` is one dict they all see and may add to."""

    def __init__(self, callbacks, model, state):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_state(state)

    def __getattr__(self, hook: str):
        def call_all(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call_all


def diverged(where: str, run=None) -> CnnlabError:
    kept = f"; {run / CHECKPOINT} keeps the last good state" if run is not None and (run / CHECKPOINT).exists() else ""
    return CnnlabError(f"the loss became NaN or infinite at {where}: training stopped{kept}. Try a lower --lr")


class NanGuard(Callback):
    """Stops training with a clear error once the loss is NaN or infinite (after a step, or over an epoch)."""

    def on_train_batch_end(self, batch, logs=None):
        # every process takes the same decision at the same step (a no-op in a single process)
        if distributed.any_rank(bool(logs) and not math.isfinite(logs["loss"]))[0]:
            raise diverged(f"epoch {self.state.epoch + 1}, step {batch + 1}", self.state.run)

    def on_epoch_end(self, epoch, logs=None):
        if not math.isfinite(logs["loss"]):  # summed over all processes: the same everywhere
            raise diverged(f"epoch {epoch + 1}", self.state.run)


class Validation(Callback):
    """Adds val_loss and val_accuracy to each epoch's logs: the model on the validation data, in large batches."""

    def __init__(self, images, labels):  # (N, H, W, C) images, labels for the loss; on the training device
        self.images, self.labels = images, labels

    def on_epoch_end(self, epoch, logs=None):
        from cnnlab.training.evaluate import evaluate

        config = self.state.config
        # every process validates on all of it: same weights, same numbers, no messages
        metrics = evaluate(
            self.model,
            self.images,
            self.labels,
            with_per_class=False,
            precision=config.precision,
            loss=config.loss,
            from_logits=config.from_logits,
        )
        logs.update(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])


class History(Callback):
    """Adds the epoch's wall seconds to its logs and records it as a row: ``{"epoch": 1, "loss": ..., ...}``.

    The loop's own History records into its ``progress.history``, so a checkpoint keeps the rows and a
    resumed run goes on; one a user passes records into its own list of rows.
    """

    def __init__(self, rows: list[dict] | None = None):
        self.rows = [] if rows is None else rows

    def on_epoch_end(self, epoch, logs=None):
        logs.setdefault("seconds", round(time.perf_counter() - self.state.epoch_started, 3))
        self.rows.append({"epoch": epoch + 1, **logs})

    @property
    def history(self) -> dict[str, list]:
        """Keras's form: metric name -> one value per epoch."""
        keys = dict.fromkeys(key for row in self.rows for key in row)
        return {key: [row[key] for row in self.rows if key in row] for key in keys}


def epoch_line(epochs: int, row: dict) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4f}", f"accuracy {row['accuracy']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_accuracy {row['val_accuracy']:.4f}"]
    return "  ".join(parts + [f"{row['seconds']:.1f}s"])


class ProgressDisplay(Callback):
    """A live bar per epoch on a terminal (stderr), and one line per epoch on stdout."""

    bar = None

    def __init__(self, verbose: bool = True):
        self.verbose = verbose and distributed.is_main()
        self.live = self.verbose and os.isatty(2)

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.state.steps_per_epoch,
            initial=self.state.progress.step,
            desc=f"epoch {epoch + 1}/{self.state.config.epochs}",
            disable=not self.live,
            leave=False,
            unit="step",
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch, logs=None):
        if self.live and logs and batch % 10 == 0:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        if self.verbose:
            print(epoch_line(self.state.config.epochs, self.state.progress.history[-1]), flush=True)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class Checkpoint(Callback):
    """Saves the whole training state into ``run`` after every epoch, and when training stops within one."""

    def __init__(self, run: Path):
        self.run = Path(run)

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.run, self.model, self.state.optimizer, self.state.progress)

    def on_train_end(self, logs=None):
        if self.state.progress.step:  # stopped mid-epoch (a signal): keep the steps it took
            save_checkpoint(self.run, self.model, self.state.optimizer, self.state.progress)


class TrainingInterrupted(Exception):
    """Raised after a signal: the step in flight finished and a checkpoint was saved."""

    def __init__(self, run, epoch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.run, self.epoch, self.step = run, epoch, step


class StopOnSignal(Callback):
    """SIGINT/SIGTERM: finish the step in flight, stop (the checkpoint callback saves), raise TrainingInterrupted.

    Used as a context manager around ``fit``: it installs the signal handlers and puts the old ones back.
    """

    def __init__(self):
        self.raised = False  # set by the handler, read between steps
        self.interrupted = False
        self.previous = {}

    def __enter__(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[number] = signal.signal(number, self._set)
            except ValueError:  # not the main thread: no handlers, training still works
                pass
        return self

    def _set(self, number, frame):
        self.raised = True

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _check(self) -> None:
        if distributed.any_rank(self.raised)[0]:  # every process stops at the same step
            self.interrupted = self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        progress = self.state.progress
        if self.interrupted and progress.epoch < self.state.config.epochs:
            raise TrainingInterrupted(self.state.run, progress.epoch, progress.step)
