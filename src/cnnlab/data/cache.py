"""The cache of decoded arrays and the verified download.

Decompressing and hashing MNIST's 47 MB takes longer than the rest of a short run's start-up, so
decoded arrays are kept as ``.npy`` files in the cache (``cache_dir()``) and reused while their
source file is unchanged. Downloads are checked against a digest before they are kept.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic

READ_CHUNK = 1 << 22  # bytes per read (4 MiB)


def cache_dir() -> Path:
    """Where downloads and decoded arrays are kept: ``$CNNLAB_CACHE``, else ``~/.cache/cnnlab``."""
    return Path(os.environ.get("CNNLAB_CACHE") or Path.home() / ".cache" / "cnnlab")


def load_cached(source: Path, parts: tuple[str, ...], decode: Callable[[], dict[str, np.ndarray]]):
    """``decode()``'s arrays by part name, from ``.npy`` files in the cache when an earlier run stored them.

    A source counts as unchanged while its path, size and modification time are (one stat() instead of
    re-hashing it, as make and pip do). Only arrays that ``decode`` checked are stored, and a cache
    that cannot be written only costs speed.
    """
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    files = {part: cache_dir() / "arrays" / f"{part}-{key}.npy" for part in parts}
    try:
        return {part: np.load(file, allow_pickle=False) for part, file in files.items()}
    except (OSError, ValueError, EOFError):
        pass  # not stored yet, or a damaged cache file: decode the source again
    arrays = decode()
    try:
        for part, file in files.items():
            file.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.save(buffer, arrays[part], allow_pickle=False)
            write_atomic(file, buffer.getvalue())
    except OSError:
        pass
    return arrays


def download(base_url: str, filename: str, dest_dir: Path, check: Callable[[bytes], str | None], remedy: str) -> Path:
    """Fetch ``base_url/filename`` into ``dest_dir`` if ``check(data)`` finds nothing wrong with it.

    The data stays in memory until checked and is then written atomically, so a failed or corrupt
    download never leaves a file behind. ``remedy`` ends every error message.
    """
    import urllib.request  # imported here: 30 ms that runs without a download should not pay
    from urllib.error import HTTPError

    from tqdm import tqdm  # a progress bar on terminals only (disable=None)

    url = f"{base_url.rstrip('/')}/{filename}"
    data = bytearray()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=filename, disable=None, leave=False) as bar:
                while chunk := response.read(READ_CHUNK):
                    data += chunk
                    bar.update(len(chunk))
    except OSError as problem:  # URLError, HTTPError and timeouts are OSErrors
        reason = problem if isinstance(problem, HTTPError) else getattr(problem, "reason", problem)
        raise CnnlabError(f"{url}: download failed ({reason}); {remedy}") from None
    problem = check(bytes(data))
    if problem:
        raise CnnlabError(f"{url}: corrupt download ({problem}); nothing was kept; {remedy}")
    target = dest_dir / filename
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as problem:
        raise CnnlabError(
            f"{target}: cannot be written ({problem.strerror}); set CNNLAB_CACHE to a writable folder"
        ) from None
    return target


def digest_check(algorithm: str, expected: str, gunzip: bool = False) -> Callable[[bytes], str | None]:
    """A ``download`` check: the data's digest (after decompression if ``gunzip``) must be ``expected``."""

    def check(data: bytes) -> str | None:
        if gunzip:
            try:
                data = gzip.decompress(data)
            except (gzip.BadGzipFile, EOFError, zlib.error) as problem:
                return f"bad gzip data: {problem}"
        actual = hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()
        return None if actual == expected else f"{algorithm} {actual}, expected {expected}"

    return check
