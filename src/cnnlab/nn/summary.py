"""Model summaries as Keras prints them: counting (``summarize``) kept apart from printing.

``summarize(model)`` returns one ``LayerRow`` per layer and the totals; ``format_summary`` turns
them into text. Parameters count like Keras: BatchNormalization's moving mean and variance are
non-trainable parameters. Multiply-adds are per sample, for the forward pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    mult_adds: int  # per sample, forward pass


@dataclass(frozen=True)
class Summary:
    name: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow]

    @property
    def total(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def trainable(self) -> int:
        return sum(row.trainable for row in self.rows)

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    @property
    def mult_adds(self) -> int:
        return sum(row.mult_adds for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [{**asdict(row), "output_shape": list(row.output_shape)} for row in self.rows],
            "total_params": self.total,
            "trainable_params": self.trainable,
            "non_trainable_params": self.non_trainable,
            "mult_adds": self.mult_adds,
        }


def _mult_adds(layer) -> int:
    out = math.prod(layer.output_shape)
    if layer.type_name == "Conv2D":
        kh, kw = layer.kernel_size
        return out * kh * kw * layer.input_shape[-1]
    if layer.type_name == "Dense":
        return layer.input_shape[0] * layer.units
    return 0


def summarize(model) -> Summary:
    """Count each layer's parameters and multiply-adds; needs a built model."""
    if model.input_shape is None:
        raise ValueError("summarize: the model has no input shape yet; give Input(shape) or input_shape=")
    rows = []
    for layer in model.layers:
        trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in layer.parameters() if not p.requires_grad)
        stats = sum(b.numel() for n, b in layer.named_buffers() if n.endswith(("running_mean", "running_var")))
        rows.append(
            LayerRow(
                layer.name,
                layer.type_name,
                tuple(layer.output_shape),
                trainable + frozen + stats,
                trainable,
                _mult_adds(layer),
            )
        )
    return Summary(model.name, tuple(model.input_shape), rows)


def _shape(shape: tuple[int, ...]) -> str:
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def format_summary(summary: Summary) -> str:
    """The text of ``model.summary()``, with a multiply-adds column."""
    header = ("Layer (type)", "Output Shape", "Param #", "Mult-adds")
    cells = [
        (f"{r.name} ({r.type})", _shape(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}") for r in summary.rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]

    def line(row):
        return "  ".join(
            [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3])]
        ).rstrip()

    rule = "─" * len(line(header))
    lines = [f'Model: "{summary.name}"   input {_shape(summary.input_shape)}', rule, line(header), rule]
    lines += [line(row) for row in cells]
    lines += [
        rule,
        f"Total params: {summary.total:,}",
        f"Trainable params: {summary.trainable:,}",
        f"Non-trainable params: {summary.non_trainable:,}",
        f"Multiply-adds per sample: {summary.mult_adds:,}",
    ]
    return "\n".join(lines)


def print_summary(model) -> None:
    print(format_summary(summarize(model)))
