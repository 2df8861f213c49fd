"""The datasets layer: the strict IDX reader, IDX folders and the array cache, shipped MNIST, Fashion-MNIST
and the verified download (against a local HTTP server), to_categorical. CIFAR-10 and image folders:
test_imagefolder.py."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import math
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import idx as data
from cnnlab.data.dataset import to_categorical
from cnnlab.data.idx import read_idx
from cnnlab.data.registry import load_dataset
from cnnlab.errors import CnnlabError

# IDX type byte -> big-endian element type, as the format defines them
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_TYPES[type_code]).tobytes()


def write_file(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def write_idx_dataset(folder: Path, x_train, y_train, x_test, y_test, suffix: str = ".gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(data.IDX_FILES, (x_train, y_train, x_test, y_test)):
        write_file(folder / f"{stem}{suffix}", idx_bytes(np.asarray(array)))
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache: nothing reads or writes ~/.cache."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tiny_arrays():
    """A 3-class dataset of 6 training and 3 test images of 4×5 pixels, as IDX files hold it."""
    rng = np.random.default_rng(1)
    return (
        rng.integers(0, 256, (6, 4, 5), dtype=np.uint8),
        np.array([0, 1, 2, 2, 1, 0], np.uint8),
        rng.integers(0, 256, (3, 4, 5), dtype=np.uint8),
        np.array([2, 0, 1], np.uint8),
    )


@pytest.fixture
def tiny(tmp_path):
    """The tiny dataset's folder of .gz IDX files, and its arrays."""
    arrays = tiny_arrays()
    return write_idx_dataset(tmp_path / "tiny", *arrays), arrays


# --- the IDX reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
@pytest.mark.parametrize("type_code", sorted(IDX_TYPES))
def test_read_idx_returns_the_array_in_native_byte_order(tmp_path, name, type_code):
    array = (np.arange(24).reshape(2, 3, 4) - (12 if type_code != 0x08 else 0)).astype(IDX_TYPES[type_code])
    result = read_idx(write_file(tmp_path / name, idx_bytes(array, type_code)))
    assert result.shape == (2, 3, 4)
    assert result.dtype.isnative and result.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(result, array)


HEADER_2x3 = bytes([0, 0, 8, 2]) + struct.pack(">2I", 2, 3)

CORRUPT = {
    "empty": (b"", "empty file"),
    "short magic": (b"\0\0\x08", "truncated header"),
    "wrong magic": (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"x", "wrong magic number 0x01000801"),
    "unknown type": (b"\0\0\x07\x01" + struct.pack(">I", 1) + b"x", "unknown data type 0x07"),
    "no dimensions": (b"\0\0\x08\x00", "0 dimensions"),
    "short dimensions": (b"\0\0\x08\x03" + struct.pack(">2I", 2, 3), "truncated header"),
    "truncated data": (HEADER_2x3 + bytes(5), "needs 6 bytes of data, the file holds 5"),
    "trailing bytes": (HEADER_2x3 + bytes(7), "trailing bytes"),
    "wrong dimensions": (bytes([0, 0, 8, 2]) + struct.pack(">2I", 3, 3) + bytes(6), "needs 9 bytes"),
}


@pytest.mark.parametrize("name", ["bad.idx", "bad.idx.gz"])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_read_idx_refuses_a_malformed_file_naming_it(tmp_path, case, name):
    content, problem = CORRUPT[case]
    path = write_file(tmp_path / name, content)
    with pytest.raises(CnnlabError) as caught:
        read_idx(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def _not_gzip(good):
    return b"plain text, not gzip"


def _cut_short(good):
    return good[:-12]  # the deflate stream ends early: EOFError


def _flip_crc(good):
    return good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]  # CRC-32 no longer matches: BadGzipFile


def _scramble_deflate(good):
    return good[:10] + bytes([0xFF] * 8) + good[18:]  # an invalid deflate block: zlib.error


@pytest.mark.parametrize("damage", [_not_gzip, _cut_short, _flip_crc, _scramble_deflate])
def test_read_idx_turns_every_gzip_failure_into_a_cnnlab_error(tmp_path, damage):
    good = gzip.compress(HEADER_2x3 + bytes(range(6)))
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(damage(good))
    with pytest.raises(CnnlabError, match="bad gzip data") as caught:
        read_idx(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_read_idx_names_a_missing_file(tmp_path):
    with pytest.raises(CnnlabError, match=f"^{tmp_path / 'nothing.gz'}: cannot be read"):
        read_idx(tmp_path / "nothing.gz")


def _expected_array(raw: bytes):
    """The IDX format, stated independently of cnnlab: the array ``raw`` holds, or None if malformed."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES or raw[3] == 0:
        return None
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    if len(raw) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != math.prod(shape) * dtype.itemsize:
        return None
    try:
        return np.frombuffer(body, dtype).reshape(shape)
    except ValueError:  # an empty array NumPy cannot represent, such as (0, 2**32-1, 2**32-1)
        return None


@st.composite
def idx_candidates(draw):
    """(file bytes as written, uncompressed bytes, gzip'd?, damaged after compression?)."""
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=40))
    else:
        lead = draw(st.sampled_from([b"\0\0", b"\0\0", b"\0\0", b"\0\x01", b"\x1f\x8b"]))
        type_code = draw(st.sampled_from([*IDX_TYPES, 0x00, 0x0A, 0xFF]))
        ndim = draw(st.integers(0, 3))
        shape = draw(st.lists(st.one_of(st.integers(0, 3), st.just(2**32 - 1)), min_size=ndim, max_size=ndim))
        size = math.prod(shape) * np.dtype(IDX_TYPES.get(type_code, ">u1")).itemsize
        length = min(100, max(0, min(size, 100) + draw(st.integers(-3, 3))))  # near the size the header needs
        body = draw(st.binary(min_size=length, max_size=length))
        raw = lead + bytes([type_code, ndim]) + struct.pack(f">{ndim}I", *shape) + body
        raw = raw[: draw(st.integers(0, len(raw)))] if draw(st.integers(0, 9)) == 0 else raw
    compressed = draw(st.booleans())
    written = gzip.compress(raw, mtime=0) if compressed else raw
    damaged = compressed and draw(st.booleans())
    if damaged:
        spot = draw(st.integers(0, len(written) - 1))
        written = written[:spot] + bytes([written[spot] ^ draw(st.integers(1, 255))]) + written[spot + 1 :]
        written = written[: draw(st.integers(0, len(written)))]
    return written, raw, compressed, damaged


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("idx-property")


@settings(max_examples=settings.default.max_examples * 5)
@given(candidate=idx_candidates())
def test_read_idx_returns_the_exact_array_or_a_cnnlab_error(scratch, candidate):
    written, raw, compressed, damaged = candidate
    path = scratch / ("sample.gz" if compressed else "sample.idx")
    path.unlink(missing_ok=True)  # a new file rather than a truncated one: ext4 flushes those to disk (ms each)
    path.write_bytes(written)
    expected = _expected_array(raw)
    try:
        result = read_idx(path)
    except CnnlabError as problem:
        assert str(problem).startswith(f"{path}: ")
        assert expected is None or damaged  # a well-formed, intact file must be read
        return
    assert expected is not None, "read a malformed file without complaint"
    assert result.shape == expected.shape and result.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(result, expected)


# --- IDX datasets from a folder ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_an_idx_folder_loads_with_classes_numbered_from_its_labels(tmp_path, suffix):
    arrays = tiny_arrays()
    folder = write_idx_dataset(tmp_path / "tiny", *arrays, suffix=suffix)
    loaded = load_dataset("tiny", data_dir=folder)
    assert (loaded.name, loaded.source, loaded.class_names) == ("tiny", str(folder), ["0", "1", "2"])
    assert loaded.x_train.shape == (6, 4, 5, 1) and loaded.x_train.dtype == np.uint8
    assert loaded.y_train.dtype == np.int64
    for got, want in zip((loaded.x_train[..., 0], loaded.y_train, loaded.x_test[..., 0], loaded.y_test), arrays):
        np.testing.assert_array_equal(got, want)


def test_a_known_name_with_data_dir_keeps_its_class_names(tiny):
    folder, _ = tiny
    assert load_dataset("fashion-mnist", data_dir=folder).class_names == data.FASHION_CLASSES
    assert load_dataset("mnist", data_dir=folder).class_names == [str(d) for d in range(10)]


def test_image_and_label_counts_must_agree(tmp_path):
    folder = write_idx_dataset(
        tmp_path / "d",
        np.zeros((6, 4, 4), np.uint8),
        np.zeros(5, np.uint8),
        np.zeros((2, 4, 4), np.uint8),
        np.zeros(2, np.uint8),
    )
    with pytest.raises(CnnlabError) as caught:
        load_dataset("d", data_dir=folder)
    message = str(caught.value)
    assert f"{folder / 'train-images-idx3-ubyte.gz'} holds 6 images" in message
    assert f"{folder / 'train-labels-idx1-ubyte.gz'} holds 5 labels" in message


def test_labels_must_number_the_known_classes(tmp_path):
    folder = write_idx_dataset(
        tmp_path / "d",
        np.zeros((2, 4, 4), np.uint8),
        np.array([3, 10], np.uint8),
        np.zeros((1, 4, 4), np.uint8),
        np.zeros(1, np.uint8),
    )
    with pytest.raises(CnnlabError, match=f"^{folder / 'train-labels-idx1-ubyte.gz'}: label 10 is out of range"):
        load_dataset("fashion-mnist", data_dir=folder)


def test_images_must_be_bytes_of_one_size(tmp_path):
    folder = write_idx_dataset(
        tmp_path / "d",
        np.zeros((2, 4, 4), np.uint8),
        np.zeros(2, np.uint8),
        np.zeros((1, 5, 4), np.uint8),
        np.zeros(1, np.uint8),
    )
    with pytest.raises(CnnlabError, match="holds \\(4, 4\\) images but .*t10k-images-idx3-ubyte.gz holds \\(5, 4\\)"):
        load_dataset("d", data_dir=folder)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((2, 4, 4)), 0x0B)))
    with pytest.raises(CnnlabError, match="train-images-idx3-ubyte.gz: holds int16"):
        load_dataset("d", data_dir=folder)


def test_a_folder_missing_files_names_them(tiny):
    folder, _ = tiny
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(CnnlabError, match=f"^{folder}: missing t10k-labels-idx1-ubyte\\[.gz\\]"):
        load_dataset("tiny", data_dir=folder)


def test_decoded_arrays_come_back_from_the_cache(tiny, cache, monkeypatch):
    folder, arrays = tiny
    first = load_dataset("tiny", data_dir=folder)
    assert len(list((cache / "arrays").glob("*.npy"))) == 4
    monkeypatch.setattr(data, "_read_idx", lambda *args: pytest.fail("decoded again despite the cache"))
    second = load_dataset("tiny", data_dir=folder)
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_test, first.y_test)


def test_a_damaged_cache_file_is_decoded_again(tiny, cache):
    folder, arrays = tiny
    load_dataset("tiny", data_dir=folder)
    for cached in (cache / "arrays").glob("*.npy"):
        cached.write_bytes(b"not an npy file")
    np.testing.assert_array_equal(load_dataset("tiny", data_dir=folder).x_train[..., 0], arrays[0])


def test_an_unwritable_cache_only_costs_speed(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache cannot be a folder here")
    monkeypatch.setenv("CNNLAB_CACHE", str(blocker))
    folder, arrays = tiny
    np.testing.assert_array_equal(load_dataset("tiny", data_dir=folder).y_train, arrays[1])


def test_an_unknown_name_without_data_dir_is_refused():
    with pytest.raises(CnnlabError, match="^dataset 'nope': unknown; choose mnist, fashion-mnist, cifar10"):
        load_dataset("nope")


# --- shipped MNIST -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory):
    """A cache that one cold load of the shipped MNIST has filled, and that load's dataset."""
    folder = tmp_path_factory.mktemp("mnist-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_CACHE", str(folder))
        return folder, load_dataset("mnist")


def test_shipped_mnist_matches_the_published_facts(mnist_cache):
    _, mnist = mnist_cache
    assert (mnist.name, mnist.class_names, mnist.source) == ("mnist", [str(d) for d in range(10)], str(data.MNIST_DIR))
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.int64
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_the_warm_mnist_load_returns_identical_arrays_from_the_cache(mnist_cache, monkeypatch):
    folder, cold = mnist_cache
    monkeypatch.setenv("CNNLAB_CACHE", str(folder))
    monkeypatch.setattr(data, "_read_idx", lambda *args: pytest.fail("decoded again despite the cache"))
    warm = load_dataset("mnist")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(warm, name).dtype == getattr(cold, name).dtype
        np.testing.assert_array_equal(getattr(warm, name), getattr(cold, name))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: write_file(path, idx_bytes(np.zeros((1, 28, 28), np.uint8))), "corrupt \\(the SHA-256"),
        (lambda path: path.write_bytes((data.MNIST_DIR / path.name).read_bytes()[:100_000]), "bad gzip data"),
    ],
)
def test_a_damaged_shipped_mnist_says_to_reinstall(tmp_path, monkeypatch, damage, problem):
    for source in data.MNIST_DIR.iterdir():
        (tmp_path / source.name).symlink_to(source)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.unlink()
    damage(bad)
    monkeypatch.setattr(data, "MNIST_DIR", tmp_path)
    with pytest.raises(CnnlabError, match=f"^{bad}: {problem}.*reinstall cnnlab"):
        load_dataset("mnist")


# --- Fashion-MNIST and the verified download ---------------------------------------------------


@pytest.mark.skipif(
    not data.FASHION_SYSTEM_DIR.is_dir(),
    reason=f"{data.FASHION_SYSTEM_DIR} is absent (Debian package dataset-fashion-mnist)",
)
def test_fashion_mnist_is_read_from_debians_copy():
    fashion = load_dataset("fashion-mnist")
    assert fashion.source == str(data.FASHION_SYSTEM_DIR)
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[-1] == "Ankle boot"
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10  # the dataset is balanced
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1: (the folder it serves, its base URL)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    folder = tmp_path / "mirror"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fashion_mirror(mirror, tmp_path, monkeypatch):
    """A mirror serving a tiny fashion-mnist (checksums patched to match); Debian's copy hidden."""
    folder, url = mirror
    rng = np.random.default_rng(3)
    arrays = (
        rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        np.array([9, 0, 0, 3], np.uint8),
        rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        np.array([5, 9], np.uint8),
    )
    write_idx_dataset(folder, *arrays)
    checksums = {stem: hashlib.sha256(idx_bytes(array)).hexdigest() for stem, array in zip(data.IDX_FILES, arrays)}
    monkeypatch.setattr(data, "FASHION_SHA256", checksums)
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(data, "FASHION_MIRROR", url)
    return folder, arrays


def test_a_good_download_lands_in_the_cache_and_is_reused(fashion_mirror, cache, monkeypatch):
    _, arrays = fashion_mirror
    fashion = load_dataset("fashion-mnist")
    assert fashion.source == str(cache / "fashion-mnist")
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == sorted(f"{s}.gz" for s in data.IDX_FILES)
    np.testing.assert_array_equal(fashion.x_train[..., 0], arrays[0])
    assert [fashion.class_names[label] for label in fashion.y_test] == ["Sandal", "Ankle boot"]
    monkeypatch.setattr(data, "FASHION_MIRROR", "http://127.0.0.1:9")  # nothing listens: found in the cache
    np.testing.assert_array_equal(load_dataset("fashion-mnist").y_train, arrays[1])


def test_a_corrupt_download_leaves_nothing_in_the_cache(fashion_mirror, cache):
    folder, _ = fashion_mirror
    labels = folder / "train-labels-idx1-ubyte.gz"
    good = labels.read_bytes()
    write_file(labels, idx_bytes(np.array([9, 0, 0, 4], np.uint8)))  # one label changed: checksum differs
    with pytest.raises(CnnlabError, match="train-labels-idx1-ubyte.gz: corrupt download \\(sha256 .*nothing was kept"):
        load_dataset("fashion-mnist")
    assert [p.name for p in (cache / "fashion-mnist").iterdir()] == ["train-images-idx3-ubyte.gz"]  # no temp files
    labels.write_bytes(b"not gzip at all")
    with pytest.raises(CnnlabError, match="corrupt download \\(bad gzip data"):
        load_dataset("fashion-mnist")
    labels.write_bytes(good)  # the mirror repaired: only the missing files are fetched
    assert load_dataset("fashion-mnist").y_train.tolist() == [9, 0, 0, 3]


def test_a_failed_download_says_how_else_to_get_the_data(fashion_mirror, cache):
    folder, _ = fashion_mirror
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(CnnlabError, match="download failed \\(HTTP Error 404.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    assert not (cache / "fashion-mnist").exists()


# --- to_categorical ----------------------------------------------------------------------------


def test_to_categorical_is_keras_one_hot():
    labels = np.array([2, 0, 1, 2])
    one_hot = to_categorical(labels, 4)
    assert one_hot.dtype == np.float32 and one_hot.shape == (4, 4)
    assert one_hot.sum(axis=1).tolist() == [1, 1, 1, 1] and one_hot.argmax(axis=1).tolist() == labels.tolist()
    assert to_categorical(labels).shape == (4, 3)  # classes default to max + 1
    assert to_categorical(labels.reshape(4, 1), 3).shape == (4, 3)  # Keras drops a trailing axis of 1
    assert to_categorical([[0, 1], [1, 0]], 2).shape == (2, 2, 2)
    with pytest.raises(ValueError, match="num_classes=2"):
        to_categorical(labels, 2)
    with pytest.raises(ValueError, match="non-negative integer"):
        to_categorical([-1, 0])
