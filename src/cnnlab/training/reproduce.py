"""The course's experiments, run with its settings, side by side with the accuracies it reports."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cnnlab.files import write_atomic, write_json
from cnnlab.names import COURSE_EXPERIMENTS, MODEL_CARDS
from cnnlab.nn.registry import create_model
from cnnlab.nn.summary import summarize


def reproduce(
    models=COURSE_EXPERIMENTS,
    out_dir: str | Path | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> tuple[list[dict], Path]:
    """Train each model as the course does; return the table rows and the folder they were written to."""
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.train import train

    out = Path(out_dir or f"runs/reproduce-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in models:
        card = MODEL_CARDS[name]
        config = TrainConfig(
            model=name,
            dataset=card.dataset,
            epochs=epochs or card.course_epochs,
            batch_size=card.course_batch_size,
            limit=limit,
            seed=seed,
            name=name,
            runs_dir=str(out),
            validate_on_test=card.dataset == "cifar10",
        )
        if verbose:
            print(f"== {name}: {card.description} ({config.epochs} epochs, batch {config.batch_size})", flush=True)
        started = time.perf_counter()
        result = train(replace(config), verbose=verbose)
        rows.append(
            {
                "experiment": name,
                "epochs": config.epochs,
                "course_accuracy": card.course_accuracy,
                "cnnlab_accuracy": round(result.test["accuracy"], 4),
                "params": summarize(create_model(name)).total,
                "seconds": round(time.perf_counter() - started, 1),
                "run": str(result.run),
            }
        )
    write_json(out / "reproduce.json", rows)
    write_atomic(out / "reproduce.md", format_table(rows) + "\n")
    return rows, out


def format_table(rows: list[dict]) -> str:
    """A Markdown table: experiment, the course's accuracy, cnnlab's, parameters, wall seconds."""
    lines = [
        "| experiment | epochs | course accuracy | cnnlab accuracy | parameters | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        course = f"{row['course_accuracy']:.2%}" if row["course_accuracy"] else "–"
        approx = "≈" if row["course_accuracy"] in (0.98, 0.99) else ""
        lines.append(
            f"| {row['experiment']} | {row['epochs']} | {approx}{course} | {row['cnnlab_accuracy']:.2%} | "
            f"{row['params']:,} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines)
