"""Datasets kept as images: CIFAR-10's binary archive (a tiny one built here) and image folders."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

import cnnlab.data.cifar as cifar10
from cnnlab.data.registry import load_dataset
from cnnlab.errors import CnnlabError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache: nothing reads or writes ~/.cache."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- CIFAR-10 ----------------------------------------------------------------------------------


def cifar_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10's binary records: a label byte, then the whole red, green and blue planes, row by row."""
    return b"".join(
        bytes([label]) + image[:, :, 0].tobytes() + image[:, :, 1].tobytes() + image[:, :, 2].tobytes()
        for image, label in zip(images, labels)
    )


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def cifar():
    """Tiny CIFAR-10 batches (20 records each) by file name, and the arrays they hold."""
    rng = np.random.default_rng(4)
    x_train = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, 100).astype(np.int64)
    x_test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, 20).astype(np.int64)
    batches = {
        f"data_batch_{n}.bin": cifar_batch(x_train[20 * (n - 1) : 20 * n], y_train[20 * (n - 1) : 20 * n])
        for n in range(1, 6)
    }
    batches["test_batch.bin"] = cifar_batch(x_test, y_test)
    batches["batches.meta.txt"] = "\n".join(cifar10.CIFAR_CLASSES).encode()
    return batches, (x_train, y_train, x_test, y_test)


def test_cifar_records_become_images_channels_last(tmp_path, cifar):
    batches, arrays = cifar
    record = bytearray(batches["data_batch_2.bin"][3 * 3073 : 4 * 3073])  # the 4th record of batch 2: image 23
    record[1 + 1024 + 5 * 32 + 7] = 201  # green plane (the 2nd), row 5, column 7
    batch = batches["data_batch_2.bin"]
    batches["data_batch_2.bin"] = batch[: 3 * 3073] + bytes(record) + batch[4 * 3073 :]
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(
        tar_gz({f"cifar-10-batches-bin/{n}": b for n, b in batches.items()})
    )
    loaded = load_dataset("cifar10", data_dir=tmp_path)
    assert loaded.x_train[23, 5, 7, 1] == 201
    arrays[0][23, 5, 7, 1] = 201
    assert loaded.x_train.shape == (100, 32, 32, 3) and loaded.x_test.shape == (20, 32, 32, 3)
    assert loaded.class_names == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    for got, want in zip((loaded.x_train, loaded.y_train, loaded.x_test, loaded.y_test), arrays):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layout", ["extracted folder", "batches folder itself"])
def test_cifar_reads_the_extracted_batches(tmp_path, cifar, layout):
    batches, arrays = cifar
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, content in batches.items():
        (folder / name).write_bytes(content)
    loaded = load_dataset("cifar10", data_dir=tmp_path if layout == "extracted folder" else folder)
    assert loaded.source == str(folder)
    np.testing.assert_array_equal(loaded.x_test, arrays[2])


def test_cifar_archive_arrays_are_cached(tmp_path, cifar, monkeypatch):
    batches, arrays = cifar
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(tar_gz(batches))
    load_dataset("cifar10", data_dir=tmp_path)
    monkeypatch.setattr(cifar10, "_archive_batches", lambda *args: pytest.fail("read again despite the cache"))
    np.testing.assert_array_equal(load_dataset("cifar10", data_dir=tmp_path).x_train, arrays[0])


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda b: b.update({"../data_batch_1.bin": b.pop("data_batch_1.bin")}), "has an unsafe path"),
        (lambda b: b.update({"/abs/test_batch.bin": b["test_batch.bin"]}), "has an unsafe path"),
        (lambda b: b.pop("data_batch_4.bin"), "missing data_batch_4.bin"),
        (lambda b: b.update({"test_batch.bin": b["test_batch.bin"][:-1]}), "not a whole number of 3073-byte records"),
        (lambda b: b.update({"test_batch.bin": bytes([10]) + b["test_batch.bin"][1:]}), "label 10 is out of range"),
    ],
)
def test_a_bad_cifar_archive_is_refused_naming_it(tmp_path, cifar, edit, problem):
    batches, _ = cifar
    edit(batches)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(tar_gz(batches))
    with pytest.raises(CnnlabError, match=f"^{archive}.*{problem}"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_a_cifar_archive_that_is_not_a_tar_is_refused(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(b"not a tar"))
    with pytest.raises(CnnlabError, match="not a readable .tar.gz archive"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(CnnlabError, match="no CIFAR-10 here"):
        load_dataset("cifar10", data_dir=tmp_path / "..")


def test_cifar_downloads_into_the_cache_only_with_the_right_md5(tmp_path, cifar, cache, monkeypatch):
    batches, arrays = cifar
    archive = tar_gz(batches)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive)
    monkeypatch.setattr(cifar10, "CIFAR_MIRROR", tmp_path.as_uri())  # urllib reads file:// URLs too
    monkeypatch.setattr(cifar10, "CIFAR_MD5", "0" * 32)
    with pytest.raises(CnnlabError, match="corrupt download \\(md5 .*, expected 0{32}\\); nothing was kept"):
        load_dataset("cifar10")
    assert not cache.exists()
    monkeypatch.setattr(cifar10, "CIFAR_MD5", hashlib.md5(archive).hexdigest())
    loaded = load_dataset("cifar10")
    assert loaded.source == str(cache / "cifar-10-binary.tar.gz")
    np.testing.assert_array_equal(loaded.y_train, arrays[1])


# --- folder:PATH -------------------------------------------------------------------------------

COLOURS = {"cats": (255, 0, 0), "dogs": (0, 255, 0), "owls": (0, 0, 255)}
FORMATS = {"cats": "png", "dogs": "bmp", "owls": "gif"}


def shade(colour: tuple[int, int, int], index: int) -> tuple[int, ...]:
    return tuple(round(c * (0.4 + 0.1 * index)) for c in colour)  # each image of a class its own shade


@pytest.fixture
def pets(tmp_path):
    """5 solid-colour images per class (one class per format), plus files that cnnlab must skip."""
    root = tmp_path / "pets"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (30 + index, 20), shade(colour, index)).save(root / name / f"{index}.{FORMATS[name]}")
    (root / "cats" / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(root / "owls" / "scan.tiff")  # an image, in a format cnnlab does not take
    png = (root / "cats" / "0.png").read_bytes()
    (root / "dogs" / "broken.png").write_bytes(png[: len(png) // 2])
    (root / "owls" / ".thumbnail.png").write_bytes(png)  # hidden: ignored silently
    return root


def test_a_folder_dataset_splits_each_class_and_lists_skipped_files(pets):
    loaded = load_dataset(f"folder:{pets}", image_size=(12, 16), channels=3)
    assert loaded.name == f"folder:{pets}" and loaded.class_names == ["cats", "dogs", "owls"]
    assert loaded.x_train.shape == (12, 12, 16, 3) and loaded.x_test.shape == (3, 12, 16, 3)
    assert sorted(loaded.y_test.tolist()) == [0, 1, 2]  # a fifth of each class
    assert sorted((path.relative_to(pets).as_posix(), reason.split(":")[0]) for path, reason in loaded.skipped) == [
        ("cats/notes.txt", "not an image"),
        ("dogs/broken.png", "damaged"),
        ("owls/scan.tiff", "not an image"),
    ]
    assert loaded.skipped_message().startswith("skipped 3 unreadable files: ")
    assert "cats/notes.txt (not an image)" in loaded.skipped_message()
    images, labels = np.concatenate([loaded.x_train, loaded.x_test]), np.concatenate([loaded.y_train, loaded.y_test])
    for image, label in zip(images, labels):  # each image keeps its own colour: the channel of its class
        assert image[..., label].min() == image[..., label].max() > 0
        assert not np.delete(image, label, axis=-1).any()
    reds = sorted(images[labels == 0][:, 0, 0, 0].tolist())
    assert reds == [shade(COLOURS["cats"], i)[0] for i in range(5)]  # every file once, none twice


def test_a_folder_dataset_in_gray_matches_pillows_conversion(pets):
    loaded = load_dataset(f"folder:{pets}", image_size=8)
    assert loaded.x_train.shape[1:] == (8, 8, 1)
    images, labels = np.concatenate([loaded.x_train, loaded.x_test]), np.concatenate([loaded.y_train, loaded.y_test])
    for label, colour in enumerate(COLOURS.values()):
        grays = [Image.new("RGB", (1, 1), shade(colour, i)).convert("L").getpixel((0, 0)) for i in range(5)]
        assert sorted(images[labels == label][:, 0, 0, 0].tolist()) == sorted(grays)


def test_the_folder_split_is_seeded(pets):
    first, again = (load_dataset(f"folder:{pets}", seed=5) for _ in range(2))
    np.testing.assert_array_equal(first.x_test, again.x_test)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert any(
        not np.array_equal(load_dataset(f"folder:{pets}", seed=seed).y_train, first.y_train) for seed in range(6, 10)
    )  # other seeds shuffle differently
    assert len(set(first.y_train[-4:].tolist())) > 1  # shuffled: a validation split from the end holds several classes


def test_train_and_test_folders_are_used_as_given(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for index in range(count):
                Image.new("L", (10, 10), 40 * index).save(tmp_path / split / name / f"{index}.jpeg")
    (tmp_path / "test" / "c").mkdir()
    Image.new("L", (10, 10)).save(tmp_path / "test" / "c" / "only.webp")
    loaded = load_dataset(f"folder:{tmp_path}")
    assert loaded.class_names == ["a", "b", "c"]
    assert sorted(loaded.y_train.tolist()) == [0, 0, 0, 1, 1, 1]
    assert sorted(loaded.y_test.tolist()) == [0, 0, 1, 1, 2]
    assert loaded.x_train.shape == (6, 28, 28, 1) and not loaded.skipped


def test_decompression_bombs_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this, refuses above twice it
    (tmp_path / "x").mkdir()
    for name, side in (("small", 10), ("warned", 40), ("refused", 50)):
        Image.new("L", (side, side)).save(tmp_path / "x" / f"{name}.png")
    loaded = load_dataset(f"folder:{tmp_path}", test_fraction=0)
    assert len(loaded.x_train) == 1 and len(loaded.x_test) == 0
    assert sorted((path.name, reason) for path, reason in loaded.skipped) == [
        ("refused.png", "too many pixels: a possible decompression bomb"),
        ("warned.png", "too many pixels: a possible decompression bomb"),
    ]


def test_folder_errors_are_cnnlab_errors(tmp_path):
    with pytest.raises(CnnlabError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(CnnlabError, match="no class folders"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_text("text")
    with pytest.raises(CnnlabError, match="no readable images in 1 class folders \\(1 files skipped\\)"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(CnnlabError, match="--data-dir: not used"):
        load_dataset(f"folder:{tmp_path}", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Received: channels=2"):
        load_dataset(f"folder:{tmp_path}", channels=2)


# --- training on them, end to end --------------------------------------------------------------


@pytest.mark.slow
def test_the_course_cifar_cnn_trains_on_a_cifar_archive(run_cli, tmp_path, cifar):
    batches, _ = cifar
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(
        tar_gz({f"cifar-10-batches-bin/{n}": b for n, b in batches.items()})
    )
    result = run_cli(
        "train",
        "--model",
        "cifar-cnn",
        "--dataset",
        "cifar10",
        "--data-dir",
        tmp_path,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--name",
        "c",
        "--runs-dir",
        tmp_path / "runs",
        "--quiet",
    )
    assert result.code == 0, result.err
    assert result.out.startswith("test accuracy: ")
    assert cnnlab_load(tmp_path / "runs" / "c").class_names[0] == "airplane"


@pytest.mark.slow
def test_a_folder_dataset_trains_and_reports_what_it_skipped(run_cli, tmp_path, pets):
    result = run_cli(
        "train",
        "--dataset",
        f"folder:{pets}",
        "--channels",
        "3",
        "--image-size",
        "8",
        "--model",
        "conv(4,3,relu)-flatten-dense(3,softmax)",
        "--validation-split",
        "0",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--name",
        "p",
        "--runs-dir",
        tmp_path / "runs",
        "--quiet",
    )
    assert result.code == 0, result.err
    assert result.err.startswith("cnnlab: skipped 3 unreadable files: ")
    model = cnnlab_load(tmp_path / "runs" / "p")
    assert model.class_names == ["cats", "dogs", "owls"] and model.input_shape == (8, 8, 3)


def cnnlab_load(run):
    from cnnlab.nn.modelio import load

    return load(run)
