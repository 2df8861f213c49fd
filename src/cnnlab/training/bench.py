"""Speed measurements: the course's fit on cnnlab's engine, against the machine's floor and a textbook loop.

``run_bench`` times the course's ``model.fit`` (2 epochs, batch 128, RMSprop, validation split 0.3)
on the training engine of ``cnnlab.training`` and sets it against two yardsticks measured in the same
run:

* the floor: the training FLOPs per sample (3 × 2 × the model's multiply-adds: a forward pass,
  and a backward pass that costs about two) over the fastest rate at which this machine multiplies
  float32 matrices (MKL's ``torch.mm`` or oneDNN's, timed); no engine can train an epoch faster than that;
* the textbook loop (``--compare textbook``): the same layers in a plain ``nn.Sequential``, NCHW
  tensors, a ``TensorDataset`` and a shuffling ``DataLoader``, torch's ``RMSprop`` with Keras's
  hyper-parameters, validation in ``DataLoader`` batches. It runs in a child process of its own, so
  that none of the engine's process-wide settings (threads, allocator) helps it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime

import torch

from cnnlab import cores
from cnnlab.engine import kernels
from cnnlab.errors import CnnlabError

COURSE_FIT = {"epochs": 2, "batch_size": 128, "optimizer": "rmsprop", "validation_split": 0.3}
GEMM_SIZE = 1024  # square float32 matrices: large enough to run near the machine's peak rate


def machine() -> str:
    """The processor's name and the cores this process may use, e.g. 'AMD EPYC, 2 cores'."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    ``ru_maxrss`` (KiB on Linux, bytes on macOS), except where Linux's /proc gives the peak of this
    program alone (VmHWM): Linux carries the parent's peak over into ``ru_maxrss`` across fork and exec,
    so a child started by a large process would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def gemm_rates(size: int = GEMM_SIZE, repeats: int = 10) -> dict[str, float]:
    """float32 FLOP/s of a (size × size) matrix product, the best of ``repeats`` timings, by each library torch
    calls: MKL (``torch.mm``) and oneDNN (the product as a whole-input convolution, as cnnlab's large Dense layers
    run it). On AMD processors MKL takes its AVX2 path and oneDNN its AVX-512 one, so the two can differ by 2x."""
    from cnnlab.engine.accelerate import dense_by_onednn

    left, right = torch.randn(size, size), torch.randn(size, size)
    product = torch.empty(size, size)
    products = {
        "torch.mm": lambda: torch.mm(left, right, out=product),
        "onednn": lambda: dense_by_onednn(left, right, None),
    }
    rates = {}
    with torch.no_grad():
        for library, multiply in products.items():
            timings = []
            for _ in range(repeats + 2):
                started = time.perf_counter()
                multiply()
                timings.append(time.perf_counter() - started)
            rates[library] = 2 * size**3 / min(timings[2:])  # the first two warm the caches and the thread pool up
    return rates


def training_flops_per_sample(model) -> int:
    """3 × 2 × multiply-adds: a multiply-add is 2 FLOPs, and the backward pass costs about two forward passes."""
    from cnnlab.nn.summary import summarize

    return 3 * 2 * summarize(model).mult_adds


def _figures(
    seconds: float, epochs: int, samples: int, floor_per_epoch: float, val_accuracy: float, peak_mb: float
) -> dict:
    return {
        "seconds": round(seconds, 4),
        "seconds_per_epoch": round(seconds / epochs, 4),
        "samples_per_s": round(samples * epochs / seconds, 1),
        "floor_ratio": round(seconds / epochs / floor_per_epoch, 2),
        "val_accuracy": round(val_accuracy, 4),
        "peak_rss_mb": round(peak_mb, 1),
    }


def _course_data(model_name: str, limit: int | None):
    """The registry model, freshly initialised, and its data set split as the course's fit splits it."""
    from cnnlab.data.registry import load_dataset
    from cnnlab.names import MODEL_CARDS
    from cnnlab.nn.registry import create_model
    from cnnlab.training.loop import split_validation

    if model_name not in MODEL_CARDS:
        raise CnnlabError(f"--model {model_name}: not a registry model; choose one of {', '.join(MODEL_CARDS)}")
    dataset = load_dataset(MODEL_CARDS[model_name].dataset)
    train_data, validation = split_validation(
        dataset.x_train[:limit], dataset.y_train[:limit], COURSE_FIT["validation_split"]
    )
    return create_model(model_name), train_data, validation


def engine_fit(model_name: str = "cnn", epochs: int = 2, limit: int | None = None, seed: int = 0) -> dict:
    """Time ``cnnlab.fit`` on the course's settings in this process: (seconds, samples, val_accuracy)."""
    from cnnlab.engine.devices import tune_cpu
    from cnnlab.nn.optimizers import make_optimizer
    from cnnlab.training.config import FitConfig
    from cnnlab.training.loop import fit
    from cnnlab.training.train import seed_everything

    tune_cpu(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    seed_everything(seed)
    model, train_data, validation = _course_data(model_name, limit)
    config = FitConfig(**{**COURSE_FIT, "epochs": epochs, "validation_split": 0.0}, seed=seed, device="cpu")
    # made before the clock starts, as the textbook loop's is
    optimizer = make_optimizer(model.to(memory_format=torch.channels_last), config)
    started = time.perf_counter()
    history = fit(model, train_data, validation, config, optimizer=optimizer, verbose=False)
    return {
        "seconds": time.perf_counter() - started,
        "samples": len(train_data[0]),
        "val_accuracy": history[-1]["val_accuracy"],
    }


def textbook_fit(model_name: str = "cnn", epochs: int = 2, limit: int | None = None, seed: int = 0) -> dict:
    """The same fit as a PyTorch tutorial writes it; see the module's docstring."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    model, (x_train, y_train), (x_val, y_val) = _course_data(model_name, limit)
    network = nn.Sequential(*model.layers)  # NCHW tensors, the framework's default layout

    def tensors(images, labels):  # uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]
        return TensorDataset(
            torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2).contiguous() / 255.0, torch.tensor(labels)
        )

    train_loader = DataLoader(tensors(x_train, y_train), batch_size=COURSE_FIT["batch_size"], shuffle=True)
    val_loader = DataLoader(tensors(x_val, y_val), batch_size=COURSE_FIT["batch_size"])
    optimizer = torch.optim.RMSprop(network.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)  # Keras's rho, epsilon
    loss_function = nn.CrossEntropyLoss()
    started = time.perf_counter()
    for _ in range(epochs):
        network.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = loss_function(network(images), labels)
            loss.backward()
            optimizer.step()
        network.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += (network(images).argmax(1) == labels).sum().item()
    return {"seconds": time.perf_counter() - started, "samples": len(x_train), "val_accuracy": correct / len(x_val)}


def _textbook_in_child(model_name: str, epochs: int, limit: int | None) -> dict:
    """Run ``textbook_fit`` in a fresh Python process; its result and its own peak RSS."""
    command = [sys.executable, "-m", "cnnlab.training.bench", "textbook", model_name, str(epochs), str(limit or 0)]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise CnnlabError(f"--compare textbook: the textbook loop failed: {finished.stderr.strip()[-500:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def run_bench(
    model_name: str = "cnn", compare: str | None = None, epochs: int = COURSE_FIT["epochs"], limit: int | None = None
) -> dict:
    """Time the course's fit on the engine (and the textbook loop); every figure as a JSON-ready dict."""
    from cnnlab.engine.accelerate import speedups
    from cnnlab.nn.registry import create_model
    from cnnlab.nn.summary import summarize

    if compare not in (None, "textbook"):
        raise CnnlabError(f"--compare: only 'textbook' can be compared. Received: {compare!r}")
    engine = engine_fit(model_name, epochs, limit)
    model = create_model(model_name)
    mult_adds, flops = summarize(model).mult_adds, training_flops_per_sample(model)
    rates = gemm_rates()
    rate = max(rates.values())
    floor_per_epoch = engine["samples"] * flops / rate
    figures = {
        "model": model_name,
        "epochs": epochs,
        "batch_size": COURSE_FIT["batch_size"],
        "optimizer": COURSE_FIT["optimizer"],
        "validation_split": COURSE_FIT["validation_split"],
        "train_samples": engine["samples"],
        "threads": torch.get_num_threads(),
        "mult_adds_per_sample": mult_adds,
        "training_flops_per_sample": flops,
        "gemm_flops_per_s": round(rate),
        "gemm_flops_per_s_by_library": {k: round(v) for k, v in rates.items()},
        "gemm_size": GEMM_SIZE,
        "floor_seconds_per_epoch": round(floor_per_epoch, 5),
        "engine": _figures(
            engine["seconds"], epochs, engine["samples"], floor_per_epoch, engine["val_accuracy"], peak_rss_mb()
        ),
    }
    if compare == "textbook":
        textbook = _textbook_in_child(model_name, epochs, limit)
        figures["textbook"] = _figures(
            textbook["seconds"],
            epochs,
            textbook["samples"],
            floor_per_epoch,
            textbook["val_accuracy"],
            textbook["peak_rss_mb"],
        )
        figures["textbook_over_engine"] = round(textbook["seconds"] / engine["seconds"], 2)
    figures.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        torch=torch.__version__,
        load_average=round(os.getloadavg()[0], 2),
        compiled_kernels=kernels.status(),
        threads_wait=cores.wait_policy(),
        speedups=[asdict(speedup) for speedup in speedups(model)],
    )
    return figures


def format_bench(figures: dict) -> str:
    """The figures as a small table, one row per loop, and the floor they are measured against."""
    epochs = f"{figures['epochs']} epoch{'s' if figures['epochs'] != 1 else ''}"
    lines = [
        f"course fit: {figures['model']}, {epochs} of {figures['train_samples']:,} samples "
        f"(batch {figures['batch_size']}, {figures['optimizer']}, validation split "
        f"{figures['validation_split']}), {figures['threads']} threads",
        f"{'':14} {'s/epoch':>8} {'samples/s':>10} {'× floor':>8} {'val acc':>8} {'peak RSS':>10}",
    ]
    for label, key in (("cnnlab engine", "engine"), ("textbook loop", "textbook")):
        if key in figures:
            row = figures[key]
            lines.append(
                f"{label:14} {row['seconds_per_epoch']:8.2f} {row['samples_per_s']:10,.0f} "
                f"{row['floor_ratio']:8.1f} {row['val_accuracy']:8.4f} {row['peak_rss_mb']:7.0f} MB"
            )
    libraries = " and ".join(
        f"{name} {rate / 1e9:.0f}" for name, rate in figures["gemm_flops_per_s_by_library"].items()
    )
    lines.append(
        f"floor: {figures['training_flops_per_sample'] / 1e6:.2f} MFLOP/sample (3 × 2 × "
        f"{figures['mult_adds_per_sample']:,} mult-adds) at {figures['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s "
        f"(the faster of {libraries}, {figures['gemm_size']}×{figures['gemm_size']}) = "
        f"{figures['floor_seconds_per_epoch']:.2f} s/epoch"
    )
    if "textbook_over_engine" in figures:
        lines.append(f"textbook loop / cnnlab engine: {figures['textbook_over_engine']:.1f}× the time")
    lines.append(
        f"{figures['machine']}, torch {figures['torch']}, compiled kernels {figures['compiled_kernels']}, "
        f"load average {figures['load_average']}, {figures['date']}"
    )
    lines.append(f"threads between operators: {figures['threads_wait']}")
    from cnnlab.engine.accelerate import Speedup, format_speedups

    lines.append("engine speed-ups on this processor:")
    lines.append(format_speedups([Speedup(**speedup) for speedup in figures["speedups"]]))
    return "\n".join(lines)


# the child process of --compare textbook: python -m cnnlab.training.bench textbook MODEL EPOCHS LIMIT
if __name__ == "__main__":
    _, _, model_arg, epochs_arg, limit_arg = sys.argv
    result = textbook_fit(model_arg, int(epochs_arg), int(limit_arg) or None)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
