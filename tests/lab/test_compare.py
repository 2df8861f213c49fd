"""Several runs' curves on one figure (cnnlab.lab.compare)."""

from __future__ import annotations

import pytest
from pngfiles import png_size

from cnnlab.lab.compare import compare_figure


def _history(epochs: int, validated: bool = True) -> list[dict]:
    rows = [{"epoch": n, "loss": 1.0 / n, "accuracy": 1 - 0.5 / n} for n in range(1, epochs + 1)]
    return (
        [row | {"val_loss": row["loss"] + 0.1, "val_accuracy": row["accuracy"] - 0.1} for row in rows]
        if validated
        else rows
    )


def test_each_run_has_its_colour_training_solid_validation_dashed(tmp_path):
    figure = compare_figure(
        {"a": _history(3), "b": _history(2), "c": _history(2, validated=False)}, out=tmp_path / "c.png"
    )
    accuracy, loss = figure.axes
    for axes, metric in ((accuracy, "accuracy"), (loss, "loss")):
        lines = {line.get_label(): line for line in axes.get_lines()}
        assert list(lines) == ["a", "a (validation)", "b", "b (validation)", "c"]  # c was not validated
        assert [lines[name].get_linestyle() for name in lines] == ["-", "--", "-", "--", "-"]
        assert lines["a"].get_color() == lines["a (validation)"].get_color() != lines["b"].get_color()
        assert list(lines["a"].get_xdata()) == [1, 2, 3] and axes.get_ylabel() == metric
        assert [text.get_text() for text in axes.get_legend().get_texts()] == list(lines)
    assert list(loss.get_lines()[1].get_ydata()) == pytest.approx([1.1, 0.6, 1 / 3 + 0.1])
    assert png_size(tmp_path / "c.png") == (1200, 450)


def test_no_histories_is_a_value_error():
    with pytest.raises(ValueError, match="at least one history"):
        compare_figure({})
