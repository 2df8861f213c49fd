"""CIFAR-10, from the official *binary* version (``cifar-10-binary.tar.gz``), never the pickled Python one.

Each record is 1 label byte and 3072 pixel bytes, the red, green and blue planes one after another,
each 32×32 row by row. The archive's members are read in memory, never extracted.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from cnnlab.data.cache import cache_dir, digest_check, download, load_cached
from cnnlab.data.dataset import Dataset, DatasetInfo
from cnnlab.errors import CnnlabError

CIFAR_MIRROR = "https://www.cs.toronto.edu/~kriz"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the archive, as published beside it
CIFAR_FOLDER = "cifar-10-batches-bin"  # the folder inside the archive
CIFAR_BATCHES = {"train": [f"data_batch_{number}.bin" for number in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_SIDE = 32
RECORD_BYTES = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE  # label byte, then the R, G and B planes


def load_cifar10(data_dir: Path | None = None) -> Dataset:
    """CIFAR-10 from ``data_dir`` (the archive or its extracted folder), else the cache, else a download."""
    if data_dir is not None:
        source = _find_cifar(data_dir)
    else:
        source = cache_dir() / CIFAR_ARCHIVE
        if not source.is_file():
            download(
                CIFAR_MIRROR,
                CIFAR_ARCHIVE,
                cache_dir(),
                digest_check("md5", CIFAR_MD5),
                remedy=f"put {CIFAR_ARCHIVE} in a folder and use --data-dir DIR",
            )
    if source.is_dir():  # the extracted batches are raw bytes already: as fast as a cache
        records = _cifar_records({path.name: (str(path), path.read_bytes()) for path in source.glob("*.bin")}, source)
    else:
        records = load_cached(
            source, ("cifar10-train", "cifar10-test"), lambda: _cifar_records(_archive_batches(source), source)
        )
    (x_train, y_train), (x_test, y_test) = (_images_and_labels(records[f"cifar10-{split}"]) for split in CIFAR_BATCHES)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, list(CIFAR_CLASSES), str(source))


def _find_cifar(data_dir: Path) -> Path:
    """The archive or the folder of batches in ``data_dir`` (or ``data_dir`` itself when it holds them)."""
    for candidate in (data_dir / CIFAR_ARCHIVE, data_dir / CIFAR_FOLDER, data_dir):
        if candidate.is_file() or (candidate / "test_batch.bin").is_file():
            return candidate
    raise CnnlabError(
        f"{data_dir}: no CIFAR-10 here; put {CIFAR_ARCHIVE} (the binary version, not the python "
        f"one) or its extracted {CIFAR_FOLDER} folder there"
    )


def _archive_batches(archive: Path) -> dict[str, tuple[str, bytes]]:
    """The batch files in a .tar.gz, by file name: (where, for messages; bytes)."""
    wanted = {name for names in CIFAR_BATCHES.values() for name in names}
    batches = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                member_path = PurePosixPath(member.name)
                if member_path.is_absolute() or ".." in member_path.parts:
                    raise CnnlabError(f"{archive}: member {member.name!r} has an unsafe path; refusing this archive")
                if member.isfile() and member_path.name in wanted:
                    batches[member_path.name] = (f"{archive}:{member.name}", tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as problem:  # gzip.BadGzipFile is an OSError
        raise CnnlabError(f"{archive}: not a readable .tar.gz archive ({problem}); download it again") from None
    return batches


def _cifar_records(batches: dict[str, tuple[str, bytes]], source: Path) -> dict[str, np.ndarray]:
    """The checked records (N, 3073) uint8 of each split's batch files, as "cifar10-train" and "cifar10-test"."""
    records = {}
    for split, names in CIFAR_BATCHES.items():
        missing = [name for name in names if name not in batches]
        if missing:
            raise CnnlabError(
                f"{source}: missing {', '.join(missing)}; use the binary version of CIFAR-10, {CIFAR_ARCHIVE}"
            )
        records[f"cifar10-{split}"] = np.concatenate([_parse_batch(*batches[name]) for name in names])
    return records


def _parse_batch(where: str, data: bytes) -> np.ndarray:
    if not data or len(data) % RECORD_BYTES:
        raise CnnlabError(
            f"{where}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte records; "
            "the file is damaged or not CIFAR-10's binary version"
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    if records[:, 0].max() >= len(CIFAR_CLASSES):
        raise CnnlabError(
            f"{where}: label {records[:, 0].max()} is out of range for {len(CIFAR_CLASSES)} classes; "
            "the file is damaged or not CIFAR-10's binary version"
        )
    return records


def _images_and_labels(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    planes = records[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)  # (N, C, H, W)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), records[:, 0].astype(np.int64)  # (N, H, W, C)


def cifar10_info() -> DatasetInfo:
    archive = cache_dir() / CIFAR_ARCHIVE
    where = (
        str(archive)
        if archive.is_file()
        else (
            f"not here: downloaded on first use (170 MB) into {cache_dir()}, or --data-dir DIR holding {CIFAR_ARCHIVE}"
        )
    )
    return DatasetInfo("cifar10", (CIFAR_SIDE, CIFAR_SIDE, 3), len(CIFAR_CLASSES), 50000, 10000, where)
