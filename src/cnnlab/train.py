"""Training: ``fit`` is the plain loop; ``train`` is a whole run, from data to the run folder.

The loop keeps the data set as one uint8 tensor in memory and takes batches by index (no
per-sample DataLoader); images become float (B, C, H, W) channels_last batches on the fly. It
follows Keras's ``model.fit``: the validation split is the last fraction of the training set,
taken before shuffling; the training set is reshuffled every epoch; the reported loss and accuracy
are means over the epoch's samples; optimizers use Keras's default hyper-parameters.

Every epoch ends with an atomic checkpoint. SIGINT/SIGTERM finish the current step, save, and raise
``TrainingInterrupted``; ``train(config, resume=RUN)`` carries on from that point and ends with the
same weights as an uninterrupted run, because every source of randomness is either saved or derived
from the seed: the shuffle from (seed, epoch), the augmentation from (seed, step).

Under torchrun the same loop runs in every process: each takes its share of every batch, DDP averages
the gradients, and process 0 alone prints and writes the run folder (see ``cnnlab.distributed``).
"""

from __future__ import annotations

import csv
import ctypes
import io
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab import distributed
from cnnlab.augment import parse_augment
from cnnlab.checkpoint import FILE as CHECKPOINT, Progress, load_checkpoint, save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import PRECISIONS, autocast, evaluate
from cnnlab.modelio import save, write_atomic, write_json
from cnnlab.models import as_model_input
from cnnlab.optimizers import OPTIMIZERS, SCHEDULES, learning_rate, make_optimizer
from cnnlab.plots import CurvesProcess, history_figure


class TrainingInterrupted(Exception):
    """Raised after a signal: the step in flight finished and a checkpoint was saved."""

    def __init__(self, run: Path | None, epoch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.run, self.epoch, self.step = run, epoch, step


@dataclass
class TrainConfig:
    model: str = "cnn"
    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: int = 28  # folder datasets are resized to this
    channels: int = 1  # folder datasets: 1 gray, 3 RGB
    epochs: int = 2
    batch_size: int = 128
    optimizer: str = "rmsprop"
    lr: float | None = None  # None: the optimizer's Keras default
    momentum: float | None = None  # sgd only
    weight_decay: float | None = None
    validation_split: float = 0.3
    limit: int | None = None  # use only the first N training images (quick experiments, tests)
    validate_on_test: bool = False  # the course's CIFAR exercise validates on the test set
    schedule: str = "constant"
    label_smoothing: float = 0.0
    augment: str | None = None  # e.g. "shift:2,flip" (see cnnlab.augment)
    betas: tuple[float, float] | None = None  # adam, adamw; None: Keras's (0.9, 0.999)
    recipe: str | None = None  # the recipe these settings came from (cnnlab.recipes), kept in config.json
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # float32, mixed_bfloat16 (bf16 products, float32 weights); auto: mixed on a GPU only
    name: str | None = None
    runs_dir: str = "runs"

    def check(self) -> None:
        """Reject out-of-range values with the option's name, before anything is loaded or written."""
        problems = [
            (self.epochs < 1, f"--epochs must be at least 1. Received: {self.epochs}"),
            (self.limit is not None and self.limit < 2, f"--limit must be at least 2. Received: {self.limit}"),
            (self.batch_size < 1, f"--batch-size must be at least 1. Received: {self.batch_size}"),
            (not 0 <= self.validation_split < 1, f"--validation-split must be in [0, 1). Received: {self.validation_split}"),
            (self.optimizer not in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}. Received: {self.optimizer!r}"),
            (self.lr is not None and not self.lr > 0, f"--lr must be positive. Received: {self.lr}"),
            (self.schedule not in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}. Received: {self.schedule!r}"),
            (not 0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1). Received: {self.label_smoothing}"),
            (self.device not in ("auto", "cpu", "cuda"), f"--device must be auto, cpu or cuda. Received: {self.device!r}"),
            (self.precision not in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}. Received: {self.precision!r}"),
            (self.betas is not None and (len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas)),
             f"betas (adam, adamw) must be two numbers in [0, 1). Received: {self.betas}"),
        ]
        for failed, message in problems:
            if failed:
                raise CnnlabError(message)
        parse_augment(self.augment)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (weights, dropout); shuffling derives from it per epoch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def tune_cpu(threads: int) -> None:
    """Run torch on ``threads`` threads and keep freed memory in the process for the next step.

    glibc gives a freed block above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) back to
    the kernel, so every step maps its activations afresh and pays a page fault per 4 KiB page: for the
    course's CNN about 3,600 faults and 7 ms of kernel time per step (measured on one thread, where the
    whole step takes 17 ms). Raising the mmap and trim thresholds to 1 GiB keeps those blocks for reuse.
    Other C libraries (macOS, musl) are left as they are.
    """
    torch.set_num_threads(threads)
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)


def split_validation(images, labels, fraction: float):
    """Keras's rule: the last ``fraction`` of the arrays, before any shuffling."""
    split_at = int(math.floor(len(images) * (1.0 - fraction)))
    if fraction and (split_at < 1 or split_at == len(images)):
        raise CnnlabError(f"--validation-split {fraction}: leaves no training or no validation samples")
    return (images[:split_at], labels[:split_at]), (images[split_at:], labels[split_at:]) if fraction else None


def _epoch_order(seed: int, epoch: int, count: int) -> torch.Tensor:
    """The epoch's shuffle, derived from (seed, epoch) so a resumed run draws the same one."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _epoch_line(epochs: int, row: dict) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4f}", f"accuracy {row['accuracy']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_accuracy {row['val_accuracy']:.4f}"]
    return "  ".join(parts + [f"{row['seconds']:.1f}s"])


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop reads between steps."""

    def __init__(self):
        self.raised = False
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


def fit(model, train_data, validation=None, config: TrainConfig | None = None, *, run: Path | None = None,
        progress: Progress | None = None, optimizer=None, stop=None, device=None, verbose: bool = True) -> list[dict]:
    """Train ``model`` in place on ``train_data`` = (uint8 images (N, H, W, C), int64 labels (N,)).

    Returns the history: one dict per epoch with loss, accuracy, val_loss, val_accuracy, seconds.
    With ``run``, a checkpoint is written there after every epoch and when ``stop.raised`` is set.
    ``config.batch_size`` is the global batch: under torchrun each process takes every world-th sample.
    """
    from tqdm import tqdm

    config = config or TrainConfig()
    device = device or resolve_device(config.device)
    images, labels = (torch.as_tensor(t).to(device) for t in train_data)
    if validation is not None:
        validation = tuple(torch.as_tensor(t).to(device) for t in validation)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = optimizer or make_optimizer(model, config)
    net = distributed.wrap(model, device)  # what the steps call: under torchrun, DDP averages gradients over processes
    world, verbose = distributed.world(), verbose and distributed.is_main()
    progress = progress or Progress()
    count, batch = len(images), config.batch_size
    if batch < world.size:
        raise CnnlabError(f"--batch-size {batch}: the global batch is shared by {world.size} processes; give at "
                          f"least {world.size}")
    steps_per_epoch = math.ceil(count / batch)
    base_lr = config.lr or OPTIMIZERS[config.optimizer][1]
    augmentation = parse_augment(config.augment)
    mixed_precision = autocast(device, config.precision)  # reusable: entered once a step
    live = verbose and os.isatty(2)
    for epoch in range(progress.epoch, config.epochs):
        model.train()
        order = _epoch_order(config.seed, epoch, count).to(device)
        started = time.perf_counter() - progress.seconds
        if world.rank:  # a checkpoint's partial sums cover every process: process 0 carries them on, once
            progress.loss_sum, progress.correct, progress.seen = 0.0, 0, 0
        loss_sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=device)
        correct = torch.tensor(progress.correct, device=device)
        bar = tqdm(total=steps_per_epoch, initial=progress.step, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not live, leave=False, unit="step", dynamic_ncols=True)
        for step in range(progress.step, steps_per_epoch):
            batch_index = order[step * batch:(step + 1) * batch]
            index = batch_index[world.rank::world.size]  # this process's share of the batch
            batch_images = images.index_select(0, index)  # (B, H, W, C) uint8; images[index] takes 10x longer
            if augmentation is not None:  # drawn for the whole batch from (seed, step): resumed runs and processes agree
                choices = augmentation.draw(len(batch_index), config.seed, progress.global_step)
                batch_images = augmentation.apply(batch_images, choices[world.rank::world.size])
            inputs, targets = as_model_input(batch_images), labels.index_select(0, index)  # (B, C, H, W), (B,)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.schedule, base_lr, progress.global_step, steps_per_epoch * config.epochs)
            with mixed_precision:
                logits = net(inputs)
                losses = F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=config.label_smoothing)
                # this process's part of the batch's mean loss; DDP divides the summed gradients by the processes
                loss = losses.sum() * (world.size / len(batch_index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += losses.detach().sum()
            correct += (logits.argmax(1) == targets).sum()
            progress.step, progress.global_step, progress.seen = step + 1, progress.global_step + 1, progress.seen + len(index)
            checked = device.type == "cpu" or step % 50 == 0  # a host sync is free on the CPU, costly on a GPU
            # every process takes the same decisions, at the same step (a no-op in a single process)
            diverged, stopping = distributed.any_rank(checked and not math.isfinite(loss.item()),
                                                      stop is not None and stop.raised)
            if diverged:
                raise _diverged(f"epoch {epoch + 1}, step {step + 1}", run)
            if live and checked and step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / progress.seen:.4f}", refresh=False)
            bar.update(1)
            if stopping and step + 1 < steps_per_epoch:
                progress.loss_sum, progress.correct, progress.seen = _over_processes(loss_sum, correct, progress.seen)
                progress.seconds = time.perf_counter() - started
                if run is not None:
                    save_checkpoint(run, model, optimizer, progress)
                bar.close()
                raise TrainingInterrupted(run, epoch, step + 1)
        bar.close()
        progress.loss_sum, progress.correct, progress.seen = _over_processes(loss_sum, correct, progress.seen)
        if not math.isfinite(progress.loss_sum):
            raise _diverged(f"epoch {epoch + 1}", run)
        row = {"epoch": epoch + 1, "loss": progress.loss_sum / progress.seen, "accuracy": progress.correct / progress.seen}
        if validation is not None:  # every process validates on all of it: same weights, same numbers, no messages
            metrics = evaluate(model, *validation, with_per_class=False, precision=config.precision)
            row.update(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])
        row["seconds"] = round(time.perf_counter() - started, 3)
        progress.history.append(row)
        progress.epoch, progress.step, progress.loss_sum, progress.correct, progress.seen, progress.seconds = (
            epoch + 1, 0, 0.0, 0, 0, 0.0)
        if verbose:
            print(_epoch_line(config.epochs, row), flush=True)
        if run is not None:
            save_checkpoint(run, model, optimizer, progress)
            if distributed.is_main():
                write_history(run, progress.history)
        if distributed.any_rank(stop is not None and stop.raised)[0] and epoch + 1 < config.epochs:
            raise TrainingInterrupted(run, epoch + 1, 0)
    return progress.history


def _over_processes(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, int, int]:
    """The epoch's running sums, added up over all processes (as they are in a single process)."""
    loss_total, correct_total, seen_total = distributed.sum_over_ranks([loss_sum.item(), float(correct), float(seen)])
    return loss_total, int(correct_total), int(seen_total)


def _diverged(where: str, run: Path | None) -> CnnlabError:
    kept = f"; {run / CHECKPOINT} keeps the last good state" if run is not None and (run / CHECKPOINT).exists() else ""
    return CnnlabError(f"the loss became NaN or infinite at {where}: training stopped{kept}. Try a lower --lr")


def write_history(run: Path, history: list[dict]) -> None:
    write_json(run / "history.json", history)
    columns = list(dict.fromkeys(key for row in history for key in row))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_atomic(run / "history.csv", table.getvalue())


@dataclass
class RunResult:
    run: Path
    history: list[dict]
    test: dict  # loss, accuracy, per_class_accuracy
    model: torch.nn.Module  # the trained model, on the CPU


def _new_run_folder(config: TrainConfig) -> Path:
    name = config.name or f"{config.model if '(' not in config.model else 'custom'}-{config.dataset.replace(':', '-').replace('/', '-')}-{datetime.now():%Y%m%d-%H%M%S}"
    run = Path(config.runs_dir) / name
    try:
        run.parent.mkdir(parents=True, exist_ok=True)
        run.mkdir()
    except FileExistsError:
        raise CnnlabError(f"{run}: this run folder already exists; choose another --name, or --resume {run}") from None
    except OSError as problem:
        raise CnnlabError(f"{run}: cannot create the run folder ({problem.strerror})") from None
    return run


def _prepare(config: TrainConfig):
    """Load the data and build the model, checking that they fit each other."""
    from cnnlab.data import load_dataset
    from cnnlab.models import parse_model

    dataset = load_dataset(config.dataset, data_dir=config.data_dir, image_size=config.image_size,
                           channels=config.channels)
    if dataset.skipped and distributed.is_main():  # a warning: shown even with --quiet
        print(f"cnnlab: {dataset.skipped_message()}", file=sys.stderr)
    image_shape = tuple(dataset.x_train.shape[1:])
    model = parse_model(config.model, input_shape=image_shape)
    classes = len(dataset.class_names)
    if model.output_shape != (classes,):
        raise CnnlabError(f"--model {config.model}: its output {model.output_shape} does not match the "
                          f"{classes} classes of {config.dataset}; end the model with dense({classes},softmax)")
    return dataset, model


def _resumed_config(run: Path, given: TrainConfig) -> TrainConfig:
    """The run's own settings (read by process 0); only --epochs (to train longer) and --device are the command's."""
    def read() -> str:
        try:
            return (run / "config.json").read_text()
        except OSError:
            raise CnnlabError(f"--resume {run}: no readable config.json; give a run folder made by cnnlab train") from None

    try:
        saved = json.loads(distributed.from_main(read))
    except json.JSONDecodeError:
        saved = None
    if not isinstance(saved, dict) or not isinstance(saved.get("epochs"), int):
        raise CnnlabError(f"{run / 'config.json'}: damaged (not the settings of a cnnlab run); start a new run")
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{**{k: v for k, v in saved.items() if k in known},
                          "epochs": max(given.epochs, saved["epochs"]), "device": given.device})


def train(config: TrainConfig, resume: str | Path | None = None, verbose: bool = True,
          curves: CurvesProcess | None = None) -> RunResult:
    """A whole run: data, model, fit with checkpoints, test metrics, and the run folder.

    Under torchrun every process calls this with the same arguments; process 0 writes the run folder.
    ``curves``: a helper process started earlier draws curves.png (the CLI's); None draws it here.
    """
    config.check()
    with distributed.process_group(resolve_device(config.device)) as device:
        if resume is not None:
            config = _resumed_config(Path(resume), config)
            config.check()
        tune_cpu(distributed.threads_per_process())
        # one seed per process: their dropout masks differ, and DDP gives every process process 0's initial weights
        seed_everything(config.seed + distributed.world().rank)
        dataset, model = _prepare(config)
        model.to(device=device, memory_format=torch.channels_last)
        optimizer = make_optimizer(model, config)
        if resume is not None:
            run, progress = Path(resume), load_checkpoint(Path(resume), model, optimizer)
        else:
            run, progress = Path(distributed.from_main(lambda: str(_new_run_folder(config)))), Progress()
        if distributed.is_main():
            write_json(run / "config.json", {**asdict(config), "run": str(run), "data_source": dataset.source,
                                             "torch": torch.__version__, "device": str(device),
                                             "threads": torch.get_num_threads(), "processes": distributed.world().size})
        train_data = (dataset.x_train[:config.limit], dataset.y_train[:config.limit])
        if config.validate_on_test:
            validation = (dataset.x_test, dataset.y_test)
        else:
            train_data, validation = split_validation(*train_data, config.validation_split)
        with _StopFlag() as stop:
            history = fit(model, train_data, validation, config, run=run, progress=progress, optimizer=optimizer,
                          stop=stop, device=device, verbose=verbose)
        test = evaluate(model, torch.as_tensor(dataset.x_test).to(device), torch.as_tensor(dataset.y_test).to(device),
                        precision=config.precision)
    model.to("cpu")
    if distributed.is_main():
        save(model, run, class_names=dataset.class_names, dataset=config.dataset)
        write_json(run / "metrics.json", {"test_loss": test["loss"], "test_accuracy": test["accuracy"],
                                          "per_class_accuracy": dict(zip(dataset.class_names, test["per_class_accuracy"]))})
        draw = curves.draw if curves is not None else history_figure
        draw(history, out=run / "curves.png", title=f"{model.name} on {config.dataset}")
    return RunResult(run, history, test, model)
