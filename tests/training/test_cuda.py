"""The same code on a CUDA GPU: data and model on the device, bfloat16 autocast by default, float32 steps as the CPU's.

These run only where torch sees a GPU (`bash benchmarks/gpu_check.sh` runs them there); CI has none, and
test_train.py checks the one-line refusal of `--device cuda` on such machines.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from cnnlab.engine.devices import autocast
from cnnlab.nn.registry import create_model
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.loop import fit
from cnnlab.training.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to torch")


def test_auto_trains_the_course_cnn_on_the_gpu(tmp_path):
    result = train(TrainConfig(limit=6000, epochs=2, name="gpu", runs_dir=str(tmp_path)), verbose=False)
    config = json.loads((tmp_path / "gpu" / "config.json").read_text())
    assert config["device"].startswith("cuda")
    assert result.history[1]["loss"] < result.history[0]["loss"] and result.test["accuracy"] > 0.85
    assert all(parameter.device.type == "cpu" for parameter in result.model.parameters())  # handed back on the CPU


def test_auto_precision_is_bfloat16_on_the_gpu():
    model = create_model("cnn").cuda()
    with autocast(torch.device("cuda"), "auto"):
        assert model(torch.rand(2, 1, 28, 28, device="cuda")).dtype == torch.bfloat16
    with autocast(torch.device("cuda"), "float32"):
        assert model(torch.rand(2, 1, 28, 28, device="cuda")).dtype == torch.float32


def test_float32_steps_on_the_gpu_match_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN's default rounds products to 10 bits
    torch.manual_seed(0)
    on_cpu = create_model("cnn2")
    on_gpu = copy.deepcopy(on_cpu)
    images = torch.randint(0, 256, (512, 28, 28, 1), dtype=torch.uint8)
    labels = torch.randint(0, 10, (512,))
    for model, device in ((on_cpu, "cpu"), (on_gpu, "cuda")):  # SGD: an update linear in the gradient
        config = FitConfig(epochs=1, batch_size=128, optimizer="sgd", lr=0.05, precision="float32", device=device)
        fit(model, (images, labels), config=config, verbose=False)
    assert next(on_gpu.parameters()).device.type == "cuda"
    for (name, expected), actual in zip(on_cpu.named_parameters(), on_gpu.parameters()):
        torch.testing.assert_close(actual.cpu(), expected, atol=1e-4, rtol=1e-3, msg=name)
