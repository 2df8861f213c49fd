"""Commands for looking back at runs: ``cnnlab runs`` (a table of them) and ``cnnlab compare`` (their curves)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cnnlab.errors import CnnlabError


@click.command()
@click.argument("folder", default="runs", type=click.Path(file_okay=False))
@click.option(
    "--sort",
    default="name",
    show_default=True,
    metavar="COLUMN",
    help="name, model, dataset, epochs, parameters, best_val_accuracy, test_accuracy, seconds or date "
    "(numbers from the largest).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def runs(folder: str, sort: str, as_json: bool) -> None:
    """The runs in FOLDER at a glance: model, data, epochs, parameters, accuracies, time, date.

    Folders that are not runs are skipped; a damaged run shows what could be read, then its problems.
    """
    from cnnlab.training.runs_table import format_runs, list_runs

    rows = list_runs(folder, sort=sort)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
    elif rows:
        click.echo(format_runs(rows))
    else:
        click.echo(f"no runs in {folder}")


def _labels(paths: list[Path]) -> list[str]:
    """Each run's folder name, or its whole path where two runs share a name."""
    names = [path.name for path in paths]
    return [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]


@click.command()
@click.argument("run_folders", metavar="RUN RUN...", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", default="compare.png", show_default=True, type=click.Path(dir_okay=False))
def compare(run_folders: tuple[str, ...], out: str) -> None:
    """Overlay the accuracy and loss curves of two or more runs in one PNG, and print how their settings differ."""
    if len(run_folders) < 2:
        raise click.UsageError("give at least two runs to compare")
    from cnnlab.lab.compare import compare_figure
    from cnnlab.training.run import Run
    from cnnlab.training.runs_table import config_differences, format_differences, read_history

    paths = [Path(folder) for folder in run_folders]
    for path in paths:
        if not path.is_dir():
            raise CnnlabError(f"{path}: not a run folder; give folders made by cnnlab train")
    labels = _labels(paths)
    histories = {label: read_history(Run(path)) for label, path in zip(labels, paths)}
    configs = {label: Run(path).record() for label, path in zip(labels, paths)}
    compare_figure(histories, out=out, title=" vs ".join(labels))
    click.echo(format_differences(config_differences(configs)))
    click.echo(f"wrote {out}")


COMMANDS = [runs, compare]
