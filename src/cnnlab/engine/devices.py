"""Where and at what precision a model runs: the device, the CPU threads and allocator, and autocast."""

from __future__ import annotations

import ctypes

import torch

from cnnlab.errors import CnnlabError


def resolve_device(name: str) -> torch.device:
    """'auto' (a CUDA GPU when torch sees one, else the CPU), 'cpu' or 'cuda'."""
    if name == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str = "auto"):
    """The context that runs a forward pass at ``precision`` (``cnnlab.names.PRECISIONS``).

    mixed_bfloat16: bfloat16 matrix products, float32 weights; auto: mixed on a GPU, float32 elsewhere.
    """
    mixed = precision == "mixed_bfloat16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed)


def cpu_vendor() -> str:
    """The processor's maker as it reports itself ('GenuineIntel', 'AuthenticAMD'), '' where /proc does not say."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def tune_cpu(threads: int) -> None:
    """Run torch on ``threads`` threads and keep freed memory in the process for the next step.

    glibc gives a freed block above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) back to
    the kernel, so every step maps its activations afresh and pays a page fault per 4 KiB page: for the
    course's CNN about 3,600 faults and 7 ms of kernel time per step (measured on one thread, where the
    whole step takes 17 ms). Raising the mmap and trim thresholds to 1 GiB keeps those blocks for reuse.
    Other C libraries (macOS, musl) are left as they are.
    """
    torch.set_num_threads(threads)
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)
