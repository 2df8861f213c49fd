"""Commands for speed: ``bench`` (the course's fit, timed against the machine's floor) and ``recipes``."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--model", default="cnn", show_default=True, help="A registry model (see `cnnlab summary`).")
@click.option(
    "--compare",
    type=click.Choice(["textbook"]),
    help="Also time the textbook PyTorch loop (DataLoader, nn.Sequential, NCHW) in a fresh process.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--limit", type=click.IntRange(min=10), help="Use the first N training images only (a quick check).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write every figure to this JSON file.")
def bench(model: str, compare: str | None, epochs: int, limit: int | None, json_path: str | None) -> None:
    """Time the course's fit (batch 128, RMSprop, validation split 0.3) on cnnlab's engine.

    Prints seconds per epoch, samples per second, the ratio to the floor (the model's training
    FLOPs over this machine's measured matrix-multiply rate) and the peak memory. Other programs
    running at the same time slow it down: compare figures taken side by side.
    """
    from pathlib import Path

    from cnnlab.errors import CnnlabError
    from cnnlab.files import write_json
    from cnnlab.training.bench import format_bench, run_bench

    if json_path and not Path(json_path).resolve().parent.is_dir():
        raise CnnlabError(f"--json {json_path}: its folder does not exist; create it or choose another file")
    figures = run_bench(model, compare=compare, epochs=epochs, limit=limit)
    if json_path:
        write_json(json_path, figures)
    click.echo(format_bench(figures))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the recipes and their measurements as JSON.")
def recipes(as_json: bool) -> None:
    """The training recipes, with the accuracy and time measured for each. Run one with `cnnlab train --recipe NAME`."""
    from cnnlab.training.recipes import format_recipes, list_recipes

    if as_json:
        click.echo(json.dumps([recipe.to_dict() for recipe in list_recipes()], indent=2))
    else:
        click.echo(format_recipes())


COMMANDS = [bench, recipes]
