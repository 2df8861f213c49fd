"""The ``cnnlab`` command: a thin layer over the Python API.

Each concern keeps its commands in its own module (``core``, ``data``, ``vision``, ``use``,
``speed``); every module lists them in ``COMMANDS``. Nothing here imports torch, so
``cnnlab --help`` stays fast: commands import the heavy parts inside their bodies.

Every user error ends the same way: one line on stderr, no traceback, a non-zero exit
(1 for a problem with the input, 2 for a malformed command line, 130 for Ctrl-C).
"""

from __future__ import annotations

import os
import sys

import click

from cnnlab.errors import CnnlabError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnnlab")
def cli() -> None:
    """Build, train, inspect and use convolutional neural networks on images.

    Start with `cnnlab train` (the course's CNN on MNIST, 2 epochs), then
    `cnnlab summary cnn`, `cnnlab filter --kernel box --stride 2,1` or
    `cnnlab predict runs/NAME my-digit.png`.
    """


def _register_commands() -> None:
    from cnnlab.cli import core, data, keras, lab, runs, speed, sweep, use, vision

    for module in (data, core, speed, vision, use, lab, keras, runs, sweep):
        for command in module.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and of ``python -m cnnlab``."""
    _register_commands()
    try:
        cli.main(args=argv, prog_name="cnnlab", standalone_mode=False)
    except click.exceptions.Exit as stop:
        sys.exit(stop.exit_code)
    except click.exceptions.Abort:
        print("cnnlab: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as problem:
        where = problem.ctx.command_path if getattr(problem, "ctx", None) else "cnnlab"
        hint = f" (see '{where} --help')" if isinstance(problem, click.UsageError) else ""
        print(f"{where}: error: {problem.format_message()}{hint}", file=sys.stderr)
        sys.exit(problem.exit_code)
    except CnnlabError as problem:
        print(f"cnnlab: error: {problem}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        sys.exit(130)


def run() -> None:
    """The console script (and ``python -m cnnlab``): ``main``, then leave without Python's orderly shutdown.

    With torch loaded that shutdown takes about 0.5 s (``import torch`` then exit: 1.6 s, against 1.1 s
    when the process ends with os._exit). Every file cnnlab writes is complete (written, flushed, renamed)
    before ``main`` returns, so only the standard streams need flushing.
    """
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (cnnlab ... | head): nothing more can be said
        code = code or 1
    os._exit(code)
