"""Data-parallel training: two processes on this machine (gloo), launched by torchrun like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.training.config import TrainConfig
from cnnlab.training.train import train

pytestmark = pytest.mark.slow  # torchrun starts processes that train

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # the torchrun command, from this Python
TRAIN_ARGS = ["--limit", "6000", "--epochs", "2", "--batch-size", "64", "--device", "cpu"]  # 66 steps per epoch

# The real command line, plus one thing only a test needs: every process keeps its own final weights.
WORKER = textwrap.dedent("""
    import sys
    from safetensors.torch import save_file
    import cnnlab.training.train
    from cnnlab.cli import main
    from cnnlab.training.distributed import world

    train = cnnlab.training.train.train

    def train_and_keep_weights(*args, **kwargs):
        result = train(*args, **kwargs)
        weights = {key: value.contiguous() for key, value in result.model.state_dict().items()}
        save_file(weights, f"{sys.argv[1]}/rank{world().rank}.safetensors")
        return result

    cnnlab.training.train.train = train_and_keep_weights
    main(sys.argv[2:])
""")


def _torchrun(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """One two-process run of ``cnnlab train`` under torchrun; returns the folder with its output."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "worker.py").write_text(WORKER)
    child = _torchrun(
        str(out / "worker.py"), str(out), "train", *TRAIN_ARGS, "--name", "whole", "--runs-dir", str(out / "runs")
    )
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr
    (out / "stdout.txt").write_text(stdout)
    return out


def test_both_processes_end_with_identical_weights(two_processes):
    rank0, rank1 = (load_file(two_processes / f"rank{rank}.safetensors") for rank in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = load_file(two_processes / "runs" / "whole" / "model.safetensors")
    assert all(torch.equal(saved[key], rank0[key]) for key in rank0)


def test_process_zero_alone_prints_and_writes(two_processes):
    lines = (two_processes / "stdout.txt").read_text().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert sum(line.startswith("test accuracy:") for line in lines) == 1
    assert [run.name for run in (two_processes / "runs").iterdir()] == ["whole"]
    config = json.loads((two_processes / "runs" / "whole" / "config.json").read_text())
    assert (config["processes"], config["threads"]) == (2, max(1, (os.cpu_count() or 1) // 2))


def test_two_processes_learn_as_well_as_one(two_processes, tmp_path):
    single = train(
        TrainConfig(limit=6000, epochs=2, batch_size=64, device="cpu", runs_dir=str(tmp_path)), verbose=False
    )
    double = json.loads((two_processes / "runs" / "whole" / "metrics.json").read_text())["test_accuracy"]
    assert single.test["accuracy"] > 0.85
    # the same optimizer steps on the same batches, split in two: only float rounding differs
    assert abs(double - single.test["accuracy"]) <= 0.01


def test_ctrl_c_saves_and_both_processes_resume_to_the_same_weights(two_processes, tmp_path):
    run = tmp_path / "cut"
    child = _torchrun(
        "-m", "cnnlab", "train", *TRAIN_ARGS, "--name", "cut", "--runs-dir", str(tmp_path), start_new_session=True
    )
    for line in child.stdout:
        if line.startswith("epoch 1/2"):
            os.killpg(child.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches torchrun and every worker
            break
    _, stderr = child.communicate(timeout=300)
    assert child.returncode != 0
    resume_hint = f"resume with: torchrun --nproc-per-node 2 -m cnnlab train --resume {run}"
    assert sum(resume_hint in line for line in stderr.splitlines()) == 1, stderr  # printed by process 0 only

    resumed = _torchrun("-m", "cnnlab", "train", "--resume", str(run), "--device", "cpu")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert (run / "model.safetensors").read_bytes() == (
        two_processes / "runs" / "whole" / "model.safetensors"
    ).read_bytes()


def test_resuming_in_one_process_is_refused(two_processes, run_cli):
    result = run_cli("train", "--resume", two_processes / "runs" / "whole", "--epochs", "3")
    assert result.code == 1
    assert "trained by 2 process(es), this is 1" in result.err
