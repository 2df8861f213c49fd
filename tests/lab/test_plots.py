"""Figures, and the helper process that draws a run's curves.png while the run imports torch."""

from __future__ import annotations

import sys

from cnnlab.lab.plots import CurvesProcess, history_figure

HISTORY = [
    {"epoch": 1, "loss": 0.31, "accuracy": 0.91, "val_loss": 0.12, "val_accuracy": 0.965, "seconds": 1.5},
    {"epoch": 2, "loss": 0.09, "accuracy": 0.973, "val_loss": 0.08, "val_accuracy": 0.976, "seconds": 1.4},
]


def test_the_helper_draws_the_curves_this_process_would(tmp_path):
    with CurvesProcess() as curves:
        curves.draw(HISTORY, out=tmp_path / "helper.png", title="cnn on mnist")
        assert curves.process.returncode == 0  # drawn by the helper, not by the fallback
    history_figure(HISTORY, out=tmp_path / "here.png", title="cnn on mnist")
    assert (tmp_path / "helper.png").read_bytes() == (tmp_path / "here.png").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["helper.png", "here.png"]  # no temporary files


def test_curves_are_drawn_here_when_the_helper_cannot_start(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with CurvesProcess() as curves:
        assert curves.process is None
        curves.draw(HISTORY, out=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_curves_are_drawn_here_when_the_helper_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # starts, and exits with 1 without drawing
    with CurvesProcess() as curves:
        curves.draw(HISTORY, out=tmp_path / "curves.png")
        assert curves.process.returncode == 1
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_leaving_the_block_stops_a_helper_still_waiting():
    with CurvesProcess() as curves:  # a run that fails never calls draw
        assert curves.process.poll() is None
    assert curves.process.poll() is not None
