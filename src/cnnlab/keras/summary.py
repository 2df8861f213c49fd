"""``model.summary()`` as Keras 3 prints it: a boxed table of the layers, then the totals with their sizes.

The counting is cnnlab's (``cnnlab.nn.summary.summarize``: BatchNormalization's moving statistics are
non-trainable parameters, as in Keras). Once the optimizer has been built, its variables are counted as Keras
counts them (its slots per weight, the iteration count and the learning rate) and added to the total.
"""

from __future__ import annotations

import textwrap
from itertools import zip_longest

from cnnlab.nn.summary import summarize

HEADER = ("Layer (type)", "Output Shape", "Param #")
WIDTHS = (31, 22, 13)  # Keras's column widths for a Sequential model, within one space of padding each side
KERAS_CLASS_NAMES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D"}
OPTIMIZER_SCALARS = 2  # Keras's optimizers also hold their iteration count and learning rate
BYTES_PER_PARAM = 4  # float32


def readable_size(count: int) -> str:
    """The memory of ``count`` float32 parameters: '2.65 MB', '846.29 KB', '0.00 B' (powers of 1024)."""
    size, units = float(count * BYTES_PER_PARAM), ["B", "KB", "MB", "GB", "TB"]
    unit = 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{size:.2f} {units[unit]}"


def optimizer_params(model) -> int:
    """The optimizer's variables once built (0 before): slots per trainable weight, and two scalars."""
    optimizer = model.optimizer
    if optimizer is None or optimizer.torch_optimizer is None:
        return 0
    return optimizer.slots_per_weight * summarize(model.module).trainable + OPTIMIZER_SCALARS


def format_keras_summary(model) -> str:
    """The text of Keras's ``model.summary()`` for a built cnnlab.keras model."""
    counts = summarize(model.module)
    cells = [
        (
            f"{row.name} ({KERAS_CLASS_NAMES.get(row.type, row.type)})",
            "(None, " + ", ".join(map(str, row.output_shape)) + ")",
            f"{row.params:,}",
        )
        for row in counts.rows
    ]

    def rule(left: str, middle: str, right: str, fill: str) -> str:
        return left + middle.join(fill * (width + 2) for width in WIDTHS) + right

    def row(cell, bar: str) -> list[str]:
        """A table row: text longer than its column wraps at spaces onto more lines, as Keras's table does."""
        wrapped = [textwrap.wrap(text, width, break_on_hyphens=False) for text, width in zip(cell, WIDTHS)]
        lines = []
        for parts in zip_longest(*wrapped, fillvalue=""):
            texts = [parts[0].ljust(WIDTHS[0]), parts[1].ljust(WIDTHS[1]), parts[2].rjust(WIDTHS[2])]
            lines.append(bar + bar.join(f" {text} " for text in texts) + bar)
        return lines

    lines = [f'Model: "{model.name}"', rule("┏", "┳", "┓", "━"), *row(HEADER, "┃"), rule("┡", "╇", "┩", "━")]
    for index, cell in enumerate(cells):
        if index:
            lines.append(rule("├", "┼", "┤", "─"))
        lines += row(cell, "│")
    lines.append(rule("└", "┴", "┘", "─"))
    extra = optimizer_params(model)
    totals = [
        ("Total", counts.total + extra),
        ("Trainable", counts.trainable),
        ("Non-trainable", counts.non_trainable),
    ] + ([("Optimizer", extra)] if extra else [])
    lines += [f" {label} params: {count:,} ({readable_size(count)})" for label, count in totals]
    return "\n".join(lines)
