"""docs/notebooks: every notebook runs top to bottom in a Jupyter kernel, and prints what the course shows.

The kernel is ipykernel on this test's own Python (a kernelspec written to a temporary folder, so that no
"python3" kernel installed elsewhere is picked up), with the ``cnnlab`` this test imports on its path and
matplotlib's inline backend; each notebook runs in a temporary folder. The notebooks are stored without
outputs; the outputs checked here are the ones this run produced (CNNLAB_NOTEBOOKS_OUT=FOLDER keeps them).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (jupyter_client comes with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402
from terminal import screen  # noqa: E402

import cnnlab  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
CELL_TIMEOUT = 900  # seconds a cell may take: a busy 2-core CI runner trains several times slower than a laptop
BAR = "━━━━━━━━━━━━━━━━━━━━"  # Keras's bar when full

pytestmark = pytest.mark.slow


def test_the_notebooks_are_stored_clean():
    """No outputs or execution counts in the repository: diffs show the code and text only."""
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == [
        "01-data-and-mlp.ipynb",
        "02-tensors-and-convolution.ipynb",
        "03-first-cnn.ipynb",
        "04-exercises.ipynb",
        "05-fashion-mnist.ipynb",
    ]
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: a cell kept its outputs"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec 'python3' running ipykernel on sys.executable, importing the cnnlab under test."""
    folder = tmp_path_factory.mktemp("kernels")
    source = str(Path(cnnlab.__file__).resolve().parents[1])  # src/ of a checkout, or site-packages
    path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnlab tests",
        "language": "python",
        "env": {"PYTHONPATH": path, "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (folder / "python3").mkdir()
    (folder / "python3" / "kernel.json").write_text(json.dumps(spec))
    return folder


def run_notebook(name: str, kernel_dir: Path, workdir: Path):
    """The notebook executed top to bottom (nbclient raises CellExecutionError at a failing cell)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.perf_counter()
    client.execute()
    print(f"{name}: {time.perf_counter() - started:.1f} s")  # shown by pytest -s, or on a failure
    if os.environ.get("CNNLAB_NOTEBOOKS_OUT"):  # a folder to keep the executed notebooks in, to read them
        nbformat.write(notebook, Path(os.environ["CNNLAB_NOTEBOOKS_OUT"]) / name)
    return notebook


def stdout(cell) -> str:
    """All the cell printed, its stream outputs joined as a frontend joins them."""
    return "".join(output.text for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")


def text(notebook) -> str:
    """Everything the notebook printed or displayed as text, cell after cell."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        parts.append(stdout(cell))
        parts.extend(
            output.data.get("text/plain", "") for output in cell.outputs if output.output_type == "execute_result"
        )
    return "\n".join(parts)


def images(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def fit_cells(notebook, verbose: int) -> list:
    """The cells that call fit with ``verbose``."""
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and ".fit(" in cell.source and f"verbose={verbose}," in cell.source
    ]


def number(pattern: str, printed: str) -> float:
    found = re.findall(re.escape(pattern) + r" ([0-9.]+(?:e[+-]?[0-9]+)?)\b", printed)
    assert len(found) == 1, f"{pattern!r} printed {len(found)} times"
    return float(found[0])


def check_one_bar_an_epoch(cell, epochs: int, steps: int) -> None:
    """verbose=1 in Jupyter: each epoch's bar is one row redrawn with carriage returns, never a new line a step.

    The screen (a frontend turns '\\r' into a return to the row's start, as a terminal) shows 'Epoch k/n' and
    one full bar per epoch; each redraw covers the whole of the row before it, so nothing is left of an
    older, longer line.
    """
    printed = stdout(cell)
    assert "\b" not in printed
    rows = screen(printed)
    assert len(rows) == 2 * epochs, rows
    for epoch in range(epochs):
        assert rows[2 * epoch] == f"Epoch {epoch + 1}/{epochs}"
        bar = rows[2 * epoch + 1]
        assert bar.startswith(f"{steps}/{steps} {BAR} ") and " - val_loss: " in bar, bar
    written = printed.split("\n")
    assert len(written) == 2 * epochs + 1 and written[-1] == ""  # one '\n' a row: no line a step
    for line in written[1::2]:
        frames = line.split("\r")
        assert frames[0] == "" and len(frames) >= 2  # every row of a bar is drawn with a carriage return
        for index, frame in enumerate(frames[1:], start=1):
            # a frame is at least as wide as every frame before it drew: it covers all of them
            assert len(frame) >= max(len(old.rstrip()) for old in frames[1 : index + 1]), (index, frames)
        assert frames[-1].rstrip() == screen(line)[0]


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path


def test_01_data_and_mlp(kernel_dir, workdir):
    notebook = run_notebook("01-data-and-mlp.ipynb", kernel_dir, workdir)
    printed = text(notebook)
    assert "train: (60000, 28, 28) uint8 labels: (60000,)" in printed
    assert "(60000, 784) 0.0 1.0" in printed
    assert "label 5 -> [0. 0. 0. 0. 0. 1. 0. 0. 0. 0.]" in printed
    assert "Total params: 570,602 (" in printed  # 784·512+512 + 512·256+256 + 256·128+128 + 128·32+32 + 32·10+10
    (fit,) = fit_cells(notebook, verbose=1)
    check_one_bar_an_epoch(fit, epochs=10, steps=329)  # 42,000 / 128 -> 329 steps
    assert number("MLP test accuracy:", printed) >= 0.96
    assert images(notebook) == 2


def test_02_tensors_and_convolution(kernel_dir, workdir):
    notebook = run_notebook("02-tensors-and-convolution.ipynb", kernel_dir, workdir)
    printed = text(notebook)
    assert "shape (2, 3, 4, 5) - order 4" in printed
    assert "np.convolve: [ 0  0  0  0  0 -1  0  0  0  0  1  0  0  0  0  0]" in printed
    assert "by hand:     [ 0  0  0  0  0 -1  0  0  0  0  1  0  0  0  0  0]" in printed
    assert "(512, 512) float32" in printed and "filtered: (510, 510)" in printed
    assert "strided output: (1, 255, 510, 1)" in printed
    assert "kernel (3, 3, 1, 1) bias (1,)" in printed and "blurred: (1, 255, 510, 1)" in printed
    assert number("largest difference from NumPy:", printed) < 1e-3
    assert "same padding: (1, 512, 512, 1)" in printed
    assert "max pooling: (1, 102, 102, 1)" in printed and "average pooling: (1, 102, 102, 1)" in printed
    assert "colour kernel: (3, 3, 3, 1)" in printed and "colour output: (1, 510, 510, 1)" in printed
    assert number("largest difference from the per-channel sum:", printed) < 1e-3
    assert images(notebook) == 6


def test_03_first_cnn(kernel_dir, workdir):
    notebook = run_notebook("03-first-cnn.ipynb", kernel_dir, workdir)
    printed = text(notebook)
    assert "Total params: 693,962 (" in printed and "Trainable params: 693,962 (" in printed
    assert "(None, 26, 26, 32)" in printed and "(None, 13, 13, 32)" in printed and "(None, 5408)" in printed
    assert "conv 320 + dense 692,352 + output 1,290 = 693,962" in printed
    assert "model.count_params(): 693,962" in printed
    (fit,) = fit_cells(notebook, verbose=1)
    check_one_bar_an_epoch(fit, epochs=2, steps=329)
    assert number("CNN test accuracy:", printed) >= 0.97
    misclassified = re.search(r"(\d+) of 10000 test digits misclassified", printed)
    assert misclassified and int(misclassified.group(1)) <= 300
    assert "kernel (3, 3, 1, 32)" in printed
    assert images(notebook) == 2


def test_04_exercises(kernel_dir, workdir):
    notebook = run_notebook("04-exercises.ipynb", kernel_dir, workdir)
    printed = text(notebook)
    assert "Total params: 225,034 (" in printed and "after Flatten: (1600,)" in printed
    assert "parameters: 693,962 (dropout adds none)" in printed
    assert "Total params: 1,250,858 (" in printed  # the CIFAR-10 model, built only
    fits = fit_cells(notebook, verbose=2)
    assert len(fits) == 3
    for fit, epochs in zip(fits, (2, 2, 1)):  # verbose=2: 'Epoch k/n' and one line an epoch
        lines = stdout(fit).split("\n")
        starts = [index for index, line in enumerate(lines) if line.startswith("Epoch ")]
        assert [lines[index] for index in starts] == [f"Epoch {k}/{epochs}" for k in range(1, epochs + 1)]
        assert "\r" not in stdout(fit)
        for index in starts:  # 14,000 images in batches of 128: 110 steps
            line = lines[index + 1]
            assert re.fullmatch(r"110/110 - [0-9m ]+s - \d+[mu]s/step - accuracy: .* - val_loss: [0-9.e-]+", line), line
    assert number("two stages test accuracy:", printed) >= 0.94  # 0.9563 measured (20,000 images, 2 epochs)
    assert number("dropout test accuracy:", printed) >= 0.92  # 0.9453 measured
    assert number("stacked test accuracy:", printed) >= 0.93  # 0.9540 measured (1 epoch)


def fashion_mnist_here() -> bool:
    from cnnlab.data.idx import fashion_dirs, find_idx_files

    return any(folder.is_dir() and not find_idx_files(folder)[1] for folder, _ in fashion_dirs())


@pytest.mark.skipif(
    not fashion_mnist_here(), reason="Fashion-MNIST is not here (apt-get install dataset-fashion-mnist); no download"
)
def test_05_fashion_mnist(kernel_dir, workdir):
    notebook = run_notebook("05-fashion-mnist.ipynb", kernel_dir, workdir)
    printed = text(notebook)
    assert "(60000, 28, 28) uint8 (60000,) (10000, 28, 28)" in printed
    perceptron, cnn = number("perceptron test accuracy:", printed), number("CNN test accuracy:", printed)
    assert perceptron >= 0.80 and cnn >= 0.90 and cnn > perceptron  # the challenge: past 90%
    assert "Ankle boot: " in printed and "% right; most often taken for " in printed
    assert images(notebook) == 2
