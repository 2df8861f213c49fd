"""The engine computes what the plain model computes: the compiled kernels give torch's numbers (first convolution +
max-pool, RMSprop) and dropout's distribution, and large Dense layers through oneDNN give torch.mm's."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cnnlab.engine.accelerate as accelerate_module
from cnnlab.data.registry import load_dataset
from cnnlab.engine import devices, kernels
from cnnlab.engine.accelerate import FastModel, HashedDropout, OnePassRMSprop, accelerate, conv_pool_for, plan
from cnnlab.nn.inputs import as_model_input
from cnnlab.nn.optimizers import KerasRMSprop
from cnnlab.nn.registry import create_model
from cnnlab.nn.specs import model_from_spec, parse_spec_line

# Without the compiled module only the first test below fails, and says why; the rest have nothing to compare.
needs_kernels = pytest.mark.skipif(kernels.WHY_OFF is not None, reason=f"compiled kernels {kernels.status()}")
# the fused convolution's code for each vector width the processor has (AVX-512 processors run both)
vector_widths = pytest.mark.parametrize(
    "bits",
    [
        pytest.param(bits, marks=pytest.mark.skipif(kernels.VECTOR_BITS < bits, reason=f"no {bits}-bit vectors here"))
        for bits in (512, 256)
    ],
)


def _model(spec_line: str):
    torch.manual_seed(0)
    model = model_from_spec(parse_spec_line(spec_line))
    for layer in model.layers:  # non-zero biases, so that adding them after the max is tested too
        if getattr(layer, "conv", None) is not None and layer.conv.bias is not None:
            torch.nn.init.uniform_(layer.conv.bias, -0.1, 0.1)
    return model.to(memory_format=torch.channels_last)


def _images(model, count=6, seed=1):
    height, width, channels = model.input_shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(count, channels, height, width, generator=generator)
    x[0] = 0.0  # a blank image: four equal candidates in every window, the first must win
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(os.environ.get("CNNLAB_KERNELS") == "off", reason="switched off by CNNLAB_KERNELS=off")
def test_the_kernels_are_built_by_the_setup():
    assert kernels.WHY_OFF is None, f"{kernels.status()} (scripts/setup.sh builds them with the C++ compiler)"


@needs_kernels
@pytest.mark.skipif(platform.machine() != "x86_64", reason="vector code for x86-64 only")
def test_the_fused_convolution_uses_the_widest_vectors_the_processor_has():
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE).group(1).split())
    expected = (
        512
        if {"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
        else (256 if {"avx2", "fma"} <= flags else 0)
    )
    assert kernels.VECTOR_BITS == expected
    assert kernels.status() == (
        f"on ({expected}-bit vectors)" if expected else "on (no fused convolution: no AVX2 on this processor)"
    )


@needs_kernels
@pytest.mark.parametrize(
    "spec",
    [
        "input(28,28,1)-conv(32,3)-maxpool(2)-relu-flatten-dense(10)",  # the course's CNN
        "input(28,28,1)-conv(32,3,relu)-maxpool(2)-conv(8,3)-flatten-dense(10)",  # cnn2's first block
        "input(28,28,1)-conv(16,5)-maxpool(2)-batchnorm-relu-flatten-dense(10)",  # mnist-fast: no ReLU fused
        "input(29,30,3)-conv(24,3x2)-maxpool(2)-flatten-dense(5)",  # colour, odd sizes: the pool drops a row
        "input(12,12,2)-conv(64,3,use_bias=false)-maxpool(2)-relu-flatten-dense(3)",
        "input(10,10,1)-conv(8,1)-maxpool(2)-flatten-dense(3)",
        "input(10,10,1)-conv(48,3)-maxpool(2)-flatten-dense(3)",
    ],
)
@vector_widths
def test_fused_convolution_and_pool_match_torch_forward_and_backward(spec, bits, monkeypatch):
    monkeypatch.setattr(kernels, "VECTOR_BITS", bits)
    model = _model(spec)
    assert conv_pool_for(model.layers) is not None
    fast, x = FastModel(model), _images(model)
    fused = fast(x)
    plain = model(x)  # torch's operators only: the textbook model
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)

    gradients = []
    for forward in (fast, model):
        model.zero_grad(set_to_none=True)
        (forward(x) * torch.linspace(-1, 1, fused.shape[1])).sum().backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    for ours, torchs in zip(*gradients):
        torch.testing.assert_close(ours, torchs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        "input(28,28,1)-conv(32,3,same)-maxpool(2)-flatten-dense(10)",  # padding
        "input(28,28,1)-conv(32,3,strides=2)-maxpool(2)-flatten-dense(10)",
        "input(28,28,1)-conv(32,3)-maxpool(3)-flatten-dense(10)",
        "input(28,28,1)-conv(32,3)-maxpool(2,strides=1)-flatten-dense(10)",
        "input(28,28,1)-conv(12,3)-maxpool(2)-flatten-dense(10)",  # no vector code for 12 filters
        "input(28,28,1)-conv(32,3,tanh)-maxpool(2)-flatten-dense(10)",
        "input(28,28,1)-conv(32,3)-batchnorm-maxpool(2)-flatten-dense(10)",
        "input(28,28,8)-conv(32,3)-maxpool(2)-flatten-dense(10)",  # 72 taps: a deep layer's job for oneDNN
        "input(28,28,1)-conv(8,3)-conv(32,3)-maxpool(2)-flatten-dense(10)",  # not the first layer
    ],
)
def test_other_layer_patterns_keep_torchs_operators(spec):
    assert conv_pool_for(_model(spec).layers) is None


@needs_kernels
@pytest.mark.parametrize(
    "spec",
    [
        "input(28,28,1)-conv(32,3,relu)-maxpool(2)-conv(64,3,relu)-maxpool(2)-flatten-dense(10)",  # cnn2: 11×11, odd
        "input(14,14,3)-conv(8,3,same,relu)-conv(16,3,relu)-maxpool(2)-flatten-dense(4)",  # cnn-deep's, colour
        "input(12,13,1)-conv(12,3)-maxpool(2)-relu-flatten-dense(3)",  # ReLU after the pool; 10×11
        "input(17,9,2)-conv(24,2,same,relu)-maxpool(2)-flatten-dense(3)",  # asymmetric 'same' padding
    ],
)
def test_relu_and_pool_after_a_deeper_convolution_match_torch_forward_and_backward(spec):
    model = _model(spec)
    assert "ConvReluPool" in [type(step).__name__ for step in plan(model.layers).values()]
    x = _images(model).requires_grad_()  # its gradient too: this speed-up passes one back
    x.detach()[1, :, :3] = -1.0  # whole windows below zero: no gradient passes
    reference = x.detach().clone().requires_grad_()
    fast, plain = FastModel(model)(x), model(reference)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    gradients = []
    for out in (fast, plain):
        model.zero_grad(set_to_none=True)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    for ours, torchs in zip(*gradients):
        torch.testing.assert_close(ours, torchs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x.grad, reference.grad, rtol=1e-4, atol=1e-6)


@needs_kernels
def test_relu_pool_ties_go_to_the_first_candidate_as_in_torch():
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 2.0, 0.0]], [[-1.0, -1.0, 5.0], [-1.0, -1.0, 5.0]]]])  # (1, 2, 2, 3)
    x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).requires_grad_()  # (1, 3, 2, 2)
    reference = x.detach().clone().requires_grad_()
    grad = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    kernels.relu_pool(x, relu=True).backward(grad)
    F.max_pool2d(reference.relu(), 2).backward(grad)
    torch.testing.assert_close(x.grad, reference.grad)


@needs_kernels
def test_an_input_that_needs_a_gradient_takes_torchs_path():
    model = _model("input(28,28,1)-conv(32,3)-maxpool(2)-relu-flatten-dense(10)")
    x = _images(model).requires_grad_()
    FastModel(model)(x)[:, 3].sum().backward()  # saliency maps differentiate the input
    reference = x.detach().clone().requires_grad_()
    model(reference)[:, 3].sum().backward()
    torch.testing.assert_close(x.grad, reference.grad)


@needs_kernels
def test_prediction_under_inference_mode_matches_torch():
    model = create_model("cnn").to(memory_format=torch.channels_last)
    x = _images(model, count=300)
    with torch.inference_mode():
        torch.testing.assert_close(FastModel(model)(x), model(x), rtol=1e-5, atol=1e-5)


def _rmsprop_run(optimizer_class, weight_decay: float) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("cnn").to(memory_format=torch.channels_last)  # a channels_last 4-D weight too
    optimizer = optimizer_class(model.parameters(), lr=0.01, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=generator).contiguous(
                memory_format=torch.channels_last if p.dim() == 4 else torch.contiguous_format
            )
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@needs_kernels
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_rmsprop_kernel_updates_as_the_foreach_path_does(weight_decay):
    for kernel, foreach in zip(_rmsprop_run(OnePassRMSprop, weight_decay), _rmsprop_run(KerasRMSprop, weight_decay)):
        torch.testing.assert_close(kernel, foreach, rtol=1e-6, atol=1e-7)


@needs_kernels
@pytest.mark.skipif(platform.machine() != "x86_64", reason="denormals are flushed on x86 only")
def test_rmsprop_kernel_reads_denormal_velocities_as_zero_and_leaves_the_weights_as_with_zeros():
    generator = torch.Generator().manual_seed(5)
    weight = torch.randn(4096, generator=generator) * 0.05
    grad = torch.randn(4096, generator=generator) * 1e-3
    grad[::2] = 0.0  # weights whose gradient is zero in this batch: their velocity only shrinks
    denormal = torch.full((4096,), 1e-39)  # below float32's smallest normal, 1.18e-38
    assert bool((denormal > 0).all()) and float(denormal[0]) < torch.finfo(torch.float32).tiny
    results = {}
    for name, velocity in (("denormal", denormal.clone()), ("zero", torch.zeros(4096))):
        updated = weight.clone()
        kernels.rmsprop_step([updated], [grad], [velocity], 0.001, 0.9, 1e-7, 0.0)
        results[name] = (updated, velocity)
    assert torch.equal(results["denormal"][0], results["zero"][0])  # bit for bit
    assert torch.equal(results["denormal"][1][::2], torch.zeros(2048))  # 0.9 · 1e-39 is stored as zero
    assert torch.equal(results["denormal"][1], results["zero"][1])
    # 4,096 values run on this thread alone, so its control register must be back as it was: torch's own
    # operators after the kernel still keep denormals (the flush is for the kernel's pass only)
    assert float(denormal[0] * 0.9) > 0


@needs_kernels
def test_rmsprop_kernel_is_not_used_for_mismatched_layouts():
    weight = torch.zeros(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    assert kernels.rmsprop_applies([weight], [weight.clone()], [weight.clone()])
    assert not kernels.rmsprop_applies([weight], [torch.zeros(4, 3, 2, 2)], [weight.clone()])  # strides differ
    assert not kernels.rmsprop_applies([weight], [weight.clone()], [torch.zeros(4, 3, 2, 2)])  # a loaded velocity
    assert not kernels.rmsprop_applies([weight.double()], [weight.double()], [weight.double()])


@pytest.mark.slow
@needs_kernels
def test_the_kernels_can_be_switched_off_for_comparisons():
    code = (
        "from cnnlab.engine import accelerate, kernels; from cnnlab.nn.registry import create_model; "
        "m = create_model('cnn-dropout'); "
        "print(kernels.status(), [type(s).__name__ for s in accelerate.plan(m.layers).values()])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CNNLAB_KERNELS": "off"},
    )
    dense = ["OneDnnDense"] if accelerate_module.ONEDNN_DENSE_DETOUR else []  # no compiled kernel: stays on
    assert result.stdout.strip() == f"off: switched off by CNNLAB_KERNELS=off {dense}", result.stderr


def _course_steps(engine: bool) -> list[float]:
    torch.manual_seed(0)
    model = create_model("cnn").to(memory_format=torch.channels_last)
    optimizer = KerasRMSprop(model.parameters())
    net, optimizer = accelerate(model, optimizer) if engine else (model, optimizer)
    assert isinstance(optimizer, OnePassRMSprop) == engine
    digits = load_dataset("mnist")
    x, y = as_model_input(torch.as_tensor(digits.x_train[:128])), torch.as_tensor(digits.y_train[:128])
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow
@needs_kernels
def test_course_steps_on_the_engine_lower_the_loss_as_plain_steps_do():
    with_kernels, without = _course_steps(True), _course_steps(False)
    assert with_kernels[-1] < with_kernels[0] / 4
    assert with_kernels == pytest.approx(without, rel=1e-4)


@needs_kernels
@pytest.mark.parametrize("rate", [0.1, 0.4, 0.75])
def test_dropout_keeps_each_value_with_probability_one_minus_rate_and_scales_it(rate):
    torch.manual_seed(0)
    x = torch.rand(128, 5408) + 0.5  # never 0: a 0 in the output means dropped
    y = kernels.dropout(x, rate)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - rate)) < 0.005  # 692,224 draws: 5 standard deviations at most
    torch.testing.assert_close(y[kept], x[kept] / (1 - rate))
    pairs = torch.stack([kept[:, :-1].flatten(), kept[:, 1:].flatten()]).float()
    assert abs(torch.corrcoef(pairs)[0, 1].item()) < 0.01  # neighbours decide independently
    again = kernels.dropout(x, rate) != 0
    assert 0.4 < (again == kept).float().mean().item() < 1.0  # a fresh mask each call


@needs_kernels
def test_dropout_follows_torchs_seed_and_sends_gradients_through_the_kept_values():
    x = torch.randn(4, 8, 6, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.manual_seed(7)
    y = kernels.dropout(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(kernels.dropout(x, 0.5), y)
    assert y.is_contiguous(memory_format=torch.channels_last)
    gradient = torch.randn(4, 8, 6, 5)
    y.backward(gradient)
    torch.testing.assert_close(x.grad, gradient * (y != 0) * 2.0)


def test_dropout_on_the_engine_uses_torch_where_the_kernel_does_not_apply():
    model = model_from_spec({"input_shape": [6], "layers": [{"type": "Dropout", "rate": 0.5}]}).double()
    fast, x = FastModel(model), torch.ones(64, 6, dtype=torch.float64)
    assert not HashedDropout(model.layers[0]).applies(x)
    assert set(fast(x).unique().tolist()) <= {0.0, 2.0}  # F.dropout, in double precision
    fast.eval()
    assert torch.equal(fast(x), x)


def test_large_dense_layers_through_onednn_compute_what_linear_computes(monkeypatch):
    """A Dense of ONEDNN_DENSE_MIN_INPUTS inputs and WEIGHTS on runs as a whole-input convolution: same numbers."""
    monkeypatch.setattr(accelerate_module, "ONEDNN_DENSE_DETOUR", True)  # as on a processor that is not Intel's
    torch.manual_seed(0)
    model = model_from_spec({"input_shape": [1200], "layers": [{"type": "Dense", "units": 128, "activation": "relu"}]})
    layer = model.layers[0]
    torch.nn.init.uniform_(layer.linear.bias, -0.1, 0.1)
    fast = FastModel(model)
    assert [type(step).__name__ for step in plan(model.layers).values()] == ["OneDnnDense"]
    x = torch.randn(16, 1200, requires_grad=True)
    reference_x = x.detach().clone().requires_grad_()
    output = fast(x)
    reference = model(reference_x)  # relu(x W^T + b) by torch.mm
    torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    output.square().sum().backward()
    weight_grad, bias_grad = layer.linear.weight.grad.clone(), layer.linear.bias.grad.clone()
    layer.zero_grad()
    reference.square().sum().backward()
    torch.testing.assert_close(x.grad, reference_x.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(weight_grad, layer.linear.weight.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(bias_grad, layer.linear.bias.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("detour", [True, False], ids=["amd", "intel"])
def test_the_mlps_dense_layers_stay_with_torch_mm_and_flattened_maps_go_to_onednn_but_on_intel(monkeypatch, detour):
    monkeypatch.setattr(accelerate_module, "ONEDNN_DENSE_DETOUR", detour)
    steps = {
        name: [type(step).__name__ for step in plan(create_model(name).layers).values()] for name in ("mlp", "cnn2")
    }
    assert steps == {"mlp": [], "cnn2": ["ConvPool", "ConvReluPool", *(["OneDnnDense"] if detour else [])]}


def test_the_detour_through_onednn_is_for_processors_other_than_intels():
    assert accelerate_module.ONEDNN_DENSE_DETOUR == (devices.cpu_vendor() != "GenuineIntel")


def test_the_engine_says_what_applies_to_a_model():
    from cnnlab.engine.accelerate import format_speedups, speedups

    text = format_speedups(speedups(create_model("cnn-dropout")))
    dense = "Dense with ≥ 1,024 inputs and ≥ 100,000 weights through oneDNN"
    if accelerate_module.ONEDNN_DENSE_DETOUR:
        assert f"on   {dense} (CPU tensors; in this model: dense)" in text
    else:
        assert f"off  {dense} (off: MKL's torch.mm is faster on Intel processors)" in text
    if kernels.WHY_OFF is None and kernels.VECTOR_BITS:
        assert (
            f"on   first Conv2D + 2×2 MaxPool2D fused ({kernels.VECTOR_BITS}-bit vectors; in this model: conv2d)"
            in text
        )
        assert "on   Dropout masks from a parallel hash (in this model: dropout, dropout_1)" in text
