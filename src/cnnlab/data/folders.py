"""``folder:PATH`` datasets: one sub-folder of images per class (PNG, JPEG, BMP, GIF or WebP).

The class folders sit directly under PATH (split here, stratified and seeded) or under PATH/train and
PATH/test. Files that cannot be decoded are skipped and listed in ``Dataset.skipped``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data.dataset import Dataset
from cnnlab.data.images import IMAGE_FORMATS, PictureError, read_picture
from cnnlab.errors import CnnlabError


def load_image_folder(
    path: str | Path,
    image_size: int | tuple[int, int] = 28,
    channels: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
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
        raise CnnlabError(
            f"{root}: no class folders; put each class's images in a sub-folder named after it "
            f"(e.g. {root / 'cats' / '1.png'})"
        )
    rng = np.random.default_rng(seed)
    if presplit:
        train_files, test_files = (_labelled_files(root / split, class_names) for split in ("train", "test"))
    else:
        train_files, test_files = _stratified_split(_labelled_files(root, class_names), test_fraction, rng)
    skipped: list[tuple[Path, str]] = []
    x_train, y_train = _decode([train_files[i] for i in rng.permutation(len(train_files))], size, channels, skipped)
    x_test, y_test = _decode([test_files[i] for i in rng.permutation(len(test_files))], size, channels, skipped)
    if not len(x_train) + len(x_test):
        raise CnnlabError(
            f"{root}: no readable images in {len(class_names)} class folders "
            f"({len(skipped)} files skipped); cnnlab reads {', '.join(IMAGE_FORMATS)} images"
        )
    return Dataset(f"folder:{path}", x_train, y_train, x_test, y_test, class_names, str(root), skipped)


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _labelled_files(folder: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """Every non-hidden file under ``folder/<class>/`` (any depth), with its class index."""
    labelled = []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        files = sorted(
            path
            for path in class_dir.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(class_dir).parts)
        )
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


def _decode(labelled: list[tuple[Path, int]], size: tuple[int, int], channels: int, skipped: list):
    """Images (N, H, W, C) uint8 and labels (N,) int64 of the readable files; the rest go to ``skipped``.

    Each picture is read as ``cnnlab predict`` reads one (``cnnlab.data.images.read_picture``), so a model
    sees the same pixels when it trains on a file and when it predicts it.
    """
    height, width = size
    images, labels = [], []
    for path, label in labelled:
        try:
            images.append(read_picture(path, size, channels))
        except PictureError as problem:
            skipped.append((path, problem.reason))
            continue
        labels.append(label)
    return (
        np.stack(images) if images else np.zeros((0, height, width, channels), np.uint8),
        np.array(labels, dtype=np.int64),
    )
