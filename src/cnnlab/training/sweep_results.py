"""A sweep's results, read from its study: one row per trial, as a table, CSV, JSON, best.yaml and sweep.png.

Every worker writes them after each trial (files written atomically: a reader never sees half of one), so
SWEEP_DIR holds the results so far at any time; they read the study, so they hold every worker's trials.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from cnnlab.files import write_atomic, write_json
from cnnlab.training.sweep_space import SweepSpec

RESULTS_CSV, RESULTS_JSON, BEST_FILE, PLOT_FILE = "results.csv", "results.json", "best.yaml", "sweep.png"
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass
class Outcome:
    """How one trial went, as the worker that ran it prints it."""

    number: int
    params: dict
    state: str  # complete, pruned, failed
    value: float | None
    seconds: float
    pruned_at: int | None = None
    error: str | None = None


def trial_line(spec: SweepSpec, outcome: Outcome) -> str:
    """'trial 3: dense_layer_size=128 lr=0.0012 → val_accuracy 0.8912 (12.3 s)'."""
    params = " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in outcome.params.items()
    )
    if outcome.state == "failed":
        return f"trial {outcome.number}: {params} → failed: {outcome.error}"
    result = f"{spec.metric} {outcome.value:.4f}" if outcome.value is not None else "no value"
    pruned = f", pruned at epoch {outcome.pruned_at}" if outcome.state == "pruned" else ""
    return f"trial {outcome.number}: {params} → {result}{pruned} ({outcome.seconds:.1f} s)"


def trial_rows(study, spec: SweepSpec) -> list[dict]:
    """One row per trial, by number: its parameters, state, metric, test accuracy, seconds, run folder."""
    trials = study.get_trials(deepcopy=False)
    retried_as = {n: t.number for t in trials for n in t.system_attrs.get("retry_history", [])[-1:]}
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        note = attrs.get("error")
        if trial.number in retried_as:
            note = f"{note or 'stopped'}; queued again as trial {retried_as[trial.number]}"
        elif trial.system_attrs.get("retry_history"):
            note = f"a retry of trial {trial.system_attrs['retry_history'][-1]}"
        value = trial.value if trial.state.name == "COMPLETE" else attrs.get(spec.validation_metric)
        if trial.state.name == "PRUNED" and spec.metric.startswith("test_"):
            value = attrs.get(spec.metric)
        rows.append(
            {
                "trial": trial.number,
                "state": _STATES.get(trial.state.name, trial.state.name.lower()),
                **{name: params.get(name) for name in spec.parameters},
                spec.metric: value,
                **({"test_accuracy": attrs.get("test_accuracy")} if spec.metric != "test_accuracy" else {}),
                "epochs_run": attrs.get("epochs"),  # not "epochs": that may be a parameter (and pruning cuts it)
                "pruned_at": attrs.get("pruned_at"),
                "seconds": attrs.get("seconds"),
                "run": attrs.get("run"),
                "note": note,
            }
        )
    return rows


def sorted_rows(rows: list[dict], spec: SweepSpec) -> list[dict]:
    """Finished trials by the metric, best first (complete before pruned); the others after, by number."""
    sign = -1 if spec.goal == "maximize" else 1
    order = {"complete": 0, "pruned": 1}

    def key(row):
        value = row[spec.metric]
        ranked = row["state"] in order and value is not None
        return (0, order[row["state"]], sign * value) if ranked else (1, row["trial"], 0)

    return sorted(rows, key=key)


def best_row(rows: list[dict], spec: SweepSpec) -> dict | None:
    complete = [row for row in rows if row["state"] == "complete" and row[spec.metric] is not None]
    return sorted_rows(complete, spec)[0] if complete else None


def _text(value, form: str = ".4g") -> str:
    """A cell: numbers with 4 significant digits unless ``form`` says otherwise (lr 0.00031 stays 0.00031)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:{form}}"
    return str(value)


def format_table(rows: list[dict], spec: SweepSpec) -> str:
    """The rows as an aligned table, numbers on the right; a note (an error, a retry) on a line below its row."""
    columns = ["trial", "state", *spec.parameters, spec.metric]
    columns += [name for name in ("test_accuracy", "epochs_run", "seconds") if name in rows[0]] if rows else []
    forms = {spec.metric: ".4f", "test_accuracy": ".4f", "seconds": ".1f"}
    cells = [[_text(row[column], forms.get(column, ".4g")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(isinstance(row[column], int | float) or row[column] is None for row in rows) for column in columns]

    def line(values):
        parts = [
            value.rjust(width) if right else value.ljust(width) for value, width, right in zip(values, widths, numeric)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(columns)]
    for row, values in zip(rows, cells):
        lines.append(line(values))
        if row["note"] and row["state"] not in ("complete", "pruned"):
            lines.append(f"  ! trial {row['trial']}: {row['note']}")
    return "\n".join(lines)


def best_lines(rows: list[dict], spec: SweepSpec, out: Path) -> list[str]:
    best = best_row(rows, spec)
    if best is None:
        return ["best: none yet (no trial has completed)"]
    params = " ".join(f"{name}={_text(best[name])}" for name in spec.parameters)
    return [
        f"best: trial {best['trial']}: {params} → {spec.metric} {best[spec.metric]:.4f}",
        f"best settings: {out / BEST_FILE} (train them again: cnnlab train --config {out / BEST_FILE})",
    ]


def best_settings(best: dict, spec: SweepSpec) -> str:
    """best.yaml: the fixed settings and the best trial's values, as a ``cnnlab train --config`` file."""
    import yaml

    settings = {**spec.settings, **{name: best[name] for name in spec.parameters}}
    head = f"# the best trial ({best['trial']}) of {spec.path}: {spec.metric} {best[spec.metric]:.4f}\n"
    return head + yaml.safe_dump(settings, sort_keys=False, default_flow_style=False)


def write_results(study, spec: SweepSpec, out: Path) -> list[dict]:
    """results.csv, results.json, best.yaml (once a trial completed) and sweep.png in ``out``; returns the rows."""
    from cnnlab.lab.sweep_plot import sweep_figure

    rows = trial_rows(study, spec)
    write_json(out / RESULTS_JSON, rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: json.dumps(v) if isinstance(v, list) else v for key, v in row.items()} for row in rows)
    write_atomic(out / RESULTS_CSV, buffer.getvalue())
    best = best_row(rows, spec)
    if best is not None:
        write_atomic(out / BEST_FILE, best_settings(best, spec))
    points = {
        name: {"values": list(p.values) if p.values is not None else None, "log": p.log}
        for name, p in spec.parameters.items()
    }
    sweep_figure(rows, points, spec.metric, out=out / PLOT_FILE, title=f"{spec.path.name}: {study.study_name}")
    return rows
