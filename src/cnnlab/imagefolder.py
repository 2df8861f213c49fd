"""Datasets kept as images rather than IDX files: ``folder:PATH`` and CIFAR-10's binary archive.

A folder dataset has one sub-folder of images per class (PNG, JPEG, BMP, GIF or WebP), either
directly under PATH (split here, stratified and seeded) or under PATH/train and PATH/test. Files that
cannot be decoded are skipped and listed in ``Dataset.skipped``.

CIFAR-10 is read from the official *binary* version (``cifar-10-binary.tar.gz``), never the pickled
Python one: each record is 1 label byte and 3072 pixel bytes, the red, green and blue planes one after
another, each 32×32 row by row. The archive's members are read in memory, never extracted.
"""

from __future__ import annotations

import struct
import tarfile
import warnings
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnlab.data import Dataset, DatasetInfo, cache_dir, digest_check, download, load_cached
from cnnlab.errors import CnnlabError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # Pillow refuses anything else in a class folder

CIFAR_MIRROR = "https://www.cs.toronto.edu/~kriz"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the archive, as published beside it
CIFAR_FOLDER = "cifar-10-batches-bin"  # the folder inside the archive
CIFAR_BATCHES = {"train": [f"data_batch_{number}.bin" for number in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_SIDE = 32
RECORD_BYTES = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE  # label byte, then the R, G and B planes


# --- folder:PATH -------------------------------------------------------------------------------

def load_image_folder(path: str | Path, image_size: int | tuple[int, int] = 28, channels: int = 1,
                      test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Images in one sub-folder per class, resized to ``image_size`` (side, or (height, width)).

    ``channels``: 1 (gray) or 3 (RGB). PATH/train and PATH/test are used when both exist; otherwise
    ``test_fraction`` of each class goes to the test split, chosen with ``seed``. Class names are the
    sorted folder names. Each split is shuffled with ``seed`` too, so that a Keras-style validation
    split (the last fraction) holds every class rather than the last one.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise ValueError(f"image_size must be a positive int or (height, width). Received: image_size={image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB). Received: channels={channels!r}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1). Received: test_fraction={test_fraction!r}")
    root = Path(path)
    if not str(path) or not root.is_dir():
        raise CnnlabError(f"folder:{path}: no such folder; give folder:PATH with one sub-folder of images per class")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    class_folders = [root / "train", root / "test"] if presplit else [root]
    class_names = sorted({name for folder in class_folders for name in _class_folders(folder)})
    if not class_names:
        raise CnnlabError(f"{root}: no class folders; put each class's images in a sub-folder named after it "
                          f"(e.g. {root / 'cats' / '1.png'})")
    rng = np.random.default_rng(seed)
    if presplit:
        train_files, test_files = (_labelled_files(root / split, class_names) for split in ("train", "test"))
    else:
        train_files, test_files = _stratified_split(_labelled_files(root, class_names), test_fraction, rng)
    skipped: list[tuple[Path, str]] = []
    mode = "L" if channels == 1 else "RGB"
    x_train, y_train = _decode([train_files[i] for i in rng.permutation(len(train_files))], size, mode, skipped)
    x_test, y_test = _decode([test_files[i] for i in rng.permutation(len(test_files))], size, mode, skipped)
    if not len(x_train) + len(x_test):
        raise CnnlabError(f"{root}: no readable images in {len(class_names)} class folders "
                          f"({len(skipped)} files skipped); cnnlab reads {', '.join(IMAGE_FORMATS)} images")
    return Dataset(f"folder:{path}", x_train, y_train, x_test, y_test, class_names, str(root), skipped)


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _labelled_files(folder: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """Every non-hidden file under ``folder/<class>/`` (any depth), with its class index."""
    labelled = []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        files = sorted(path for path in class_dir.rglob("*") if path.is_file()
                       and not any(part.startswith(".") for part in path.relative_to(class_dir).parts))
        labelled += [(path, label) for path in files]
    return labelled


def _stratified_split(labelled: list[tuple[Path, int]], test_fraction: float, rng):
    """(train, test): ``test_fraction`` of each class to test, at least one image of each side when it has two."""
    train, test = [], []
    for label in sorted({label for _, label in labelled}):
        members = [item for item in labelled if item[1] == label]
        count = len(members)
        test_count = min(count - 1, max(1, round(count * test_fraction))) if count > 1 and test_fraction else 0
        order = rng.permutation(count)
        test += [members[i] for i in order[:test_count]]
        train += [members[i] for i in order[test_count:]]
    return train, test


def _decode(labelled: list[tuple[Path, int]], size: tuple[int, int], mode: str, skipped: list):
    """Images (N, H, W, C) uint8 and labels (N,) int64 of the readable files; the rest go to ``skipped``."""
    height, width = size
    images, labels = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # over Pillow's pixel limit: refuse
        for path, label in labelled:
            try:
                with Image.open(path, formats=IMAGE_FORMATS) as image:
                    # BILINEAR: Pillow widens the filter when shrinking, so it averages rather than aliases
                    pixels = np.asarray(image.convert(mode).resize((width, height), Image.Resampling.BILINEAR))
            except UnidentifiedImageError:
                skipped.append((path, "not an image"))
                continue
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                skipped.append((path, "too many pixels: a possible decompression bomb"))
                continue
            except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as problem:
                skipped.append((path, f"damaged: {problem}"))  # what Pillow's decoders raise on broken files
                continue
            images.append(pixels.reshape(height, width, -1))
            labels.append(label)
    channels = 1 if mode == "L" else 3
    return (np.stack(images) if images else np.zeros((0, height, width, channels), np.uint8),
            np.array(labels, dtype=np.int64))


# --- cifar10 -----------------------------------------------------------------------------------

def load_cifar10(data_dir: Path | None = None) -> Dataset:
    """CIFAR-10 from ``data_dir`` (the archive or its extracted folder), else the cache, else a download."""
    if data_dir is not None:
        source = _find_cifar(data_dir)
    else:
        source = cache_dir() / CIFAR_ARCHIVE
        if not source.is_file():
            download(CIFAR_MIRROR, CIFAR_ARCHIVE, cache_dir(), digest_check("md5", CIFAR_MD5),
                     remedy=f"put {CIFAR_ARCHIVE} in a folder and use --data-dir DIR")
    if source.is_dir():  # the extracted batches are raw bytes already: as fast as a cache
        records = _cifar_records({path.name: (str(path), path.read_bytes()) for path in source.glob("*.bin")}, source)
    else:
        records = load_cached(source, ("cifar10-train", "cifar10-test"),
                              lambda: _cifar_records(_archive_batches(source), source))
    (x_train, y_train), (x_test, y_test) = (_images_and_labels(records[f"cifar10-{split}"]) for split in CIFAR_BATCHES)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, list(CIFAR_CLASSES), str(source))


def _find_cifar(data_dir: Path) -> Path:
    """The archive or the folder of batches in ``data_dir`` (or ``data_dir`` itself when it holds them)."""
    for candidate in (data_dir / CIFAR_ARCHIVE, data_dir / CIFAR_FOLDER, data_dir):
        if candidate.is_file() or (candidate / "test_batch.bin").is_file():
            return candidate
    raise CnnlabError(f"{data_dir}: no CIFAR-10 here; put {CIFAR_ARCHIVE} (the binary version, not the python "
                      f"one) or its extracted {CIFAR_FOLDER} folder there")


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
            raise CnnlabError(f"{source}: missing {', '.join(missing)}; use the binary version of CIFAR-10, "
                              f"{CIFAR_ARCHIVE}")
        records[f"cifar10-{split}"] = np.concatenate([_parse_batch(*batches[name]) for name in names])
    return records


def _parse_batch(where: str, data: bytes) -> np.ndarray:
    if not data or len(data) % RECORD_BYTES:
        raise CnnlabError(f"{where}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte records; "
                          "the file is damaged or not CIFAR-10's binary version")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    if records[:, 0].max() >= len(CIFAR_CLASSES):
        raise CnnlabError(f"{where}: label {records[:, 0].max()} is out of range for {len(CIFAR_CLASSES)} classes; "
                          "the file is damaged or not CIFAR-10's binary version")
    return records


def _images_and_labels(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    planes = records[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)  # (N, C, H, W)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), records[:, 0].astype(np.int64)  # (N, H, W, C)


def cifar10_info() -> DatasetInfo:
    archive = cache_dir() / CIFAR_ARCHIVE
    where = str(archive) if archive.is_file() else (
        f"not here: downloaded on first use (170 MB) into {cache_dir()}, or --data-dir DIR holding {CIFAR_ARCHIVE}")
    return DatasetInfo("cifar10", (CIFAR_SIDE, CIFAR_SIDE, 3), len(CIFAR_CLASSES), 50000, 10000, where)
