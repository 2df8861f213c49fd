"""Several runs' curves on one figure (``cnnlab compare``): accuracy and loss per epoch, one colour per run.

Takes the histories as plain data (label -> history.json's rows), so it knows nothing of run folders.
"""

from __future__ import annotations

from cnnlab.lab.plots import save_figure


def compare_figure(histories: dict[str, list[dict]], out=None, title: str = ""):
    """Accuracy and loss of every run: training solid, validation dashed, one colour per run, with a legend."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not histories:
        raise ValueError("compare_figure needs at least one history. Received: histories={}")
    figure = Figure(figsize=(12, 4.5), dpi=100)
    for axes, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        for number, (label, history) in enumerate(histories.items()):
            colour = f"C{number % 10}"  # matplotlib's default cycle of ten colours
            epochs = [row["epoch"] for row in history if metric in row]
            axes.plot(epochs, [row[metric] for row in history if metric in row], "-", color=colour, label=label)
            validated = [row for row in history if f"val_{metric}" in row]
            if validated:
                axes.plot(
                    [row["epoch"] for row in validated],
                    [row[f"val_{metric}"] for row in validated],
                    "--",
                    color=colour,
                    label=f"{label} (validation)",
                )
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axes.set_ylabel(metric)
        axes.set_title(f"{metric}: training solid, validation dashed", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    if out is not None:
        save_figure(figure, out)
    return figure
