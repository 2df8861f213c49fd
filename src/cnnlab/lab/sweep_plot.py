"""sweep.png: a sweep's metric against each searched parameter, one panel per parameter (cnnlab sweep).

Ranges are placed by value (on a log axis where the parameter was searched on one), listed values (model
names, layer sizes) at evenly spaced positions. Completed trials are dots, pruned ones crosses (their value is the
best epoch they reached), the best trial a star; failed and unfinished trials have no value to show.
"""

from __future__ import annotations

import math


def _positions(rows: list[dict], name: str, values: list | None):
    """Each row's x for parameter ``name``, and the tick labels when the values are categories."""
    listed = values is not None  # listed values, numbers too, at even positions: 64, 128, 256 read better so
    if listed:
        labels = [str(value) for value in values]
        return [labels.index(str(row[name])) if str(row[name]) in labels else None for row in rows], labels
    return [row[name] for row in rows], None


def sweep_figure(rows: list[dict], parameters: dict[str, dict], metric: str, out=None, title: str = ""):
    """``rows``: the sweep's trials (``trial``, ``state``, one key per parameter and ``metric``);
    ``parameters``: name -> {"values": [...] or None, "log": bool}. Returns the Figure, written to ``out``."""
    from matplotlib.figure import Figure

    from cnnlab.lab.plots import save_figure

    shown = [row for row in rows if row["state"] in ("complete", "pruned") and row.get(metric) is not None]
    complete = [row for row in shown if row["state"] == "complete"]
    best = None
    if complete:
        pick = min if metric.endswith("loss") else max
        best = pick(complete, key=lambda row: row[metric])
    columns = min(3, len(parameters)) or 1
    lines = math.ceil(len(parameters) / columns) or 1
    figure = Figure(figsize=(4.2 * columns, 3.4 * lines), dpi=100)
    panels = figure.subplots(lines, columns, squeeze=False).ravel()
    for axes, (name, kind) in zip(panels, parameters.items()):
        xs, labels = _positions(shown, name, kind.get("values"))
        for state, marker, label in (("complete", "o", "complete"), ("pruned", "x", "pruned")):
            points = [(x, row[metric]) for x, row in zip(xs, shown) if row["state"] == state and x is not None]
            if points:
                axes.scatter(*zip(*points), marker=marker, label=label, alpha=0.8)
        if best is not None:
            x = xs[shown.index(best)]
            axes.scatter(
                [x],
                [best[metric]],
                marker="*",
                s=220,
                color="gold",
                edgecolor="black",
                zorder=3,
                label=f"best (trial {best['trial']})",
            )
        if labels is not None:
            axes.set_xticks(range(len(labels)), labels, rotation=30 if max(map(len, labels)) > 6 else 0)
            axes.set_xlim(-0.5, len(labels) - 0.5)
        elif kind.get("log"):
            axes.set_xscale("log")
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
    for axes in panels[len(parameters) :]:
        axes.set_visible(False)
    if shown:
        panels[0].legend(fontsize="small")
    figure.suptitle(title or f"{metric} against each parameter ({len(shown)} trials)")
    figure.tight_layout()
    if out is not None:
        save_figure(figure, out)
    return figure
