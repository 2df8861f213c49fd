"""The course's experiments, run with its settings over several seeds, beside the accuracies it reports.

A couple of epochs leave room for chance: one seed can land a point below the course's figure and the
next a point above. Each experiment is therefore trained once per seed (0, 1, 2 by default) and reported
as the mean and the range of the test accuracies. Where the course gives no settings (``cnn-deep``: "add
more conv layers"), the model card's ``settings`` say what is used instead, and the table shows them.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path

from cnnlab.files import write_atomic, write_json
from cnnlab.names import COURSE_EXPERIMENTS, MODEL_CARDS
from cnnlab.nn.registry import create_model
from cnnlab.nn.summary import summarize


def experiment_config(name: str, seed: int, runs_dir: Path, epochs: int | None = None, limit: int | None = None):
    """The TrainConfig of one experiment and seed: the course's batch and epochs, then the card's own settings."""
    from cnnlab.training.config import TrainConfig

    card = MODEL_CARDS[name]
    settings = {"epochs": card.course_epochs, "batch_size": card.course_batch_size, **card.settings}
    if epochs is not None:
        settings["epochs"] = epochs
    return TrainConfig(
        model=name,
        dataset=card.dataset,
        limit=limit,
        seed=seed,
        name=f"{name}-seed{seed}",
        runs_dir=str(runs_dir),
        validate_on_test=card.dataset == "cifar10",
        **settings,
    )


def reproduce(
    models=COURSE_EXPERIMENTS,
    out_dir: str | Path | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    seeds=(0, 1, 2),
    verbose: bool = True,
) -> tuple[list[dict], Path]:
    """Train each model once per seed as the course does; return the table rows and the folder they went to."""
    from cnnlab.training.train import train

    out = Path(out_dir or f"runs/reproduce-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in models:
        card = MODEL_CARDS[name]
        accuracies, seconds, runs = [], [], []
        for seed in seeds:
            config = experiment_config(name, seed, out, epochs, limit)
            if verbose:
                print(f"== {name}, seed {seed}: {card.description} ({describe(config)})", flush=True)
            started = time.perf_counter()
            result = train(config, verbose=verbose)
            seconds.append(round(time.perf_counter() - started, 1))
            accuracies.append(round(result.test["accuracy"], 4))
            runs.append(str(result.run))
        rows.append(
            {
                "experiment": name,
                "settings": describe(config),
                "course_accuracy": card.course_accuracy,
                "seeds": list(seeds),
                "accuracies": accuracies,
                "mean_accuracy": round(statistics.fmean(accuracies), 4),
                "params": summarize(create_model(name)).total,
                "median_seconds": statistics.median(seconds),
                "runs": runs,
            }
        )
    write_json(out / "reproduce.json", rows)
    write_atomic(out / "reproduce.md", format_table(rows) + "\n")
    return rows, out


def describe(config) -> str:
    """'2 epochs, batch 128, rmsprop' and whatever else differs from the course's defaults."""
    parts = [f"{config.epochs} epoch{'s' * (config.epochs != 1)}", f"batch {config.batch_size}", config.optimizer]
    if config.lr is not None:
        parts.append(f"lr {config.lr:g}")
    if config.schedule != "constant":
        parts.append(config.schedule)
    return ", ".join(parts)


def format_table(rows: list[dict]) -> str:
    """A Markdown table: experiment, settings, the course's accuracy, cnnlab's mean and range, parameters, time."""
    count = max((len(row["seeds"]) for row in rows), default=0)
    lines = [
        f"| experiment | settings | course accuracy | cnnlab mean of {count} seeds | range | parameters | "
        "seconds per run |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        course = f"{row['course_accuracy']:.2%}" if row["course_accuracy"] else "–"
        approx = "≈" if row["course_accuracy"] in (0.98, 0.99) else ""
        low, high = min(row["accuracies"]), max(row["accuracies"])
        lines.append(
            f"| {row['experiment']} | {row['settings']} | {approx}{course} | {row['mean_accuracy']:.2%} | "
            f"{low:.2%}–{high:.2%} | {row['params']:,} | {row['median_seconds']:.1f} |"
        )
    return "\n".join(lines)
