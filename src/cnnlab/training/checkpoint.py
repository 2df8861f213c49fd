"""Training checkpoints that survive interruption, without pickles.

A checkpoint is one file, ``checkpoint.safetensors`` in the run folder. Its tensors are the model's
weights, the optimizer's moments and each process's random-generator states; its JSON metadata says
where training stands (epoch, step, history, optimizer settings). It is written to a temporary file,
fsync'd, and renamed over the previous one. A rename is atomic, so a process killed at any moment,
even by SIGKILL in the middle of a save, leaves either the previous checkpoint or the new one, whole.
(Two files renamed one after the other cannot promise that: a kill between the two renames leaves a
new half beside an old half, and the previous checkpoint is lost.)

Under torch.distributed every process calls ``save_checkpoint`` and ``load_checkpoint``: the random
states of all processes are gathered into the file that process 0 writes, and on resume process 0
reads the file and sends its bytes to the others, so all of them restore the same state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError
from cnnlab.files import write_atomic
from cnnlab.training import distributed

FILE = "checkpoint.safetensors"
FORMAT = "cnnlab.checkpoint"  # the metadata key holding the JSON record
VERSION = 1


@dataclass
class Progress:
    """Where training stands: the next step to run and what the current epoch has summed so far."""

    epoch: int = 0  # epochs fully done
    step: int = 0  # steps done in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # sum of per-sample training loss in the current epoch (over all processes)
    correct: float = 0  # sum of per-sample accuracies in the current epoch (a count for class labels)
    seen: int = 0
    seconds: float = 0.0  # time spent in the current epoch before an interruption
    history: list[dict] = field(default_factory=list)

    def next_epoch(self) -> None:
        """The current epoch is done: the next starts at its first step, with nothing summed yet."""
        self.epoch, self.step, self.loss_sum, self.correct, self.seen, self.seconds = self.epoch + 1, 0, 0.0, 0, 0, 0.0


def _optimizer_tensors(optimizer) -> tuple[dict, dict]:
    """An optimizer's state split into tensors (moments, step counts) and JSON (settings, plain numbers)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, slots in state["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{slot}"] = value
            else:
                scalars[f"{param_id}.{slot}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer, tensors: dict, settings: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, slot = key.split(".", 2)
            state.setdefault(int(param_id), {})[slot] = value
    for key, value in settings["scalars"].items():
        param_id, slot = key.split(".", 1)
        state.setdefault(int(param_id), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": settings["param_groups"]})


def _random_states() -> dict[str, torch.Tensor]:
    """The generators training draws from in this process: torch's (dropout) and, on a GPU, CUDA's.

    The shuffle needs none: each epoch's order is derived from (seed, epoch).
    """
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def save_checkpoint(run: Path, model, optimizer, progress: Progress) -> None:
    """Write the whole training state to ``run/checkpoint.safetensors``, replacing the previous one at once."""
    from safetensors.torch import save as tensors_to_bytes

    tensors = {
        f"rng.{name}.{rank}": state
        for name, local in _random_states().items()
        for rank, state in enumerate(distributed.gather(local))
    }
    if not distributed.is_main():
        return
    tensors.update({f"model.{key}": value.detach().cpu().contiguous() for key, value in model.state_dict().items()})
    optimizer_tensors, optimizer_settings = _optimizer_tensors(optimizer)
    tensors.update({key: value.detach().cpu().contiguous() for key, value in optimizer_tensors.items()})
    record = {
        "version": VERSION,
        "world_size": distributed.world().size,
        "progress": progress.__dict__,
        "optimizer": optimizer_settings,
    }
    path = Path(run) / FILE
    for stale in path.parent.glob(f".{FILE}.*.tmp"):  # left by a process killed while it was saving
        stale.unlink(missing_ok=True)
    write_atomic(path, tensors_to_bytes(tensors, metadata={FORMAT: json.dumps(record)}))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CnnlabError(
            f"{path}: no checkpoint to resume from (the run stopped before its first save); start the run again"
        ) from None
    except OSError as problem:
        raise CnnlabError(f"{path}: cannot be read ({problem.strerror}); check the run folder") from None


def _parse(payload: bytes, path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(record, tensors) from a checkpoint's bytes; anything else is refused as a whole, unread."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        header_length = int.from_bytes(payload[:8], "little")
        header = json.loads(payload[8 : 8 + header_length])
        record = json.loads(header["__metadata__"][FORMAT])
        tensors = load(payload)
    except (ValueError, KeyError, TypeError, SafetensorError):
        raise CnnlabError(
            f"{path}: not a readable cnnlab checkpoint (damaged, or not made by cnnlab train); start a new run"
        ) from None
    if record.get("version") != VERSION:
        raise CnnlabError(
            f"{path}: checkpoint version {record.get('version')} is not supported "
            f"(this cnnlab reads version {VERSION}); start a new run"
        )
    return record, tensors


def load_checkpoint(run: Path, model, optimizer) -> Progress:
    """Restore model, optimizer and this process's random generators from ``run``'s checkpoint."""
    path = Path(run) / FILE
    record, tensors = _parse(distributed.from_main(lambda: _read(path)), path)
    me = distributed.world()
    if record["world_size"] != me.size:
        raise CnnlabError(
            f"{path}: this run was trained by {record['world_size']} process(es), this is {me.size}; "
            f"resume with as many (torchrun --nproc-per-node N, or no torchrun for 1)"
        )
    try:
        model.load_state_dict({key[6:]: value for key, value in tensors.items() if key.startswith("model.")})
        _restore_optimizer(optimizer, tensors, record["optimizer"])
    except (RuntimeError, ValueError, KeyError) as problem:
        reason = str(problem).strip().splitlines()[0]
        raise CnnlabError(f"{path}: does not fit the run's model and optimizer ({reason}); start a new run") from None
    torch.set_rng_state(tensors[f"rng.torch.{me.rank}"])
    if f"rng.cuda.{me.rank}" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{me.rank}"])
    return Progress(**record["progress"])
