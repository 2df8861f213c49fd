"""Experiment trackers as callbacks: TensorBoard event files, Weights & Biases runs, MLflow runs.

Each tracker is an optional dependency, imported when a tracker is made (so ``cnnlab --help`` never loads
one); a missing one is a CnnlabError naming its pip install. A tracker logs the run's settings when training
begins and the epoch's metrics (loss, accuracy, val_loss, val_accuracy, seconds, learning_rate) at the end of
each epoch. Training ends before the test metrics and the model files exist, so ``finish(test)``, called
once the run folder is complete, logs the test metrics (and MLflow's copy of the run folder) and closes it.

``tracker_callbacks(names, run_path, config)`` makes the trackers ``cnnlab train --log NAME`` asks for; under
torchrun only process 0 tracks.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.names import TRACKERS
from cnnlab.training import distributed
from cnnlab.training.callbacks import Callback
from cnnlab.training.checkpoint import FILE as CHECKPOINT_FILE
from cnnlab.training.run import CONFIG_FILE
from cnnlab.training.runs_table import flatten, read_json_file


def require(module: str, tracker: str):
    """Import a tracker's package, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = TRACKERS[tracker]
        raise CnnlabError(f"--log {tracker} needs the {package} package: pip install {package}") from None


def run_settings(run_path: str | Path | None, given: dict) -> dict:
    """``given`` updated with the run's config.json (what was built, where it ran) when there is one.

    Read directly, not with Run.record: under torchrun that waits for every process, and only process 0 tracks.
    """
    try:
        return {**given, **read_json_file(Path(run_path) / CONFIG_FILE, dict)} if run_path is not None else given
    except CnnlabError:
        return given


def epoch_metrics(logs: dict, optimizer) -> dict[str, float]:
    """The epoch's finite numbers from ``logs``, and the learning rate the optimizer ended the epoch with."""
    metrics = {key: float(value) for key, value in logs.items() if isinstance(value, int | float)}
    metrics["learning_rate"] = float(optimizer.param_groups[0]["lr"])
    return {key: value for key, value in metrics.items() if math.isfinite(value)}


def tracked_test_metrics(test: dict | None) -> dict[str, float]:
    """train's test results as tracked names: test_loss and test_accuracy."""
    return {f"test_{key}": float(test[key]) for key in ("loss", "accuracy") if key in (test or {})}


class Tracker(Callback):
    """What every tracker shares: ``finish`` once, after the run; the hooks are the subclasses'."""

    finished = False

    def finish(self, test: dict | None = None) -> None:
        """Log the test metrics (train's ``test``: loss, accuracy) and close; later calls do nothing."""
        if not self.finished:
            self.finished = True
            self._finish(tracked_test_metrics(test))

    def _finish(self, test: dict[str, float]) -> None: ...


SAMPLES = 16  # pictures in TensorBoard's predictions grid: 4 x 4 stays legible


def predicted_samples(model, samples, state, count: int = SAMPLES):
    """The first ``count`` of ``samples`` (images uint8 (N, H, W, C), labels (N,), class names) and a title for
    each: the model's guess, and the true class when the guess is wrong."""
    import torch

    from cnnlab.training.evaluate import predict_logits

    images, labels, class_names = samples
    images = torch.as_tensor(images[:count])
    logits = predict_logits(model, images.to(state.device), precision=state.config.precision)
    titles = [
        class_names[guess] if guess == truth else f"{class_names[guess]} (true {class_names[truth]})"
        for guess, truth in zip(logits.argmax(1).tolist(), torch.as_tensor(labels[:count]).tolist())
    ]
    return images.cpu().numpy(), titles


class TensorBoardLogger(Tracker):
    """TensorBoard event files in ``log_dir``: a scalar per metric per epoch, the model summary as text, and
    with ``samples`` a grid of predictions per epoch.

    ``samples``: (images uint8 (N, H, W, C), labels (N,), class names), e.g. the validation data; the first 16
    are drawn, each titled with the model's prediction (and the true class when it is wrong).
    """

    writer = None

    def __init__(self, log_dir: str | Path, samples=None):
        self.log_dir, self.samples = Path(log_dir), samples
        self.tensorboard = require("torch.utils.tensorboard", "tensorboard")
        self.step = 0  # the last epoch logged (from 1): the test metrics are drawn at it

    def on_train_begin(self, logs=None):
        from cnnlab.nn.summary import format_summary, summarize

        self.writer = self.tensorboard.SummaryWriter(log_dir=str(self.log_dir))
        # TensorBoard renders text as Markdown: indented by four spaces, the table stays a table
        summary = format_summary(summarize(self.model))
        self.writer.add_text("model", "\n".join("    " + line for line in summary.splitlines()))

    def on_epoch_end(self, epoch, logs=None):
        self.step = epoch + 1
        for key, value in epoch_metrics(logs, self.state.optimizer).items():
            self.writer.add_scalar(key, value, self.step)
        if self.samples is not None:
            self.writer.add_figure("predictions", self._predictions(), self.step)
        self.writer.flush()  # TensorBoard shows each epoch as it ends

    def _predictions(self):
        from cnnlab.lab.plots import sample_grid

        images, titles = predicted_samples(self.model, self.samples, self.state)
        return sample_grid(images, range(len(titles)), titles)  # each picture titled by its own

    def _finish(self, test):
        if self.writer is not None:
            for key, value in test.items():
                self.writer.add_scalar(key, value, self.step)
            self.writer.close()


class WandbLogger(Tracker):
    """A Weights & Biases run: the config, per-epoch metrics, and a summary with the test metrics; with
    ``samples`` (as TensorBoardLogger's), every epoch logs ``examples``: the pictures, each captioned with the
    model's guess (and the true class when it is wrong), as the lesson's ``WandbCallback(data_type="image")``.

    ``mode``: "online", "offline" or "disabled"; None: $WANDB_MODE, else online only with $WANDB_API_KEY set,
    offline otherwise (nothing leaves the machine; ``wandb sync`` uploads the run later, as printed once).
    """

    run = None
    hinted = False  # the sync hint: once per process, however many runs

    def __init__(
        self, project: str, config: dict, mode: str | None = None, dir: str | Path | None = None, samples=None
    ):
        self.wandb = require("wandb", "wandb")
        self.project, self.config, self.dir, self.samples = project, config, dir, samples
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")

    def on_train_begin(self, logs=None):
        self.run = self.wandb.init(
            project=self.project,
            name=Path(self.state.run).name if self.state.run is not None else None,
            config=self.config,
            dir=None if self.dir is None else str(self.dir),
            mode=self.mode,
            settings=self.wandb.Settings(console="off"),  # cnnlab's own output stays as it is
        )

    def on_epoch_end(self, epoch, logs=None):
        logged = {**epoch_metrics(logs, self.state.optimizer), "epoch": epoch + 1}
        if self.samples is not None:
            images, titles = predicted_samples(self.model, self.samples, self.state)
            logged["examples"] = [self.wandb.Image(image, caption=title) for image, title in zip(images, titles)]
        self.run.log(logged, step=epoch + 1)

    def _finish(self, test):
        if self.run is None:
            return
        self.run.summary.update(test)
        sync_dir = self.run.settings.sync_dir
        self.run.finish()
        # finish returns before wandb's service has written the run's file; teardown waits for it (wandb's own
        # atexit hook would too, but cnnlab's command ends with os._exit)
        self.wandb.teardown()
        if self.mode == "offline" and not WandbLogger.hinted:
            WandbLogger.hinted = True
            print(
                f"cnnlab: the wandb run is offline in {sync_dir}; upload it with: wandb sync {sync_dir}",
                file=sys.stderr,
            )


class MlflowLogger(Tracker):
    """An MLflow run: the run's settings as params, metrics per epoch, the run folder's files as artifacts.

    ``tracking_uri``: None keeps a local file store, ``mlruns/`` beside the run folder (in the current folder
    for a fit without one); runs go to the experiment ``experiment``.
    """

    client = run_id = None

    def __init__(self, tracking_uri: str | None = None, experiment: str = "cnnlab"):
        require("mlflow.tracking", "mlflow")  # here, before training, when it is missing
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.step = 0  # the last epoch logged (from 1)

    def on_train_begin(self, logs=None):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        run = self.state.run
        uri = (
            self.tracking_uri
            or (Path(run).parent if run is not None else Path.cwd()).joinpath("mlruns").resolve().as_uri()
        )
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store only on request (it prefers a database, which mlflow-skinny lacks)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=Path(run).name if run else None).info.run_id
        settings = run_settings(run, asdict(self.state.config))
        params = [Param(key, str(value)) for key, value in flatten(settings).items()]
        self.client.log_batch(self.run_id, params=params)

    def _log(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)  # MLflow's timestamps are milliseconds
        entries = [Metric(key, value, now, self.step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def on_epoch_end(self, epoch, logs=None):
        self.step = epoch + 1
        self._log(epoch_metrics(logs, self.state.optimizer))

    def _finish(self, test):
        if self.run_id is None:
            return
        self._log(test)
        run = self.state.run
        # the run's own files; the checkpoint only resumes training, the sub-folders are other trackers'
        for file in sorted(Path(run).iterdir()) if run is not None else []:
            if file.is_file() and file.name != CHECKPOINT_FILE:
                self.client.log_artifact(self.run_id, str(file), artifact_path="run")
        self.client.set_terminated(self.run_id)


def tracker_callbacks(names, run_path: str | Path, config, samples=None) -> list[Tracker]:
    """The trackers ``--log`` names (each once), for the run at ``run_path`` made with ``config``.

    ``config``: the TrainConfig (or its dict); ``samples``: pictures for TensorBoard's predictions grid and
    W&B's examples (see TensorBoardLogger). Call each tracker's ``finish(test)`` once the run folder is complete.
    Under torchrun, processes other than 0 get none.
    """
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise CnnlabError(f"--log must be one of {', '.join(TRACKERS)}. Received: {unknown[0]!r}")
    if not distributed.is_main():
        return []
    run_path = Path(run_path)
    settings = run_settings(run_path, asdict(config) if is_dataclass(config) else dict(config))
    makers = {
        "tensorboard": lambda: TensorBoardLogger(run_path / "tensorboard", samples),
        "wandb": lambda: WandbLogger("cnnlab", settings, dir=run_path, samples=samples),
        "mlflow": lambda: MlflowLogger(),
    }
    return [makers[name]() for name in dict.fromkeys(names)]
