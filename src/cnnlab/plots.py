"""Figures: training curves and sample grids. Each function returns a matplotlib Figure and can write a PNG."""

from __future__ import annotations

import math


def save_figure(figure, out) -> None:
    """Write a figure as PNG through a temporary file and a rename."""
    import io

    from cnnlab.modelio import write_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    write_atomic(out, buffer.getvalue())


def history_figure(history: list[dict], out=None, title: str = ""):
    """Accuracy and loss per epoch, training against validation: the course's over-fitting picture."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(10, 4), dpi=100)
    for axes, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        axes.plot(epochs, [row[metric] for row in history], "o-", label=f"train {metric}")
        if history and f"val_{metric}" in history[0]:
            axes.plot(epochs, [row[f"val_{metric}"] for row in history], "s--", label=f"validation {metric}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_xticks(epochs)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    if out is not None:
        save_figure(figure, out)
    return figure


def sample_grid(images, labels, class_names: list[str], out=None):
    """Labelled samples in a square-ish grid, each titled with its class name.

    ``images``: uint8 (N, H, W, C) with C 1 (drawn gray) or 3; ``labels``: (N,) class indices.
    """
    from matplotlib.figure import Figure

    count = len(images)
    if count == 0 or len(labels) != count:
        raise ValueError(f"sample_grid needs as many labels as images, at least one. "
                         f"Received: {count} images, {len(labels)} labels")
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(1.4 * columns, 1.5 * rows), dpi=100, layout="constrained")
    for axes, image, label in zip(figure.subplots(rows, columns, squeeze=False).flat, images, labels):
        pixels = image[..., 0] if image.shape[-1] == 1 else image  # (H, W) gray or (H, W, 3) colour
        axes.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes.set_title(class_names[int(label)], fontsize=8)
    for axes in figure.axes:
        axes.set_axis_off()
    if out is not None:
        save_figure(figure, out)
    return figure
