"""Writing files so that a crash never leaves half of one: a temporary file in the same folder, then a rename.

Every file cnnlab writes (model files, run folders, checkpoints, caches, pictures) goes through
``write_atomic``: the data is written to ``.NAME.XXXX.tmp``, flushed to disk, and renamed over NAME.
A rename within one folder is atomic, so readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# mkstemp makes files only their owner can read; written files get the usual 0666 less the umask instead
UMASK = os.umask(0o022)
os.umask(UMASK)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (fsync'd: survives a crash)."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~UMASK)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2) + "\n")
