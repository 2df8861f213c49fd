"""Shared fixtures: run the CLI in-process and capture exactly what it prints."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import pytest

matplotlib.use("Agg")  # tests draw figures without a display


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
