"""Figures: training curves and sample grids. Each function returns a matplotlib Figure and can write a PNG.

``CurvesProcess`` draws a run's curves.png in a helper process (``python -m cnnlab.lab.plots``) that
``cnnlab train`` starts before it imports torch: importing matplotlib and drawing a first figure take
0.5 s on one core, which torch's import leaves idle; done at the end of the run they were a tenth of
the course's whole `cnnlab train`.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys


def save_figure(figure, out) -> None:
    """Write a figure as PNG through a temporary file and a rename."""
    from cnnlab.files import write_atomic

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
        raise ValueError(
            f"sample_grid needs as many labels as images, at least one. Received: {count} images, {len(labels)} labels"
        )
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


class CurvesProcess:
    """A helper process, started early, that draws one curves.png when ``draw`` hands it the history.

    If the helper cannot start or fails, ``draw`` draws in this process instead (and raises what that
    raises). Use it as a context manager: leaving the block stops a helper still waiting (a failed run).
    """

    def __init__(self):
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cnnlab.lab.plots"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self.process = None

    def draw(self, history: list[dict], out, title: str = "") -> None:
        if self.process is not None:
            request = json.dumps({"history": history, "out": str(out), "title": title}).encode()
            try:
                self.process.communicate(request, timeout=60)
                if self.process.returncode == 0:
                    return
            except (OSError, subprocess.TimeoutExpired):
                self.close()
        history_figure(history, out=out, title=title)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _draw_the_requested_curves() -> None:
    """The helper: matplotlib's import and first figure (fonts) first, then the one request on stdin."""
    warm_up = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}]
    history_figure(warm_up, title="warm-up").savefig(io.BytesIO(), format="png")
    request = json.load(sys.stdin)  # EOF (the run failed, or was killed) ends the helper with an error
    history_figure(request["history"], out=request["out"], title=request["title"])


if __name__ == "__main__":
    _draw_the_requested_curves()
    os._exit(0)  # the run waits for this exit: skip tearing matplotlib down (the PNG is written and closed)
