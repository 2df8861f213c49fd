"""Shared fixtures: run the CLI in-process and capture exactly what it prints."""

from __future__ import annotations

import os
from dataclasses import dataclass

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")  # tests draw figures without a display

# Property tests: the full count of examples in CI, a quick look while working (HYPOTHESIS_PROFILE picks one).
settings.register_profile("ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("quick", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if "CI" in os.environ else "quick"))


def pytest_collection_modifyitems(items):
    """Browser tests start Chromium: part of the slow lane too (pytest -m "not slow" leaves them out)."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``cnnlab ARGS...`` in this process; return its exit code, stdout and stderr."""
    from cnnlab.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run folder with the course's CNN trained on 6,000 MNIST images for 2 epochs (about 91% test accuracy).

    Trained once per test session and shared: tests that need a real model use it read-only.
    """
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.train import train

    runs = tmp_path_factory.mktemp("runs")
    config = TrainConfig(limit=6000, epochs=2, validation_split=0.0, runs_dir=str(runs), name="t", device="cpu")
    return train(config, verbose=False).run
