"""Keras's progress display for ``fit``, ``evaluate`` and ``predict``: ``verbose`` 0, 1 or 2 ('auto' is 1).

verbose=1: 'Epoch 1/2', then a bar that grows over the epoch's steps, with the running loss and accuracy:

    469/469 ━━━━━━━━━━━━━━━━━━━━ 5s 10ms/step - accuracy: 0.9131 - loss: 0.2948 - val_accuracy: ...

On a terminal or in Jupyter the bar is one line redrawn with a carriage return at most every 0.1 s (padded
with spaces over what a longer line before it left, as Keras pads: a carriage return only moves back); anywhere
else (a log file, captured output) only the epoch's last line is written, so the output stays a few lines an
epoch. verbose=2: 'Epoch 1/2' and one line an epoch, ``469/469 - 5s - 10ms/step - accuracy: ... - loss: ...``.
The lines are drawn here; ``cnnlab.keras.callbacks.ProgbarLogger`` writes them as fit goes.
"""

from __future__ import annotations

import sys

BAR_WIDTH = 20  # characters, as Keras draws it
REDRAW_SECONDS = 0.1


def resolve_verbose(verbose) -> int:
    """'auto' -> 1; 0, 1, 2 as they are."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


def interactive() -> bool:
    """Whether a redrawn line shows as one line: a terminal, or a Jupyter kernel's output."""
    # a kernel's stdout is ipykernel's OutStream; ipykernel merely imported (by a test runner, say) is not Jupyter
    return sys.stdout.isatty() or type(sys.stdout).__module__.startswith("ipykernel")


def format_logs(logs: dict) -> str:
    """' - accuracy: 0.9131 - loss: 0.2948', Keras's number format (small values in scientific notation)."""
    return "".join(
        f" - {key}: {value:.4f}" if abs(value) >= 1e-3 else f" - {key}: {value:.4e}" for key, value in logs.items()
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else f"{int(seconds // 60)}m {seconds % 60:.0f}s"


def _per_step(seconds: float, steps: int) -> str:
    each = seconds / max(steps, 1)
    return f"{each * 1e3:.0f}ms/step" if each >= 1e-3 else f"{each * 1e6:.0f}us/step"


def bar_line(step: int, steps: int, seconds: float, logs: dict) -> str:
    """verbose=1's line after ``step`` of ``steps``: the bar, the time (left while running, taken at the end)."""
    done = BAR_WIDTH * step // max(steps, 1)
    bar = "━" * done + " " * (BAR_WIDTH - done)
    shown = seconds if step >= steps else seconds / max(step, 1) * (steps - step)  # the end's time, or what is left
    return f"{step:>{len(str(steps))}}/{steps} {bar} {_duration(shown)} {_per_step(seconds, step)}{format_logs(logs)}"


def redraw(line: str, width: int) -> str:
    """``line`` drawn over the row's old ones (``width``: the longest): a carriage return, then spaces to cover."""
    return "\r" + line + " " * max(width - len(line), 0)


def epoch_line(steps: int, seconds: float, logs: dict) -> str:
    """verbose=2's line at the end of an epoch."""
    return f"{steps}/{steps} - {_duration(seconds)} - {_per_step(seconds, steps)}{format_logs(logs)}"
