"""``cnnlab datasets``, ``cnnlab show`` and the shared dataset options, run in-process."""

from __future__ import annotations

import re

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnlab.cli.data import dataset_options, load_dataset_from_options
from cnnlab.data import idx as data


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """One cache for the module, so shipped MNIST is decoded once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache(warm_cache, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", str(warm_cache))
    return warm_cache


@pytest.fixture
def pets(tmp_path):
    """Two classes of four colour images each, and one file that is not an image."""
    for name, colour in (("cats", (200, 30, 30)), ("dogs", (30, 30, 200))):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for index in range(4):
            Image.new("RGB", (20, 20 + index), colour).save(tmp_path / "pets" / name / f"{index}.png")
    (tmp_path / "pets" / "dogs" / "readme.txt").write_text("not an image")
    return tmp_path / "pets"


def table_rows(output: str) -> dict[str, list[str]]:
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line) for line in output.splitlines())}


def test_datasets_lists_each_dataset_without_loading_it(run_cli, tmp_path, monkeypatch, cache):
    installed = tmp_path / "fashion"
    installed.mkdir()
    for stem in data.IDX_FILES:
        (installed / f"{stem}.gz").touch()
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", installed)
    monkeypatch.setattr(data, "_read_idx", lambda *args: pytest.fail("datasets must not read the data"))
    result = run_cli("datasets")
    assert (result.code, result.err) == (0, "")
    rows = table_rows(result.out)
    assert rows["name"] == ["name", "shape", "classes", "train", "test", "where"]
    assert rows["mnist"] == ["mnist", "28×28×1", "10", "60000", "10000", f"{data.MNIST_DIR} (shipped with cnnlab)"]
    assert rows["fashion-mnist"] == ["fashion-mnist", "28×28×1", "10", "60000", "10000", str(installed)]
    assert rows["cifar10"][:5] == ["cifar10", "32×32×3", "10", "50000", "10000"]
    assert rows["cifar10"][5].startswith(f"not here: downloaded on first use (170 MB) into {cache}")
    assert rows["folder:PATH"][1] == "N×N×C"


def test_datasets_says_how_to_get_what_is_missing(run_cli, tmp_path, monkeypatch, cache):
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "absent")
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cifar-10-binary.tar.gz").touch()
    rows = table_rows(run_cli("datasets").out)
    assert rows["fashion-mnist"][5] == (
        "not here: apt-get install dataset-fashion-mnist, or downloaded on first use "
        f"into {tmp_path / 'cache' / 'fashion-mnist'}"
    )
    assert rows["cifar10"][5] == str(tmp_path / "cache" / "cifar-10-binary.tar.gz")


def test_show_writes_a_grid_of_the_first_samples(run_cli, tmp_path):
    out = tmp_path / "grid.png"
    result = run_cli("show", "mnist", "-n", "9", "--out", out)
    assert (result.code, result.err) == (0, "")
    assert result.out == f"wrote {out}: the first 9 train samples of mnist\n"
    pixels = np.asarray(Image.open(out).convert("L"))
    assert pixels.shape[0] > 100 and pixels.std() > 10  # a drawing, not a blank page
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_show_defaults_to_dataset_samples_png_here(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("show", "digits", "--data-dir", data.MNIST_DIR, "--split", "test", "-n", "4")
    assert result.out == "wrote digits-samples.png: the first 4 test samples of digits\n"
    assert (tmp_path / "digits-samples.png").stat().st_size > 1000


def test_show_a_folder_dataset_reports_the_skipped_files(run_cli, tmp_path, monkeypatch, pets):
    monkeypatch.chdir(tmp_path)
    result = run_cli("show", f"folder:{pets}", "--channels", "3", "--image-size", "16")
    assert result.code == 0
    assert result.err == "cnnlab: skipped 1 unreadable file: dogs/readme.txt (not an image)\n"
    assert result.out == f"wrote pets-samples.png: the first 6 train samples of folder:{pets}\n"
    assert Image.open(tmp_path / "pets-samples.png").mode in ("RGB", "RGBA")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["show", "nope"],
            "cnnlab: error: dataset 'nope': unknown; choose mnist, fashion-mnist, cifar10 or "
            "folder:PATH, or give --data-dir DIR holding IDX files\n",
        ),
        (
            ["show", "folder:/no/such/folder"],
            "cnnlab: error: folder:/no/such/folder: no such folder; give folder:PATH "
            "with one sub-folder of images per class\n",
        ),
    ],
)
def test_show_a_bad_dataset_is_one_line_and_exit_1(run_cli, args, message):
    result = run_cli(*args)
    assert (result.code, result.out, result.err) == (1, "", message)


def test_show_an_unwritable_out_is_one_line_and_exit_1(run_cli, tmp_path):
    result = run_cli("show", "mnist", "-n", "1", "--out", tmp_path / "no-such-folder" / "x.png")
    assert result.code == 1
    assert result.err.startswith(f"cnnlab: error: {tmp_path / 'no-such-folder' / 'x.png'}: cannot be written")
    assert result.err.count("\n") == 1


def test_show_refuses_a_sample_count_of_zero(run_cli):
    assert run_cli("show", "mnist", "-n", "0").code == 2


def test_dataset_options_add_the_shared_options(pets):
    seen = {}

    @click.command()
    @dataset_options
    def command(**options):
        seen.update(options)
        loaded = load_dataset_from_options(**options)
        click.echo(f"{loaded.name} {loaded.x_train.shape}")

    result = CliRunner().invoke(command, ["--dataset", f"folder:{pets}", "--image-size", "8", "--channels", "3"])
    assert result.exit_code == 0, result.output
    assert seen == {"dataset": f"folder:{pets}", "data_dir": None, "image_size": 8, "channels": 3}
    assert result.stdout == f"folder:{pets} (6, 8, 8, 3)\n"
    assert result.stderr == "cnnlab: skipped 1 unreadable file: dogs/readme.txt (not an image)\n"
    defaults = CliRunner().invoke(command, [])
    assert (defaults.exit_code, defaults.stdout) == (0, "mnist (60000, 28, 28, 1)\n")
