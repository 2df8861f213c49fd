"""The fast engine computes what plain PyTorch computes, and ``cnnlab bench`` reports every figure it promises."""

from __future__ import annotations

import copy
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data.registry import load_dataset
from cnnlab.nn.inputs import as_model_input
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.nn.registry import create_model
from cnnlab.training import bench
from cnnlab.training.bench import gemm_rates, training_flops_per_sample
from cnnlab.training.config import FitConfig
from cnnlab.training.loop import epoch_order, fit
from cnnlab.training.train import seed_everything

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def test_channels_last_model_matches_the_plain_model():
    torch.manual_seed(0)
    plain = create_model("cnn2")
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (16, 28, 28, 1), dtype=torch.uint8)
    inputs = as_model_input(images)  # the engine's (B, C, H, W) view of (B, H, W, C) storage
    labels = torch.randint(0, 10, (16,))
    for model, x in ((plain, inputs.contiguous()), (fast, inputs)):
        F.cross_entropy(model(x), labels).backward()
    torch.testing.assert_close(fast(inputs), plain(inputs.contiguous()), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fused_optimizers_take_the_same_steps_as_plain_ones(optimizer):
    torch.manual_seed(0)
    fast = create_model("cnn")
    plain = copy.deepcopy(fast)
    config = FitConfig(optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else None)
    fused = make_optimizer(fast, config)
    assert fused.defaults["fused"] is True
    accepted = inspect.signature(type(fused)).parameters
    settings = {key: value for key, value in fused.defaults.items() if key in accepted}
    reference = type(fused)(plain.parameters(), **{**settings, "fused": False, "foreach": False})
    for step in range(3):
        for model, opt in ((fast, fused), (plain, reference)):
            torch.manual_seed(step)
            images = torch.rand(8, 1, 28, 28)
            opt.zero_grad()
            F.cross_entropy(model(images), torch.arange(8)).backward()
            opt.step()
    for a, b in zip(plain.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_fit_takes_the_same_steps_as_a_plain_loop():
    """Two epochs of the course's fit against NCHW tensors and torch's operators, Keras's RMSprop written out."""
    data = load_dataset("mnist")
    images, labels = data.x_train[:300], data.y_train[:300]
    config = FitConfig(epochs=2, batch_size=128, device="cpu")
    seed_everything(0)
    engine = create_model("cnn")
    plain = copy.deepcopy(engine)
    fit(engine, (images, labels), config=config, verbose=False)

    velocities = [torch.zeros_like(p) for p in plain.parameters()]
    x = torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2).contiguous() / 255.0  # (N, C, H, W)
    y = torch.tensor(labels)
    for epoch in range(2):
        order = epoch_order(0, epoch, len(x))
        for start in range(0, len(x), 128):
            index = order[start : start + 128]
            plain.zero_grad()
            logits = x[index]
            for layer in plain.layers:  # layer by layer: torch's operators, none of cnnlab's compiled kernels
                logits = layer(logits)
            F.cross_entropy(logits, y[index]).backward()
            with torch.no_grad():  # Keras: velocity = 0.9 v + 0.1 g², w -= 0.001 g / sqrt(velocity + 1e-7)
                for parameter, velocity in zip(plain.parameters(), velocities):
                    velocity.mul_(0.9).add_(0.1 * parameter.grad**2)
                    parameter -= 1e-3 * parameter.grad / torch.sqrt(velocity + 1e-7)
    for (name, a), b in zip(plain.named_parameters(), engine.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4, msg=name)


def test_training_flops_come_from_the_model():
    # the course's CNN counted by hand: 3x3 conv to 26x26x32, dense 5408 -> 128, dense 128 -> 10
    mult_adds = 26 * 26 * 32 * 9 + 13 * 13 * 32 * 128 + 128 * 10
    assert training_flops_per_sample(create_model("cnn")) == 3 * 2 * mult_adds


def test_gemm_rates_are_flops_over_the_fastest_timing(monkeypatch):
    """On a clock that ticks 1 ms per reading, every product takes 1 ms: the rate is 2·n³ per millisecond."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks) * 1e-3)
    rates = gemm_rates(size=64, repeats=3)
    assert rates == {"torch.mm": pytest.approx(2 * 64**3 / 1e-3), "onednn": pytest.approx(2 * 64**3 / 1e-3)}


@pytest.mark.slow
def test_peak_memory_follows_what_the_process_touched():
    """In a fresh process (this one's peak is already high): 300 MiB written raise the peak by about as much."""
    code = (
        "import numpy as np; from cnnlab.training.bench import peak_rss_mb; before = peak_rss_mb(); "
        "block = np.ones(300 * 2**20, np.uint8); print(round(peak_rss_mb() - before), block[-1])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    grown, last = result.stdout.split()
    assert 290 <= int(grown) <= 330 and last == "1", result.stderr


def test_figures_are_derived_from_the_timing_and_the_floor():
    figures = bench._figures(
        seconds=10.0, epochs=2, samples=1000, floor_per_epoch=0.5, val_accuracy=0.91234, peak_mb=321.04
    )
    assert figures == {
        "seconds": 10.0,
        "seconds_per_epoch": 5.0,
        "samples_per_s": 200.0,
        "floor_ratio": 10.0,
        "val_accuracy": 0.9123,
        "peak_rss_mb": 321.0,
    }


@pytest.mark.slow
def test_bench_prints_and_writes_its_figures(run_cli, tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--limit", "300", "--epochs", "1", "--json", out)
    assert result.code == 0, result.err
    figures = json.loads(out.read_text())
    assert figures["train_samples"] == 210 and figures["epochs"] == 1  # Keras's split keeps the first 70%
    assert figures["training_flops_per_sample"] == 3 * 2 * figures["mult_adds_per_sample"]
    assert figures["gemm_flops_per_s"] == max(figures["gemm_flops_per_s_by_library"].values())  # the floor's rate
    engine = figures["engine"]
    assert set(engine) == {
        "seconds",
        "seconds_per_epoch",
        "samples_per_s",
        "floor_ratio",
        "val_accuracy",
        "peak_rss_mb",
    }
    assert engine["val_accuracy"] > 0.3  # 210 digits, one epoch: well above chance
    assert "textbook" not in figures
    lines = result.out.splitlines()
    assert lines[0].startswith("course fit: cnn, 1 epoch of 210 samples")
    assert lines[2].startswith("cnnlab engine") and lines[3].startswith("floor: 5.33 MFLOP/sample")
    assert lines[5] == f"threads between operators: {figures['threads_wait']}"
    assert figures["threads_wait"].startswith(("spin", "sleep", "as OMP_WAIT_POLICY"))
    assert lines[6] == "engine speed-ups on this processor:"
    assert [speedup["name"] for speedup in figures["speedups"]] == [line[7:].split(" (")[0] for line in lines[7:]]


@pytest.mark.slow
def test_bench_compares_with_the_textbook_loop(run_cli, tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--compare", "textbook", "--limit", "200", "--epochs", "1", "--json", out)
    assert result.code == 0, result.err
    figures = json.loads(out.read_text())
    textbook = figures["textbook"]
    assert textbook["seconds"] > 0 and 0 <= textbook["val_accuracy"] <= 1 and textbook["peak_rss_mb"] > 0
    ratio = textbook["seconds"] / figures["engine"]["seconds"]
    assert figures["textbook_over_engine"] == pytest.approx(ratio, rel=0.05)  # both rounded
    assert "textbook loop" in result.out and "textbook loop / cnnlab engine:" in result.out


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, arguments, line",
    [
        (
            "course_fit.py",
            ["--limit", "600", "--epochs", "1"],
            r"cnnlab engine: fit \d+\.\d\d s for 1 epoch of 420 samples, val_accuracy (0\.\d{4}), peak RSS \d+ MB",
        ),
        (
            "course_fit.py",
            ["--loop", "textbook", "--limit", "600", "--epochs", "1"],
            r"textbook loop: fit \d+\.\d\d s for 1 epoch of 420 samples, val_accuracy (0\.\d{4}), peak RSS \d+ MB",
        ),
        ("public_mnist_recipe.py", ["--limit", "4096"], r"public recipe: fit \d+\.\d\d s, test accuracy (0\.\d{4})"),
    ],
)
def test_benchmark_scripts_train_and_print_their_figures(script, arguments, line):
    """The whole-process yardsticks of benchmarks/README.md run, learn (chance is 0.1) and print one line."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(line, done.stdout.strip())
    assert match, done.stdout
    assert float(match[1]) > 0.3


def test_bench_refuses_a_json_file_in_a_missing_folder(run_cli, tmp_path):
    result = run_cli("bench", "--limit", "300", "--json", tmp_path / "missing" / "bench.json")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("cnnlab: error: --json ") and result.err.count("\n") == 1


def test_bench_refuses_a_model_that_is_not_in_the_registry(run_cli):
    result = run_cli("bench", "--model", "conv(8,3)-flatten-dense(10)", "--limit", "300")
    assert result.code == 1 and "not a registry model" in result.err


def test_tune_cpu_sets_the_threads():
    from cnnlab.engine.devices import tune_cpu

    before = torch.get_num_threads()
    try:
        tune_cpu(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
