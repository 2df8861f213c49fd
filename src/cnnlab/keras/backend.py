"""``cnnlab.keras.backend``: the session's state, as Keras keeps it: automatic names and ``clear_session``.

Keras names layers and models when they are made, counting per kind over the whole session (``conv2d``,
``conv2d_1``, ...); ``clear_session()`` starts the counts again.
"""

from __future__ import annotations

from collections import Counter

_made: Counter = Counter()  # base name -> how many objects have taken it since the session began


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``... as Keras names layers and models."""
    count = _made[base]
    _made[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session() -> None:
    """Forget the names given so far: the next Conv2D is ``conv2d`` again (Keras's ``clear_session``)."""
    _made.clear()


def backend() -> str:
    """The engine under this Keras API."""
    return "cnnlab"


def image_data_format() -> str:
    """Images are (H, W, C) in every array a user gives or gets back, as Keras's default."""
    return "channels_last"
