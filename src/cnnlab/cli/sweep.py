"""``cnnlab sweep``: a hyper-parameter search over any train setting, as the course's W&B sweeps (with Optuna)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--config",
    "sweep_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The sweep file (YAML or JSON): method (grid, random, tpe), metric, settings, parameters, pruning.",
)
@click.option(
    "--trials",
    type=int,
    metavar="N",
    help="Trials in all, over every worker (default: the whole grid, or the study's last).",
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="The sweep's folder (default: runs/sweep-NAME, NAME the file's)."
)
@click.option(
    "--storage",
    metavar="URL",
    help="The Optuna study's storage (default: sqlite:///OUT/study.db); workers on several machines share one, "
    "e.g. postgresql://user:pass@host/db.",
)
@click.option(
    "--study", "study_name", metavar="NAME", help="The study's name in the storage (default: the sweep file's name)."
)
@click.option("--quiet", is_flag=True, help="Print only the best trial.")
def sweep(
    sweep_file: str, trials: int | None, out: str | None, storage: str | None, study_name: str | None, quiet: bool
) -> None:
    """Search the settings of a sweep file: run its trials, then print and save the results.

    Each trial is a run in OUT/runs/trial-NNN. OUT gets results.csv, results.json, best.yaml (train it
    again with `cnnlab train --config OUT/best.yaml`) and sweep.png. Interrupted, the same command resumes;
    the same command on several machines with one --storage and --study shares the trials out.
    """
    if trials is not None and trials < 1:
        raise click.UsageError(f"--trials must be at least 1. Received: {trials}")
    from cnnlab.training import sweep as sweeping
    from cnnlab.training.sweep_results import best_lines, format_table, sorted_rows
    from cnnlab.training.sweep_space import read_sweep

    sweeping.optuna()  # before anything else: the one line that says how to install it
    spec = read_sweep(sweep_file)
    folder = Path(out or Path("runs") / f"sweep-{spec.path.stem}")
    try:
        rows = sweeping.run_sweep(
            spec, folder, trials, url=storage, name=study_name, echo=(lambda line: None) if quiet else click.echo
        )
    except sweeping.SweepInterrupted as stop:
        click.echo(f"cnnlab: interrupted: trial {stop} is queued again; run the same command to resume", err=True)
        raise SystemExit(130) from None
    if not quiet:
        click.echo(format_table(sorted_rows(rows, spec), spec))
    for line in best_lines(rows, spec, folder):
        click.echo(line)
        if quiet:
            break


COMMANDS = [sweep]
