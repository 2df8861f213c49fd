"""Data-parallel training with torch.distributed: several processes, on one machine or several.

torchrun starts the processes and tells each one who it is through environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Without them cnnlab runs as a
single process and every function here returns at once, so training has one code path.

How the work is split follows Keras's MirroredStrategy: ``--batch-size`` is the *global* batch.
Every process draws the same shuffle (it derives from the seed and the epoch), takes every
world-th sample of each batch, and DistributedDataParallel averages the gradients, so N processes
take the same optimizer steps as one process would, up to float rounding. Process 0 alone prints
and writes the run folder; it reads files for the others (the run's name, a checkpoint) and sends
them the bytes, so the run folder need not be on a disk that every machine sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from cnnlab import cores
from cnnlab.errors import CnnlabError

# How long a process waits for the others in one collective before giving up (torch's default is
# 30 minutes; a peer that died is usually noticed at once by torchrun, this bounds the other cases).
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank among the processes on this machine: picks the GPU
    local_size: int = 1  # processes on this machine: they share its CPU cores


def world() -> World:
    """Read torchrun's environment variables; a plain ``python -m cnnlab`` is a world of one."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    try:
        size = int(os.environ["WORLD_SIZE"])
        return World(
            int(os.environ.get("RANK", 0)),
            size,
            int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("LOCAL_WORLD_SIZE", size)),
        )
    except ValueError:
        raise CnnlabError(
            "RANK, WORLD_SIZE, LOCAL_RANK: not integers; start several processes with torchrun, which sets them"
        ) from None


def is_main() -> bool:
    """True in process 0, the one that prints and writes files (and in a single process)."""
    return world().rank == 0


def launch_command() -> str:
    """How to start this many processes again: ``cnnlab`` alone, or through torchrun."""
    me = world()
    if me.size == 1:
        return "cnnlab"
    nodes = f"--nnodes {me.size // me.local_size} --rdzv-endpoint HOST:PORT " if me.size != me.local_size else ""
    return f"torchrun {nodes}--nproc-per-node {me.local_size} -m cnnlab"


def active() -> bool:
    """True while this process belongs to a process group of several processes."""
    return dist.is_available() and dist.is_initialized()


def threads_per_process() -> int:
    """The machine's cores shared out between the processes torchrun started on it."""
    return cores.threads_per_process(world().local_size)


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join torchrun's process group for the length of a run; yield the device this process uses.

    On GPUs every process on a machine takes its own (cuda:LOCAL_RANK) and the backend is NCCL; on
    CPUs it is gloo. A single process, or one whose caller already joined a group, changes nothing.
    """
    me = world()
    if me.size == 1 or active():
        yield device
        return
    if not dist.is_available():
        raise CnnlabError("WORLD_SIZE: this PyTorch build has no torch.distributed; run a single process")
    if device.type == "cuda":
        device = torch.device("cuda", me.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model to train: wrapped in DistributedDataParallel when several processes train, else itself.

    DDP copies process 0's weights to the others when it wraps the model, and averages the
    gradients over processes during ``backward``.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _collective_device() -> torch.device:
    """NCCL moves only GPU tensors, gloo CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sums over all processes (float64: counts stay exact up to 2**53)."""
    if not active():
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return total.tolist()


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true in any process: how all processes agree to stop at the same step."""
    if not active():
        return flags
    raised = torch.tensor([int(flag) for flag in flags], device=_collective_device())
    dist.all_reduce(raised, op=dist.ReduceOp.MAX)
    return tuple(bool(value) for value in raised.tolist())


def gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """``tensor`` (same shape and dtype in every process) from every process, in rank order, on the CPU."""
    if not active():
        return [tensor]
    local = tensor.to(_collective_device())
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    return [part.cpu() for part in parts]


def from_main(action: Callable[[], str | bytes]) -> str | bytes:
    """Run ``action`` in process 0 only and return its result (text or bytes) in every process.

    A CnnlabError it raises is raised in every process, so none waits for an answer that never comes.
    The bytes travel as a uint8 tensor, never as a pickle.
    """
    if not active():
        return action()
    failed, is_text, payload = False, False, b""
    if is_main():
        try:
            result = action()
            is_text = isinstance(result, str)
            payload = result.encode() if is_text else result
        except CnnlabError as problem:
            failed, payload = True, str(problem).encode()
    device = _collective_device()
    header = torch.tensor([failed, is_text, len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(header, src=0)
    failed, is_text, length = (int(value) for value in header.tolist())
    if is_main():
        data = torch.from_numpy(np.frombuffer(payload, dtype=np.uint8).copy()).to(device)
    else:
        data = torch.empty(length, dtype=torch.uint8, device=device)
    if length:
        dist.broadcast(data, src=0)
    payload = data.cpu().numpy().tobytes()
    if failed:
        raise CnnlabError(payload.decode())
    return payload.decode() if is_text else payload
