"""``train``: a whole run, from a TrainConfig to a run folder (data, model, fit with checkpoints, test metrics).

Every epoch ends with an atomic checkpoint. SIGINT/SIGTERM finish the current step, save, and raise
``TrainingInterrupted``; ``train(config, resume=RUN)`` carries on from that point and ends with the
same weights as an uninterrupted run (see ``cnnlab.training.loop``).

Under torchrun every process calls ``train`` with the same arguments; process 0 alone prints and
writes the run folder (see ``cnnlab.training.distributed``).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.engine.devices import resolve_device, tune_cpu
from cnnlab.errors import CnnlabError
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.training import distributed
from cnnlab.training.callbacks import Checkpoint, StopOnSignal
from cnnlab.training.checkpoint import Progress, load_checkpoint
from cnnlab.training.config import TrainConfig
from cnnlab.training.evaluate import evaluate
from cnnlab.training.loop import fit, split_validation
from cnnlab.training.run import CURVES_FILE, Run, RunFiles
from cnnlab.training.trackers import tracker_callbacks


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (weights, dropout); shuffling derives from it per epoch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunResult:
    run: Path
    history: list[dict]
    test: dict  # loss, accuracy, per_class_accuracy
    model: torch.nn.Module  # the trained model, on the CPU


def prepare(config: TrainConfig):
    """Load the data and build the model for it: a registry model takes the data's shape and class count."""
    from cnnlab.data.registry import load_dataset
    from cnnlab.nn.registry import parse_model

    dataset = load_dataset(
        config.dataset, data_dir=config.data_dir, image_size=config.image_size, channels=config.channels
    )
    if dataset.skipped and distributed.is_main():  # a warning: shown even with --quiet
        print(f"cnnlab: {dataset.skipped_message()}", file=sys.stderr)
    classes = len(dataset.class_names)
    model = parse_model(
        config.model, input_shape=tuple(dataset.x_train.shape[1:]), classes=classes, options=config.model_options
    )
    if model.output_shape != (classes,):
        raise CnnlabError(
            f"--model {config.model}: its output {model.output_shape} does not match the "
            f"{classes} classes of {config.dataset}; end the model with dense({classes},softmax)"
        )
    return dataset, model


def _resumed_config(run: Run, given: TrainConfig) -> TrainConfig:
    """The run's own settings; only --epochs (to train longer) and --device are the command's."""
    saved = run.settings()
    saved.epochs, saved.device = max(given.epochs, saved.epochs), given.device
    return saved


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    verbose: bool = True,
    curves=None,
    trackers=(),
    callbacks=(),
) -> RunResult:
    """A whole run: data, model, fit with checkpoints, test metrics, and the run folder.

    ``curves``: a helper process started earlier draws curves.png (the CLI's, see cnnlab.lab.plots);
    None draws it here. ``trackers``: names of ``cnnlab.names.TRACKERS`` (``--log``) that also track the run.
    ``callbacks``: more of ``fit``'s callbacks, run after the run's own (``cnnlab sweep`` prunes trials with one).
    """
    config.check()
    with distributed.process_group(resolve_device(config.device)) as device:
        if resume is not None:
            config = _resumed_config(Run(resume), config)
            config.check()
        tune_cpu(distributed.threads_per_process())
        # one seed per process: their dropout masks differ, and DDP gives every process process 0's initial weights
        seed_everything(config.seed + distributed.world().rank)
        dataset, model = prepare(config)
        model.to(device=device, memory_format=torch.channels_last)
        optimizer = make_optimizer(model, config)
        if resume is not None:
            run = Run(resume)
            progress = load_checkpoint(run.path, model, optimizer)
        else:
            run, progress = Run(distributed.from_main(lambda: str(Run.create(config).path))), Progress()
        if distributed.is_main():
            built = {
                "input_shape": list(model.input_shape),
                "classes": len(dataset.class_names),
                "parameters": sum(p.numel() for p in model.parameters()),
            }  # what the model became for the data
            run.write_settings(
                config,
                built=built,
                data_source=dataset.source,
                torch=torch.__version__,
                device=str(device),
                threads=torch.get_num_threads(),
                processes=distributed.world().size,
            )
        train_data = (dataset.x_train[: config.limit], dataset.y_train[: config.limit])
        if config.validate_on_test:
            validation = (dataset.x_test, dataset.y_test)
        else:
            train_data, validation = split_validation(*train_data, config.validation_split)
        # trackers live in process 0 only; TensorBoard's grid of predictions shows validation pictures
        samples = (*(validation or train_data), dataset.class_names)
        tracking = tracker_callbacks(trackers, run.path, config, samples=samples)
        with StopOnSignal() as stop:
            history = fit(
                model,
                train_data,
                validation,
                config.fit_config(),
                progress=progress,
                optimizer=optimizer,
                device=device,
                run=run.path,
                verbose=verbose,
                callbacks=[Checkpoint(run.path), RunFiles(run), stop, *tracking, *callbacks],
            )
        test = evaluate(
            model,
            torch.as_tensor(dataset.x_test).to(device),
            torch.as_tensor(dataset.y_test).to(device),
            precision=config.precision,
        )
    model.to("cpu")
    if distributed.is_main():
        run.save_model(model, dataset.class_names, config.dataset)
        run.write_metrics(test, dataset.class_names)
        from cnnlab.lab.plots import history_figure

        draw = curves.draw if curves is not None else history_figure
        draw(history, out=run.path / CURVES_FILE, title=f"{model.name} on {config.dataset}")
        for tracker in tracking:  # the run folder is complete: test metrics, model files
            tracker.finish(test)
    return RunResult(run.path, history, test, model)
