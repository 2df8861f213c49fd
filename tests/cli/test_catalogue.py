"""Bad input, case by case: every one ends with one line on stderr, a non-zero exit, no traceback,
and every file that was there before is still there, unchanged.

Each case prepares its files in a fresh folder and returns the command line to run; the command
runs in this process (the ``run_cli`` fixture) exactly as a user would type it.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import pickle
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.idx import IDX_FILES
from cnnlab.data.registry import load_dataset
from cnnlab.nn.modelio import save
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.nn.registry import create_model
from cnnlab.training.checkpoint import FILE as CHECKPOINT
from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.config import TrainConfig

DIGITS = [str(digit) for digit in range(10)]


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """Decoded arrays of the files made here go to a cache of this module's own, not the user's."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.getbasetemp() / "catalogue-cache"))


# --- the files the cases start from -----------------------------------------------------------------


def _idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 NDIM, big-endian sizes, the data."""
    header = magic or bytes([0, 0, 0x08, array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def idx_folder(root: Path, raw: dict[str, bytes] | None = None) -> Path:
    """A small MNIST in IDX files (200 training, 50 test images), gzip'd; ``raw`` replaces some by raw bytes."""
    mnist = load_dataset("mnist")
    arrays = {
        "train-images-idx3-ubyte": mnist.x_train[:200, ..., 0],
        "train-labels-idx1-ubyte": mnist.y_train[:200],
        "t10k-images-idx3-ubyte": mnist.x_test[:50, ..., 0],
        "t10k-labels-idx1-ubyte": mnist.y_test[:50],
    }
    folder = root / "idx"
    folder.mkdir()
    for stem in IDX_FILES:
        if raw and stem in raw:
            (folder / stem).write_bytes(raw[stem])
        else:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(arrays[stem]), mtime=0))
    return folder


def _damage(folder: Path, name: str, change) -> Path:
    path = folder / name
    path.write_bytes(change(path.read_bytes()))
    return folder


def _cut(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _without(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def model_folder(root: Path, input_shape=(28, 28, 1), name: str = "model") -> Path:
    return save(create_model("cnn", input_shape=input_shape), root / name, class_names=DIGITS, dataset="mnist")


def text_file(root: Path) -> Path:
    path = root / "notes.txt"
    path.write_text("these are notes, not a picture\n")
    return path


def png(root: Path, name: str, size=(40, 40), mode="L") -> Path:
    path = root / name
    picture = Image.new(mode, size, 255)
    if min(size) >= 40:
        picture.paste(0, (15, 8, 25, 32))  # a dark bar on white: a one
    picture.save(path)
    return path


def bomb(root: Path) -> Path:
    """A 12 KB PNG that decodes to 100 million pixels: above Pillow's limit (89 M), below twice it."""
    path = root / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(path)
    return path


class Payload:
    """Unpickling this would create the file ``marker``: proof that something in a model file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def pickled_weights(root: Path, as_torch_save: bool) -> Path:
    folder = model_folder(root)
    payload = {"conv2d.conv.weight": torch.zeros(32, 1, 3, 3), "hook": Payload(root / "it-ran")}
    if as_torch_save:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        (folder / "model.safetensors").write_bytes(buffer.getvalue())
    else:
        (folder / "model.safetensors").write_bytes(pickle.dumps(payload))
    return folder


def run_folder(root: Path, checkpoint: bytes | None) -> Path:
    run = root / "runs" / "old"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(asdict(TrainConfig(limit=100, epochs=1))))
    if checkpoint is not None:
        (run / CHECKPOINT).write_bytes(checkpoint)
    return run


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def spec_file(root: Path, spec: dict) -> Path:
    path = root / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def train(root: Path, *options) -> list:
    return ["train", "--epochs", "1", "--limit", "100", "--runs-dir", root / "runs", "--name", "new", *options]


# --- the catalogue: case -> (command line from a fresh folder, what the message must say) --------------

CASES = {
    # datasets read from --data-dir
    "gzip truncated": (
        lambda t: train(
            t, "--data-dir", _damage(idx_folder(t), "train-images-idx3-ubyte.gz", lambda data: data[: len(data) // 2])
        ),
        "bad gzip data",
    ),
    "gzip corrupt": (
        lambda t: train(
            t,
            "--data-dir",
            _damage(idx_folder(t), "train-images-idx3-ubyte.gz", lambda data: data[:40] + bytes(64) + data[104:]),
        ),
        "bad gzip data",
    ),
    "gzip empty": (
        lambda t: train(t, "--data-dir", _damage(idx_folder(t), "t10k-labels-idx1-ubyte.gz", lambda data: b"")),
        "empty file",
    ),
    "idx truncated": (
        lambda t: train(
            t, "--data-dir", idx_folder(t, {"train-images-idx3-ubyte": _idx_bytes(np.zeros((200, 28, 28)))[:50_000]})
        ),
        "truncated",
    ),
    "idx wrong magic": (
        lambda t: train(
            t,
            "--data-dir",
            idx_folder(t, {"train-labels-idx1-ubyte": _idx_bytes(np.zeros(200), magic=b"\x1f\x8b\x08\x01")}),
        ),
        "wrong magic number",
    ),
    "idx counts disagree": (
        lambda t: train(t, "--data-dir", idx_folder(t, {"train-labels-idx1-ubyte": _idx_bytes(np.zeros(150))})),
        "holds 200 images but",
    ),
    "idx empty": (lambda t: train(t, "--data-dir", idx_folder(t, {"train-labels-idx1-ubyte": b""})), "empty file"),
    "idx missing": (
        lambda t: train(t, "--data-dir", _without(idx_folder(t), "t10k-images-idx3-ubyte.gz")),
        "missing t10k-images-idx3-ubyte[.gz]",
    ),
    "data dir absent": (lambda t: train(t, "--data-dir", t / "nowhere"), "does not exist"),
    # pictures
    "predict a text file": (lambda t: ["predict", model_folder(t), text_file(t)], "not an image"),
    "filter a text file": (
        lambda t: ["filter", text_file(t), "--kernel", "box", "--out", t / "out.png"],
        "not an image",
    ),
    "predict a damaged png": (lambda t: ["predict", model_folder(t), _cut(png(t, "one.png"), 60)], "damaged image"),
    "predict a decompression bomb": (lambda t: ["predict", model_folder(t), bomb(t)], "decompression bomb"),
    "filter a decompression bomb": (
        lambda t: ["filter", bomb(t), "--kernel", "box", "--out", t / "out.png"],
        "decompression bomb",
    ),
    "predict, model with 3 channels": (
        lambda t: ["predict", model_folder(t, (28, 28, 3)), png(t, "one.png")],
        "takes 3 channels",
    ),
    "evaluate, model with 3 channels": (
        lambda t: ["evaluate", model_folder(t, (28, 28, 3))],
        "the model takes (28, 28, 3) images, mnist has (28, 28, 1)",
    ),
    # model files
    "model file is a pickle": (
        lambda t: ["predict", pickled_weights(t, as_torch_save=False), png(t, "one.png")],
        "pickle or torch.save file",
    ),
    "model file is a torch.save": (
        lambda t: ["evaluate", pickled_weights(t, as_torch_save=True)],
        "pickle or torch.save file",
    ),
    "model.json not a model": (
        lambda t: ["predict", _damage(model_folder(t), "model.json", lambda data: b"[1, 2]"), png(t, "one.png")],
        "not a cnnlab model file",
    ),
    "serve a folder without a model": (lambda t: ["serve", t / "nowhere"], "not found"),
    # model specs
    "spec: unknown layer": (
        lambda t: ["summary", "input(28,28,1)-conv(8,3)-wobble-dense(10)"],
        "unknown layer 'wobble'",
    ),
    "spec: kernel larger than input": (
        lambda t: ["summary", "input(28,28,1)-conv(8,30)-flatten-dense(10)"],
        "does not fit the input",
    ),
    "spec: pool larger than input": (
        lambda t: train(t, "--model", "maxpool(64)-flatten-dense(10,softmax)"),
        "does not fit the input",
    ),
    "spec file: unknown type": (
        lambda t: ["summary", spec_file(t, {"input_shape": [28, 28, 1], "layers": [{"type": "Conv3D"}]})],
        "unknown type 'Conv3D'",
    ),
    "spec: 3 classes for mnist": (
        lambda t: train(t, "--model", "flatten-dense(3,softmax)"),
        "does not match the 10 classes",
    ),
    # training
    "loss becomes NaN": (
        lambda t: train(t, "--optimizer", "sgd", "--lr", "1e15", "--limit", "300"),
        "NaN or infinite at epoch 1, step",
    ),
    "run folder exists": (lambda t: train(text_file(_made(t / "runs" / "new")).parents[2]), "already exists"),
    "epochs 0": (lambda t: train(t, "--epochs", "0"), "--epochs must be at least 1"),
    "batch size 0": (lambda t: train(t, "--batch-size", "0"), "--batch-size must be at least 1"),
    "validation split 1": (lambda t: train(t, "--validation-split", "1"), "--validation-split must be in [0, 1)"),
    "limit 1": (lambda t: train(t, "--limit", "1"), "--limit must be at least 2"),
    "unknown dataset": (lambda t: train(t, "--dataset", "imagenet"), "dataset 'imagenet': unknown"),
    "unknown model": (lambda t: train(t, "--model", "resnet50"), "unknown model 'resnet50'"),
    "unknown option": (lambda t: train(t, "--wobble", "3"), "No such option"),
    "resume: not a run": (lambda t: ["train", "--resume", t], "no readable config.json"),
    "resume: damaged checkpoint": (
        lambda t: ["train", "--resume", run_folder(t, b"\x80\x04garbage")],
        "not a readable cnnlab checkpoint",
    ),
    "resume: no checkpoint": (lambda t: ["train", "--resume", run_folder(t, None)], "no checkpoint to resume from"),
}


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_clear_line(case, tmp_path, run_cli):
    prepare, expected = CASES[case]
    args = prepare(tmp_path)
    before = _files(tmp_path)
    result = run_cli(*args)
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert expected in lines[0]
    assert "Traceback" not in result.err + result.out
    assert _files(tmp_path).items() >= before.items()  # nothing that was there changed or went away
    assert not (tmp_path / "it-ran").exists()  # nothing in a model file ran


@pytest.mark.slow
def test_a_nan_in_epoch_two_keeps_epoch_one_checkpoint(tmp_path, run_cli, monkeypatch):
    """The loss turns NaN at the 5th step of epoch 2: the checkpoint of epoch 1 stays, whole and loadable."""
    import cnnlab.training.loop
    from cnnlab.training.losses import per_sample_loss

    steps_per_epoch, calls = math.ceil(int(1500 * 0.7) / 64), {"count": 0}  # 70% of --limit trains

    def loss_per_sample(*args, **kwargs):  # the training loop's loss, once per step
        calls["count"] += 1
        losses = per_sample_loss(*args, **kwargs)
        return losses * float("nan") if calls["count"] == steps_per_epoch + 5 else losses

    monkeypatch.setattr(cnnlab.training.loop, "per_sample_loss", loss_per_sample)
    result = run_cli(*train(tmp_path, "--epochs", "2", "--limit", "1500", "--batch-size", "64"))
    assert result.code == 1
    assert "NaN or infinite at epoch 2, step 5" in result.err
    assert f"{tmp_path / 'runs' / 'new' / CHECKPOINT} keeps the last good state" in result.err
    model = create_model("cnn")
    progress = load_checkpoint(tmp_path / "runs" / "new", model, make_optimizer(model, TrainConfig()))
    assert (progress.epoch, progress.step, len(progress.history)) == (1, 0, 1)
    assert all(torch.isfinite(weight).all() for weight in model.parameters())


def test_a_config_json_that_is_not_text_is_one_line(run_cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    result = run_cli("evaluate", run)
    assert (
        result.code == 1
        and result.err == f"cnnlab: error: {run / 'config.json'}: not valid JSON; the run folder is damaged\n"
    )
