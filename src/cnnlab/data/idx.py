"""IDX datasets (MNIST's format, shared by Fashion-MNIST): the strict reader and the datasets made of it.

``mnist`` is shipped inside the package (``data/mnist/``); ``fashion-mnist`` comes from Debian's copy,
the cache, or a verified download; any folder holding the four IDX files is a dataset too. Every file
is checked before use, and every problem a user can fix is a CnnlabError naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from cnnlab.data.cache import cache_dir, digest_check, download, load_cached
from cnnlab.data.dataset import DIGITS, Dataset
from cnnlab.errors import CnnlabError

# The four files of an IDX dataset (MNIST's layout, shared by Fashion-MNIST), each raw or .gz.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX type byte -> element type; multi-byte values are big-endian in the file.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
READ_CHUNK = 1 << 22  # bytes per read (4 MiB): memory follows the real file, whatever its header claims

# Checksums are SHA-256 of the decompressed IDX bytes: copies of the same data differ in their gzip
# headers (Debian's, the mirrors', ours), the decompressed bytes do not.
MNIST_DIR = Path(__file__).parent / "mnist"  # shipped inside the package
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
REINSTALL = "the copy shipped with cnnlab is damaged: reinstall cnnlab (pip install --force-reinstall) or re-clone"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
FASHION_SHA256 = {  # measured on Debian's copy, the canonical data
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


class _Malformed(Exception):
    """What is wrong inside an IDX file; ``_read_idx`` adds the file's name and the remedy."""


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file, raw or gzip-compressed (name ending in ``.gz``), fully checked."""
    return _read_idx(Path(path))[0]


def _read_idx(path: Path, remedy: str = "replace it with a complete IDX file") -> tuple[np.ndarray, str]:
    """The array in an IDX file and the SHA-256 of its decompressed bytes."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as stream:
            array = _parse_idx(stream, digest)
    except _Malformed as problem:
        raise CnnlabError(f"{path}: {problem}; {remedy}") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as problem:  # BadGzipFile before OSError: it is one
        raise CnnlabError(f"{path}: bad gzip data ({problem}); {remedy}") from None
    except OSError as problem:
        raise CnnlabError(f"{path}: cannot be read ({problem.strerror or problem}); check the path") from None
    return array, digest.hexdigest()


def _parse_idx(stream, digest) -> np.ndarray:
    magic = _read_hashed(stream, 4, digest)
    if not magic:
        raise _Malformed("empty file")
    if len(magic) < 4:
        raise _Malformed(f"truncated header ({len(magic)} of the 4 magic-number bytes)")
    if magic[:2] != b"\0\0":
        raise _Malformed(f"wrong magic number 0x{magic.hex()}: not an IDX file (IDX files start with 0x0000)")
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02x}" for code in IDX_DTYPES)
        raise _Malformed(f"unknown data type 0x{type_code:02x} in the magic number (IDX types: {known})")
    if ndim == 0:
        raise _Malformed("the magic number declares 0 dimensions")
    sizes = _read_hashed(stream, 4 * ndim, digest)
    if len(sizes) < 4 * ndim:
        raise _Malformed(f"truncated header ({len(sizes)} of the {4 * ndim} bytes of {ndim} dimension sizes)")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize
    data = _read_hashed(stream, expected, digest)
    if len(data) < expected:
        raise _Malformed(f"truncated: shape {shape} needs {expected} bytes of data, the file holds {len(data)}")
    if stream.read(1):
        raise _Malformed(f"trailing bytes after the {expected} bytes of data that shape {shape} needs")
    try:
        return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="), copy=False).reshape(shape)
    except ValueError:  # an empty shape such as (0, 2**32-1, 2**32-1) that NumPy cannot represent
        raise _Malformed(f"shape {shape} is too large for an array") from None


def _read_hashed(stream, size: int, digest) -> bytearray:
    """Up to ``size`` bytes (fewer where the file ends), fed to ``digest`` as they arrive."""
    data = bytearray()  # a bytearray makes np.frombuffer's array writable
    while len(data) < size:
        chunk = stream.read(min(READ_CHUNK, size - len(data)))
        if not chunk:
            break
        digest.update(chunk)
        data += chunk
    return data


def find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in ``directory`` (raw preferred over .gz), and the names of those missing."""
    found, missing = {}, []
    for stem in IDX_FILES:
        match = next((path for path in (directory / stem, directory / f"{stem}.gz") if path.is_file()), None)
        if match:
            found[stem] = match
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def _load_idx_array(path: Path, checksum: str | None, remedy: str) -> np.ndarray:
    def decode() -> dict[str, np.ndarray]:
        array, digest = _read_idx(path, remedy)
        if checksum and digest != checksum:
            raise CnnlabError(f"{path}: corrupt (the SHA-256 of its data is {digest}, expected {checksum}); {remedy}")
        return {path.stem: array}

    return load_cached(path, (path.stem,), decode)[path.stem]


def _image_label_pair(images: np.ndarray, labels: np.ndarray, images_file: Path, labels_file: Path):
    """Check one split's IDX arrays against each other; return (N, H, W, 1) images and int64 labels."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise CnnlabError(
            f"{images_file}: holds {images.dtype} {images.shape}; images must be unsigned bytes "
            "(type 0x08) shaped (count, height, width)"
        )
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise CnnlabError(
            f"{labels_file}: holds {labels.dtype} {labels.shape}; labels must be integers shaped (count,)"
        )
    if len(images) != len(labels):
        raise CnnlabError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
            "labels; the two files must come from the same dataset"
        )
    if labels.size and labels.min() < 0:
        raise CnnlabError(f"{labels_file}: negative label {labels.min()}; labels number the classes from 0")
    return images[..., np.newaxis], labels.astype(np.int64)


def idx_from_dir(
    name: str, directory: Path, class_names: list[str] | None, checksums: dict | None, remedy: str
) -> Dataset:
    """An IDX dataset from the four files in ``directory``; class names "0".."K-1" when not given."""
    if not directory.is_dir():
        raise CnnlabError(f"{directory}: no such folder; {remedy}")
    files, missing = find_idx_files(directory)
    if missing:
        raise CnnlabError(f"{directory}: missing {', '.join(missing)}; {remedy}")
    arrays = {stem: _load_idx_array(path, checksums and checksums[stem], remedy) for stem, path in files.items()}
    splits = {
        prefix: _image_label_pair(
            arrays[f"{prefix}-images-idx3-ubyte"],
            arrays[f"{prefix}-labels-idx1-ubyte"],
            files[f"{prefix}-images-idx3-ubyte"],
            files[f"{prefix}-labels-idx1-ubyte"],
        )
        for prefix in ("train", "t10k")
    }
    if class_names is None:
        class_names = [str(k) for k in range(max(int(labels.max(initial=0)) for _, labels in splits.values()) + 1)]
    for prefix, (_, labels) in splits.items():
        if labels.size and labels.max() >= len(class_names):
            raise CnnlabError(
                f"{files[f'{prefix}-labels-idx1-ubyte']}: label {labels.max()} is out of range for "
                f"{name}'s {len(class_names)} classes; {remedy}"
            )
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["t10k"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise CnnlabError(
            f"{files['train-images-idx3-ubyte']} holds {x_train.shape[1:3]} images but "
            f"{files['t10k-images-idx3-ubyte']} holds {x_test.shape[1:3]}; {remedy}"
        )
    return Dataset(name, x_train, y_train, x_test, y_test, class_names, str(directory))


def fashion_dirs() -> list[tuple[Path, str]]:
    """Where fashion-mnist is looked for, in order, each with the remedy if its copy is damaged."""
    return [
        (FASHION_SYSTEM_DIR, "reinstall it: apt-get install --reinstall dataset-fashion-mnist"),
        (cache_dir() / "fashion-mnist", "delete the file; it is downloaded again on next use"),
    ]


def load_fashion_mnist() -> Dataset:
    for directory, remedy in fashion_dirs():
        if directory.is_dir() and not find_idx_files(directory)[1]:
            return idx_from_dir("fashion-mnist", directory, FASHION_CLASSES, FASHION_SHA256, remedy)
    directory, remedy = fashion_dirs()[-1]
    for stem in IDX_FILES:
        if not (directory / f"{stem}.gz").is_file():  # a failed download leaves the others in place
            check = digest_check("sha256", FASHION_SHA256[stem], gunzip=True)
            download(
                FASHION_MIRROR,
                f"{stem}.gz",
                directory,
                check,
                remedy="install it (apt-get install dataset-fashion-mnist) or use --data-dir DIR",
            )
    return idx_from_dir("fashion-mnist", directory, FASHION_CLASSES, FASHION_SHA256, remedy)


def load_mnist() -> Dataset:
    return idx_from_dir("mnist", MNIST_DIR, DIGITS, MNIST_SHA256, REINSTALL)


def load_idx_folder(name: str, directory: Path) -> Dataset:
    """The four IDX files in ``directory`` as dataset ``name`` (class names as the built-in dataset's, if any)."""
    known_classes = {"mnist": DIGITS, "fashion-mnist": FASHION_CLASSES}.get(name)
    return idx_from_dir(
        name, directory, known_classes, None, remedy="--data-dir needs the four IDX files of one dataset"
    )
