"""Each test starts a fresh Keras session, so automatic layer names start again from conv2d, dense..."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fresh_session():
    from cnnlab.keras import backend

    backend.clear_session()
    yield
