"""Commands for the course's core workflow: models, summary, train, evaluate, reproduce."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import click

from cnnlab import names
from cnnlab.cli.data import data_dir_option, dataset_options, load_dataset_from_options
from cnnlab.errors import CnnlabError
from cnnlab.training.config import TrainConfig  # torch-free: the settings and their defaults

DEFAULTS = TrainConfig()
MODEL_HELP = (
    f"a registry model ({', '.join(names.MODEL_CARDS)}), a JSON spec file, or a one-line spec such as "
    "'conv(32,3)-maxpool(2)-relu-flatten-dense(128,relu)-dense(10,softmax)'"
)


def _choices(table) -> str:
    return "; ".join(f"{name}: {what}" for name, what in table.items())


@click.command(
    help="Layers, output shapes and parameter counts of MODEL, as Keras's model.summary() prints "
    f"them, plus multiply-adds per sample. MODEL is {MODEL_HELP}."
)
@click.argument("model")
@click.option("--input-shape", metavar="H,W,C", help="Input shape, e.g. 28,28,1 (default: the model's own).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows and totals as JSON.")
def summary(model: str, input_shape: str | None, as_json: bool) -> None:
    from cnnlab.nn.registry import parse_model
    from cnnlab.nn.specs import parse_input_shape
    from cnnlab.nn.summary import format_summary, summarize

    counted = summarize(parse_model(model, parse_input_shape(input_shape)))
    click.echo(json.dumps(counted.to_dict(), indent=2) if as_json else format_summary(counted))


@click.command()
def models() -> None:
    """The registry models: what each is, its parameters, the course's accuracy, and the hyper-parameters
    `cnnlab train --set NAME=VALUE` changes."""
    from cnnlab.nn.registry import create_model
    from cnnlab.nn.summary import summarize

    width = max(len(name) for name in names.MODEL_CARDS)
    for name, card in names.MODEL_CARDS.items():
        course = f", the course {card.course_accuracy:.2%}" if card.course_accuracy else ""
        total = summarize(create_model(name)).total
        click.echo(f"{name.ljust(width)}  {card.description}; {card.dataset}, {total:,} parameters{course}")
        if card.options:
            click.echo(
                " " * (width + 2) + "options: " + ", ".join(f"{key}={value}" for key, value in card.options.items())
            )


@click.command()
@click.option("--model", default=DEFAULTS.model, show_default=True, help="The model: " + MODEL_HELP + ".")
@dataset_options
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(list(names.OPTIMIZERS)),
    default=DEFAULTS.optimizer,
    show_default=True,
    help="With Keras's defaults (RMSprop: lr 0.001, rho 0.9, epsilon 1e-7).",
)
@click.option("--lr", type=float, help="Learning rate (default: the optimizer's Keras default).")
@click.option(
    "--validation-split",
    type=float,
    default=DEFAULTS.validation_split,
    show_default=True,
    help="Keras's rule: the LAST fraction of the training set, taken before shuffling, validates.",
)
@click.option(
    "--schedule",
    type=click.Choice(list(names.SCHEDULES)),
    default=DEFAULTS.schedule,
    show_default=True,
    help=_choices(names.SCHEDULES) + ".",
)
@click.option(
    "--augment",
    metavar="POLICY",
    help="Random shifts and flips of the training images: shift:N "
    "(up to N pixels each way), flip (left-right), or both, e.g. shift:2,flip.",
)
@click.option(
    "--recipe",
    help="Start from a recipe's model and settings (see `cnnlab recipes`); the options given here override them.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Settings from a YAML or JSON file (keys as these options, e.g. epochs: 5, batch_size: 64, or the "
    "model's hyper-parameters); the options given here override them.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set any train setting or a registry model's hyper-parameter, e.g. --set dense_layer_size=256 --set "
    "first_layer_conv_width=5 (see `cnnlab models`); repeatable, wins over everything else.",
)
@click.option("--limit", type=int, help="Train on the first N training images only (quick experiments).")
@click.option(
    "--seed",
    type=int,
    default=DEFAULTS.seed,
    show_default=True,
    help="One seed for Python, NumPy, torch and the shuffling: same seed, same history.",
)
@click.option("--device", type=click.Choice(names.DEVICES), default=DEFAULTS.device, show_default=True)
@click.option(
    "--precision",
    type=click.Choice(list(names.PRECISIONS)),
    default=DEFAULTS.precision,
    show_default=True,
    help=_choices(names.PRECISIONS) + " (Keras's policy names); mixed is faster on GPUs and on CPUs with "
    "AVX512-BF16 or AMX.",
)
@click.option("--name", help="Run folder name under --runs-dir (default: MODEL-DATASET-TIME).")
@click.option("--runs-dir", default=DEFAULTS.runs_dir, show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    metavar="RUN",
    help="Carry on an interrupted run from its last checkpoint (with --epochs: train longer).",
)
@click.option(
    "--log",
    "trackers",
    multiple=True,
    type=click.Choice(list(names.TRACKERS)),
    help="Also track the run: tensorboard (event files in RUN/tensorboard), wandb (offline in RUN/wandb without "
    "an API key) or mlflow (a local store, mlruns/ beside the run folder). Repeatable.",
)
@click.option("--quiet", is_flag=True, help="Print only the last line.")
def train(**options) -> None:
    """Train a model and save the run: config, history, curves, model and test metrics.

    With no options: the course's first CNN on MNIST, 2 epochs, batch 128, RMSprop,
    validation split 0.3. The last line printed is the test accuracy.
    """
    from cnnlab.lab.plots import CurvesProcess

    # started before torch is imported (see cnnlab.lab.plots); under torchrun process 0 alone writes the run
    with CurvesProcess() if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext() as curves:
        _train(options, curves)


def _train(options: dict, curves) -> None:
    from click.core import ParameterSource

    from cnnlab.training.callbacks import TrainingInterrupted
    from cnnlab.training.distributed import is_main, launch_command
    from cnnlab.training.settings import build_config, parse_assignments, read_settings
    from cnnlab.training.train import train as run_training

    resume, quiet, trackers = options.pop("resume"), options.pop("quiet"), options.pop("trackers")
    config_file, assignments = options.pop("config_file"), options.pop("assignments")
    options["data_dir"] = options["data_dir"] and str(options["data_dir"])
    context = click.get_current_context()
    given = {
        key: value for key, value in options.items() if context.get_parameter_source(key) != ParameterSource.DEFAULT
    }
    config = build_config(  # later sources win; a recipe among them is the starting point
        (config_file, read_settings(config_file) if config_file else {}),
        ("option", given),
        ("--set", parse_assignments(assignments)),
    )
    try:
        result = run_training(config, resume=resume, verbose=not quiet, curves=curves, trackers=trackers)
    except TrainingInterrupted as stop:
        where = f"; resume with: {launch_command()} train --resume {stop.run}" if stop.run else ""
        if is_main():
            click.echo(
                f"cnnlab: interrupted at epoch {stop.epoch + 1}, step {stop.step}: checkpoint saved{where}", err=True
            )
        raise SystemExit(130) from None
    if not is_main():  # under torchrun, process 0 reports for all
        return
    if not quiet:
        click.echo(f"run: {result.run}")
    click.echo(f"test accuracy: {result.test['accuracy']:.4f}")


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--dataset", help="Evaluate on this dataset's test set (default: the one the run trained on).")
@data_dir_option
@click.option(
    "--report",
    "with_report",
    is_flag=True,
    help="Also report the confusion matrix, per-class precision, "
    "recall and F1, the most-confused pairs and the worst mistakes (text, JSON and PNG files).",
)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for --report's files (default: RUN/report).")
def evaluate(run: str, dataset: str | None, data_dir: Path | None, with_report: bool, out: str | None) -> None:
    """Test loss, accuracy and per-class accuracy of a trained RUN."""
    if out is not None and not with_report:
        raise click.UsageError("--out is the folder for --report's files; add --report")
    from cnnlab.training.evaluate import predict_logits, score
    from cnnlab.training.run import Run

    model = Run(run).load_model()
    settings = Run(run).dataset_settings(model)
    data = load_dataset_from_options(
        dataset or settings["dataset"] or DEFAULTS.dataset,
        data_dir or settings["data_dir"],
        settings["image_size"],
        settings["channels"],
    )
    if tuple(data.x_test.shape[1:]) != tuple(model.input_shape):
        raise CnnlabError(
            f"{run}: the model takes {tuple(model.input_shape)} images, {data.name} has {tuple(data.x_test.shape[1:])}"
        )
    import torch

    logits = predict_logits(model, torch.as_tensor(data.x_test))  # (N, classes): once, for metrics and report
    metrics = score(logits, data.y_test)
    click.echo(f"test loss: {metrics['loss']:.4f}")
    click.echo(f"test accuracy: {metrics['accuracy']:.4f}")
    click.echo("per-class accuracy:")
    width = max(len(name) for name in model.class_names)
    for name, value in zip(model.class_names, metrics["per_class_accuracy"]):
        click.echo(f"  {name.ljust(width)}  {value:.4f}")
    if with_report:
        from cnnlab.lab.report import build_report, format_report, write_report

        report = build_report(logits, data.y_test, model.class_names)
        click.echo("\n" + format_report(report))
        written = write_report(report, data.x_test, out or Path(run) / "report")
        click.echo("wrote " + ", ".join(str(path) for path in written))


@click.command()
@click.option(
    "--models",
    default=",".join(names.COURSE_EXPERIMENTS),
    show_default=True,
    help="Comma-separated registry models to run.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override the course's epochs (default: the course's).")
@click.option("--limit", type=click.IntRange(min=2), help="Train on the first N images only (a quick look).")
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Train each experiment with seeds 0 to N-1 and report the mean and range.",
)
@click.option(
    "--out-dir", type=click.Path(file_okay=False), help="Where runs and the table go (default: runs/reproduce-TIME)."
)
@click.option("--quiet", is_flag=True, help="Print only the table.")
def reproduce(models: str, epochs: int | None, limit: int | None, seeds: int, out_dir: str | None, quiet: bool) -> None:
    """Run the course's experiments over several seeds and print them beside the accuracies the course reports.

    Writes the table as reproduce.md and reproduce.json next to the runs.
    """
    from cnnlab.training.reproduce import format_table
    from cnnlab.training.reproduce import reproduce as run_experiments

    chosen = [name.strip() for name in models.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in names.MODEL_CARDS]
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(names.MODEL_CARDS)}",
            param_hint="--models",
        )
    rows, out = run_experiments(
        chosen, out_dir=out_dir, epochs=epochs, limit=limit, seeds=range(seeds), verbose=not quiet
    )
    click.echo(format_table(rows))
    click.echo(f"wrote {out / 'reproduce.md'} and {out / 'reproduce.json'}")


COMMANDS = [models, summary, train, evaluate, reproduce]
