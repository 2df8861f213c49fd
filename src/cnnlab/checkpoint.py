"""Training checkpoints that survive interruption, without pickles.

A checkpoint is a folder ``checkpoint/`` with two files, each written atomically (temporary file,
fsync, rename): ``state.safetensors`` holds every tensor (model weights, optimizer moments, random
generator states) and ``progress.json`` everything else (epoch, step, history, optimizer settings).
``progress.json`` is renamed last and names the weights it belongs to by their SHA-256, so a
process killed between the two renames leaves a pair that is refused as a whole, and one killed
before them leaves the previous pair untouched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError
from cnnlab.modelio import write_atomic, write_json

FOLDER = "checkpoint"
TENSORS = "state.safetensors"
PROGRESS = "progress.json"


@dataclass
class Progress:
    """Where training stands: the next step to run and what the current epoch has summed so far."""

    epoch: int = 0  # epochs fully done
    step: int = 0  # steps done in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # sum of per-sample training loss in the current epoch
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # time spent in the current epoch before an interruption
    history: list[dict] = field(default_factory=list)


def _optimizer_tensors(optimizer) -> tuple[dict, dict]:
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


def save_checkpoint(run: Path, model, optimizer, progress: Progress, generators: dict) -> None:
    """Write the whole training state; ``generators`` maps a name to a torch.Generator."""
    from safetensors.torch import save as tensors_to_bytes

    folder = Path(run) / FOLDER
    folder.mkdir(exist_ok=True)
    tensors = {f"model.{key}": value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    optimizer_tensors, optimizer_settings = _optimizer_tensors(optimizer)
    tensors.update({key: value.detach().cpu().contiguous() for key, value in optimizer_tensors.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    for name, generator in generators.items():
        tensors[f"rng.{name}"] = generator.get_state()
    payload = tensors_to_bytes(tensors)
    write_atomic(folder / TENSORS, payload)
    write_json(folder / PROGRESS, {"progress": progress.__dict__, "optimizer": optimizer_settings,
                                   "tensors_sha256": hashlib.sha256(payload).hexdigest()})


def load_checkpoint(run: Path, model, optimizer, generators: dict) -> Progress:
    """Restore what ``save_checkpoint`` wrote into the given model, optimizer and generators."""
    from safetensors.torch import load

    folder = Path(run) / FOLDER
    try:
        record = json.loads((folder / PROGRESS).read_text())
        payload = (folder / TENSORS).read_bytes()
    except FileNotFoundError:
        raise CnnlabError(f"{folder}: no checkpoint to resume from; this run saved none before it stopped") from None
    except json.JSONDecodeError:
        raise CnnlabError(f"{folder / PROGRESS}: damaged checkpoint record; start a new run") from None
    if hashlib.sha256(payload).hexdigest() != record.get("tensors_sha256"):
        raise CnnlabError(f"{folder}: {TENSORS} does not match {PROGRESS} (a save was cut short); start a new run")
    tensors = load(payload)
    model.load_state_dict({key[6:]: value for key, value in tensors.items() if key.startswith("model.")})
    _restore_optimizer(optimizer, tensors, record["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng.{name}"])
    return Progress(**record["progress"])
