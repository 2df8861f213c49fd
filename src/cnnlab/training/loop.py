"""``fit``: the training loop, over epochs and batches, as Keras's ``model.fit`` runs it.

The data set stays in memory as one tensor (uint8 images, or float images already scaled as Keras code passes
them) and batches are taken by index (no per-sample DataLoader); images become float (B, C, H, W)
channels_last batches on the fly. The loss is Keras's, by name (``cnnlab.training.losses``). As in Keras: the
validation split is the last fraction of the training set, taken before shuffling; the training set
is reshuffled every epoch; the reported loss and accuracy are means over the epoch's samples.

The loop itself only steps: it calls the model the engine made faster (``cnnlab.engine.accelerate``)
and the optimizer, and keeps the running sums in ``progress``. Everything around it (the NaN guard,
validation, history, the progress display, checkpoints, stopping on a signal) is a callback
(``cnnlab.training.callbacks``). Every source of randomness is saved or derived from the seed (the
shuffle from (seed, epoch), the augmentation from (seed, step)), so a run resumed from a checkpoint
ends with the weights of a run never interrupted.

Under torchrun the same loop runs in every process: each takes its share of every batch and DDP
averages the gradients (see ``cnnlab.training.distributed``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data.augment import parse_augment
from cnnlab.engine.accelerate import accelerate
from cnnlab.engine.devices import autocast, resolve_device
from cnnlab.errors import CnnlabError
from cnnlab.nn.inputs import as_model_input
from cnnlab.nn.optimizers import OPTIMIZERS, learning_rate, make_optimizer
from cnnlab.training import distributed
from cnnlab.training.callbacks import CallbackList, History, NanGuard, ProgressDisplay, Validation
from cnnlab.training.checkpoint import Progress
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.losses import loss_activation, per_sample_accuracy, per_sample_loss, prepare_targets


@dataclass
class TrainingState:
    """What the callbacks see of the loop (``self.state``)."""

    model: torch.nn.Module  # the model being trained
    net: torch.nn.Module  # what the steps call: the engine's faster model, under torchrun wrapped in DDP
    optimizer: torch.optim.Optimizer
    config: FitConfig
    progress: Progress  # where training stands; saved by checkpoints
    steps_per_epoch: int
    device: torch.device
    run: Path | None = None  # the run folder, when fit is part of a run
    epoch: int = 0  # the epoch in progress, from 0
    epoch_started: float = 0.0  # time.perf_counter() at its start, less the seconds it ran before a resume


def split_validation(images, labels, fraction: float):
    """Keras's rule: the last ``fraction`` of the arrays, before any shuffling."""
    split_at = int(math.floor(len(images) * (1.0 - fraction)))
    if fraction and (split_at < 1 or split_at == len(images)):
        raise CnnlabError(f"--validation-split {fraction}: leaves no training or no validation samples")
    return (images[:split_at], labels[:split_at]), (images[split_at:], labels[split_at:]) if fraction else None


def epoch_order(seed: int, epoch: int, count: int) -> torch.Tensor:
    """The epoch's shuffle, derived from (seed, epoch) so a resumed run draws the same one."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def fit(
    model,
    train_data,
    validation=None,
    config: FitConfig | None = None,
    *,
    callbacks=(),
    progress: Progress | None = None,
    optimizer=None,
    device=None,
    run: Path | None = None,
    verbose: bool = True,
    nan_guard: bool = True,
) -> list[dict]:
    """Train ``model`` in place on ``train_data`` = (images (N, H, W, C) or (N, F), labels).

    Images are uint8, or float already scaled to [0, 1]; labels are what ``config.loss`` takes (int64 (N,) for
    the default sparse cross-entropy, one-hot rows for the categorical one; see ``losses.prepare_targets``).

    ``validation``: (images, labels) to validate on after every epoch, or None (then ``config.validation_split``
    may take the last fraction of ``train_data``). Returns the history: one dict per epoch with loss,
    accuracy, val_loss, val_accuracy, seconds. ``progress`` and ``optimizer`` carry on an earlier fit. With the
    constant schedule the learning rate is the optimizer's own (and whatever a callback sets it to).
    ``nan_guard``: stop with an error once the loss is NaN or infinite (Keras's own fit goes on; its
    TerminateOnNaN callback stops).
    """
    config = config or FitConfig()
    if isinstance(config, TrainConfig) or not isinstance(config, FitConfig):
        raise TypeError(
            "fit takes a FitConfig (a TrainConfig is a whole run: use cnnlab.train, or "
            f"config.fit_config()). Received: config={type(config).__name__}"
        )
    config.check()
    if config.validation_split:
        if validation is not None:
            raise ValueError(
                "fit: give validation data or a validation_split, not both. "
                f"Received: validation_split={config.validation_split} and validation data"
            )
        train_data, validation = split_validation(*train_data, config.validation_split)
    device = device or resolve_device(config.device)
    images = torch.as_tensor(train_data[0]).to(device)
    labels = prepare_targets(config.loss, train_data[1], model.output_shape).to(device)
    activation = loss_activation(model.output_activation, config.loss, config.from_logits)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = optimizer or make_optimizer(model, config)
    fast_model, optimizer = accelerate(model, optimizer)
    world, progress = distributed.world(), progress or Progress()
    count, batch = len(images), config.batch_size
    if batch < world.size:
        raise CnnlabError(
            f"--batch-size {batch}: the global batch is shared by {world.size} processes; give at least {world.size}"
        )
    state = TrainingState(
        model, distributed.wrap(fast_model, device), optimizer, config, progress, math.ceil(count / batch), device, run
    )
    checks = [NanGuard()] if nan_guard else []
    if validation is not None:
        prepare_targets(config.loss, validation[1], model.output_shape)  # checked now, not after an epoch
        checks.append(Validation(*(torch.as_tensor(t).to(device) for t in validation)))
    hooks = CallbackList([*checks, History(progress.history), ProgressDisplay(verbose), *callbacks], model, state)
    base_lr = config.lr or OPTIMIZERS[config.optimizer][1]
    total_steps = state.steps_per_epoch * config.epochs
    augmentation = parse_augment(config.augment)
    mixed_precision = autocast(device, config.precision)  # reusable: entered once a step
    model.stop_training = False
    hooks.on_train_begin({})
    for epoch in range(progress.epoch, config.epochs):
        state.epoch, state.epoch_started = epoch, time.perf_counter() - progress.seconds
        hooks.on_epoch_begin(epoch, {})
        model.train()
        order = (epoch_order(config.seed, epoch, count) if config.shuffle else torch.arange(count)).to(device)
        if world.rank:  # a checkpoint's partial sums cover every process: process 0 carries them on, once
            progress.loss_sum, progress.correct, progress.seen = 0.0, 0, 0
        loss_sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=device)
        correct = torch.tensor(progress.correct, dtype=torch.float64, device=device)  # sum of per-sample accuracies
        logs: dict = {}
        for step in range(progress.step, state.steps_per_epoch):
            hooks.on_train_batch_begin(step, logs)
            batch_index = order[step * batch : (step + 1) * batch]
            index = batch_index[world.rank :: world.size]  # this process's share of the batch
            batch_images = images.index_select(0, index)  # (B, H, W, C); images[index] takes 10x longer
            if augmentation is not None:  # drawn for the whole batch from (seed, step): resumes and processes agree
                choices = augmentation.draw(len(batch_index), config.seed, progress.global_step)
                batch_images = augmentation.apply(batch_images, choices[world.rank :: world.size])
            inputs, targets = as_model_input(batch_images), labels.index_select(0, index)  # (B, C, H, W), (B, ...)
            if config.schedule != "constant":
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config.schedule, base_lr, progress.global_step, total_steps)
            with mixed_precision:
                logits = state.net(inputs).float()
                losses = per_sample_loss(config.loss, logits, targets, activation, config.label_smoothing)
                # this process's part of the batch's mean loss; DDP divides the summed gradients by the processes
                loss = losses.sum() * (world.size / len(batch_index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += losses.detach().sum()
            correct += per_sample_accuracy(logits.detach(), targets, activation).sum()
            progress.step, progress.global_step = step + 1, progress.global_step + 1
            progress.seen += len(index)
            if device.type == "cpu" or step % 50 == 0:  # a host sync is free on the CPU, costly on a GPU
                logs = {"loss": loss_sum.item() / progress.seen, "accuracy": correct.item() / progress.seen}
            hooks.on_train_batch_end(step, logs)
            if model.stop_training and step + 1 < state.steps_per_epoch:
                break  # the epoch's partial sums are kept below, for a checkpoint to save
        progress.loss_sum, progress.correct, progress.seen = _over_processes(loss_sum, correct, progress.seen)
        if progress.step < state.steps_per_epoch:  # stopped within the epoch
            progress.seconds = time.perf_counter() - state.epoch_started
            break
        epoch_logs = {"loss": progress.loss_sum / progress.seen, "accuracy": progress.correct / progress.seen}
        progress.next_epoch()  # the epoch is done: a checkpoint saved from here on resumes at the next
        hooks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    hooks.on_train_end({})
    return progress.history


def _over_processes(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, float, int]:
    """The epoch's running sums, added up over all processes (as they are in a single process)."""
    loss_total, correct_total, seen_total = distributed.sum_over_ranks([loss_sum.item(), float(correct), float(seen)])
    return loss_total, correct_total, int(seen_total)
