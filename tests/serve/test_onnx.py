"""ONNX export: onnxruntime must answer as PyTorch does, within 1e-5."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.nn.inputs import as_model_input
from cnnlab.serve.onnx import export_onnx, run_onnx

pytestmark = pytest.mark.slow  # each export traces and checks a whole model (seconds)

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    model = cnnlab.load(trained_run)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    difference = export_onnx(model, path)
    return model, path, difference


def pytorch_answers(model, images: torch.Tensor):
    logits = model(images).detach()
    return logits.numpy(), torch.softmax(logits, dim=1).numpy()


def max_difference(model, path, images: torch.Tensor) -> float:
    return max(
        float(np.abs(got - want).max())
        for got, want in zip(run_onnx(path, images.numpy()), pytorch_answers(model, images))
    )


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_onnx_matches_pytorch_on_random_inputs(exported, batch):
    model, path, _ = exported
    images = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch))
    assert max_difference(model, path, images) <= 1e-5


def test_onnx_matches_pytorch_on_real_digits(exported):
    model, path, _ = exported
    digits = as_model_input(torch.from_numpy(cnnlab.load_dataset("mnist").x_test[:256])).contiguous()
    assert max_difference(model, path, digits) <= 1e-5
    logits, probabilities = run_onnx(path, digits.numpy())
    np.testing.assert_array_equal(logits.argmax(1), model(digits).argmax(1).numpy())
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)


def test_export_reports_the_difference_it_checked(exported):
    assert 0 <= exported[2] <= 1e-5


def test_the_graph_has_named_inputs_a_free_batch_axis_and_metadata(exported):
    model, path, _ = exported
    graph = onnx.load(str(path))
    (image,) = graph.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "image" and not dims[0].HasField("dim_value")  # the batch axis is free
    assert [dim.dim_value for dim in dims[1:]] == [1, 28, 28]
    assert [output.name for output in graph.graph.output] == ["logits", "probabilities"]
    properties = {prop.key: prop.value for prop in graph.metadata_props}
    assert json.loads(properties["class_names"]) == model.class_names and properties["dataset"] == "mnist"


def test_export_command_writes_only_the_file(run_cli, trained_run, tmp_path):
    target = tmp_path / "digits.onnx"
    result = run_cli("export", trained_run, "--onnx", target)
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {target} (") and "onnxruntime matches PyTorch within" in result.out
    assert [path.name for path in tmp_path.iterdir()] == ["digits.onnx"]  # no temporary file left behind
    assert max_difference(cnnlab.load(trained_run), target, torch.rand(3, 1, 28, 28)) <= 1e-5


def test_export_into_a_missing_folder_is_a_clear_error(trained_run, tmp_path):
    with pytest.raises(CnnlabError, match="does not exist"):
        export_onnx(cnnlab.load(trained_run), tmp_path / "nowhere" / "model.onnx")


def test_a_missing_onnx_extra_says_how_to_install_it(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importing it now raises ImportError
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[onnx\]'"):
        export_onnx(cnnlab.load(trained_run), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_dense_layers_export_as_matrix_products(exported):
    """On the CPU large Dense layers run as oneDNN convolutions; the exported graph keeps them plain Gemm nodes."""
    model, path, _ = exported
    operators = [node.op_type for node in onnx.load(str(path)).graph.node]
    dense_layers = [layer for layer in model.layers if isinstance(layer, cnnlab.Dense)]
    assert operators.count("Gemm") == len(dense_layers) == 2
    assert operators.count("Conv") == 1  # the course CNN's one Conv2D
