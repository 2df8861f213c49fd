"""Datasets: the strict IDX reader, the verified download, the array cache and ``load_dataset``.

Built in: ``mnist`` (shipped inside the package), ``fashion-mnist`` (Debian's copy, the cache, or a
download), ``cifar10`` and ``folder:PATH`` (both in ``cnnlab.imagefolder``); ``data_dir`` reads any
IDX dataset from a folder instead. Every file is checked before use, and every problem a user can fix
is a CnnlabError naming the file.

Decompressing and hashing MNIST's 47 MB takes longer than the rest of a short run's start-up, so
decoded arrays are kept as ``.npy`` files in the cache (``cache_dir()``) and reused while their
source file is unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.modelio import write_atomic

# The four files of an IDX dataset (MNIST's layout, shared by Fashion-MNIST), each raw or .gz.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
# IDX type byte -> element type; multi-byte values are big-endian in the file.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
READ_CHUNK = 1 << 22  # bytes per read (4 MiB): memory follows the real file, whatever its header claims

# Checksums are SHA-256 of the decompressed IDX bytes: copies of the same data differ in their gzip
# headers (Debian's, the mirrors', ours), the decompressed bytes do not.
MNIST_DIR = Path(__file__).parent / "datasets" / "mnist"
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
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
DIGITS = [str(digit) for digit in range(10)]


@dataclass
class Dataset:
    """Train and test splits: ``uint8`` images ``(N, H, W, C)`` and ``int64`` labels ``(N,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str  # the folder or file the data was read from
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files left out, and why

    def __post_init__(self) -> None:
        for images, labels in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if not (images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == self.x_train.shape[1:]
                    and labels.dtype == np.int64 and labels.shape == images.shape[:1]):
                raise ValueError("A Dataset needs uint8 (N, H, W, C) images of one shape and int64 (N,) labels. "
                                 f"Received: images {images.dtype} {images.shape}, "
                                 f"labels {labels.dtype} {labels.shape}")

    def skipped_message(self, limit: int = 5) -> str:
        """``skipped 3 unreadable files: a.png (not an image), ...``, or '' when nothing was skipped."""
        if not self.skipped:
            return ""
        shown = ", ".join(f"{path.relative_to(self.source) if path.is_relative_to(self.source) else path} ({reason})"
                          for path, reason in self.skipped[:limit])
        more = f", and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        plural = "s" if len(self.skipped) > 1 else ""
        return f"skipped {len(self.skipped)} unreadable file{plural}: {shown}{more}"


@dataclass(frozen=True)
class DatasetInfo:
    """What ``list_datasets`` knows about a dataset without loading it."""

    name: str
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_classes: int
    train_size: int
    test_size: int
    location: str  # where it is read from, or how to get it


def to_categorical(y, num_classes: int | None = None) -> np.ndarray:
    """One-hot float32 rows for integer labels, as Keras's ``to_categorical``: shape ``y.shape + (classes,)``."""
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:  # Keras drops a trailing axis of 1: (N, 1) -> (N, classes)
        labels = labels[..., 0]
    if labels.dtype.kind not in "iu" or labels.min(initial=0) < 0:
        raise ValueError(f"to_categorical needs non-negative integer labels. Received: {labels.dtype} labels, "
                         f"min {labels.min(initial=0)}")
    num_classes = int(labels.max(initial=-1)) + 1 if num_classes is None else num_classes
    if labels.max(initial=-1) >= num_classes:
        raise ValueError(f"Labels must be < num_classes. Received: num_classes={num_classes}, "
                         f"max label {labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]


# --- the IDX reader ----------------------------------------------------------------------------

class _Malformed(Exception):
    """What is wrong inside an IDX file; ``_read_idx`` adds the file's name and the remedy."""


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file, raw or gzip-compressed (name ending in ``.gz``), fully checked."""
    return _read_idx(Path(path))[0]


def _read_idx(path: Path, remedy: str = "replace it with a complete IDX file") -> tuple[np.ndarray, str]:
    """The array in an IDX file and the SHA-256 of its decompressed bytes."""
    digest = hashlib.sha256()
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as stream:
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


# --- the cache and the verified download -------------------------------------------------------

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


def download(base_url: str, filename: str, dest_dir: Path, check: Callable[[bytes], str | None],
             remedy: str) -> Path:
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
        raise CnnlabError(f"{target}: cannot be written ({problem.strerror}); set CNNLAB_CACHE to a writable "
                          "folder") from None
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


# --- IDX datasets ------------------------------------------------------------------------------

def _find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
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
            raise CnnlabError(f"{path}: corrupt (the SHA-256 of its data is {digest}, expected {checksum}); "
                              f"{remedy}")
        return {path.stem: array}
    return load_cached(path, (path.stem,), decode)[path.stem]


def _image_label_pair(images: np.ndarray, labels: np.ndarray, images_file: Path, labels_file: Path):
    """Check one split's IDX arrays against each other; return (N, H, W, 1) images and int64 labels."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise CnnlabError(f"{images_file}: holds {images.dtype} {images.shape}; images must be unsigned bytes "
                          "(type 0x08) shaped (count, height, width)")
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise CnnlabError(f"{labels_file}: holds {labels.dtype} {labels.shape}; labels must be integers "
                          "shaped (count,)")
    if len(images) != len(labels):
        raise CnnlabError(f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
                          "labels; the two files must come from the same dataset")
    if labels.size and labels.min() < 0:
        raise CnnlabError(f"{labels_file}: negative label {labels.min()}; labels number the classes from 0")
    return images[..., np.newaxis], labels.astype(np.int64)


def _idx_from_dir(name: str, directory: Path, class_names: list[str] | None, checksums: dict | None,
                  remedy: str) -> Dataset:
    """An IDX dataset from the four files in ``directory``; class names "0".."K-1" when not given."""
    if not directory.is_dir():
        raise CnnlabError(f"{directory}: no such folder; {remedy}")
    files, missing = _find_idx_files(directory)
    if missing:
        raise CnnlabError(f"{directory}: missing {', '.join(missing)}; {remedy}")
    arrays = {stem: _load_idx_array(path, checksums and checksums[stem], remedy) for stem, path in files.items()}
    splits = {prefix: _image_label_pair(arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"],
                                        files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"])
              for prefix in ("train", "t10k")}
    if class_names is None:
        class_names = [str(k) for k in range(max(int(labels.max(initial=0)) for _, labels in splits.values()) + 1)]
    for prefix, (_, labels) in splits.items():
        if labels.size and labels.max() >= len(class_names):
            raise CnnlabError(f"{files[f'{prefix}-labels-idx1-ubyte']}: label {labels.max()} is out of range for "
                              f"{name}'s {len(class_names)} classes; {remedy}")
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["t10k"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise CnnlabError(f"{files['train-images-idx3-ubyte']} holds {x_train.shape[1:3]} images but "
                          f"{files['t10k-images-idx3-ubyte']} holds {x_test.shape[1:3]}; {remedy}")
    return Dataset(name, x_train, y_train, x_test, y_test, class_names, str(directory))


def _fashion_dirs() -> list[tuple[Path, str]]:
    """Where fashion-mnist is looked for, in order, each with the remedy if its copy is damaged."""
    return [(FASHION_SYSTEM_DIR, "reinstall it: apt-get install --reinstall dataset-fashion-mnist"),
            (cache_dir() / "fashion-mnist", "delete the file; it is downloaded again on next use")]


def _load_fashion() -> Dataset:
    for directory, remedy in _fashion_dirs():
        if directory.is_dir() and not _find_idx_files(directory)[1]:
            return _idx_from_dir("fashion-mnist", directory, FASHION_CLASSES, FASHION_SHA256, remedy)
    directory, remedy = _fashion_dirs()[-1]
    for stem in IDX_FILES:
        if not (directory / f"{stem}.gz").is_file():  # a failed download leaves the others in place
            check = digest_check("sha256", FASHION_SHA256[stem], gunzip=True)
            download(FASHION_MIRROR, f"{stem}.gz", directory, check,
                     remedy="install it (apt-get install dataset-fashion-mnist) or use --data-dir DIR")
    return _idx_from_dir("fashion-mnist", directory, FASHION_CLASSES, FASHION_SHA256, remedy)


def load_dataset(name: str, data_dir: str | Path | None = None, *, image_size: int | tuple[int, int] = 28,
                 channels: int = 1, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load ``mnist``, ``fashion-mnist``, ``cifar10`` or ``folder:PATH``.

    ``data_dir``: read the dataset's own files from this folder instead (for IDX datasets the four
    files train-images-idx3-ubyte ... t10k-labels-idx1-ubyte, raw or .gz; any other name is then an
    IDX dataset with classes "0".."K-1"). ``image_size``, ``channels``, ``test_fraction`` and ``seed``
    apply to ``folder:PATH`` datasets only (see ``cnnlab.imagefolder.load_image_folder``).
    """
    if name.startswith("folder:"):
        if data_dir is not None:
            raise CnnlabError(f"--data-dir: not used by {name}; the folder is the path after 'folder:'")
        from cnnlab.imagefolder import load_image_folder  # Pillow is imported only when needed

        return load_image_folder(name.removeprefix("folder:"), image_size, channels, test_fraction, seed)
    if name == "cifar10":
        from cnnlab.imagefolder import load_cifar10

        return load_cifar10(None if data_dir is None else Path(data_dir))
    if data_dir is not None:
        known_classes = {"mnist": DIGITS, "fashion-mnist": FASHION_CLASSES}.get(name)
        return _idx_from_dir(name, Path(data_dir), known_classes, None,
                             remedy="--data-dir needs the four IDX files of one dataset")
    if name == "mnist":
        return _idx_from_dir("mnist", MNIST_DIR, DIGITS, MNIST_SHA256, REINSTALL)
    if name == "fashion-mnist":
        return _load_fashion()
    raise CnnlabError(f"dataset {name!r}: unknown; choose mnist, fashion-mnist, cifar10 or folder:PATH, or give "
                      "--data-dir DIR holding IDX files")


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets and where each is read from; nothing is loaded, so this is fast."""
    from cnnlab.imagefolder import cifar10_info

    fashion_found = next((directory for directory, _ in _fashion_dirs()
                          if directory.is_dir() and not _find_idx_files(directory)[1]), None)
    fashion_where = str(fashion_found) if fashion_found else (
        f"not here: apt-get install dataset-fashion-mnist, or downloaded on first use into "
        f"{cache_dir() / 'fashion-mnist'}")
    return [DatasetInfo("mnist", (28, 28, 1), 10, 60000, 10000, f"{MNIST_DIR} (shipped with cnnlab)"),
            DatasetInfo("fashion-mnist", (28, 28, 1), 10, 60000, 10000, fashion_where), cifar10_info()]
