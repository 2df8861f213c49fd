"""Checkpoints and resume: an interrupted-and-resumed run ends exactly where an uninterrupted one does,
a kill during a save never costs the previous checkpoint, and one seed fixes the whole history."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cnnlab.data.registry import load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.nn.optimizers import make_optimizer
from cnnlab.nn.registry import create_model
from cnnlab.training.callbacks import Checkpoint, StopOnSignal, TrainingInterrupted
from cnnlab.training.checkpoint import FILE, Progress, load_checkpoint, save_checkpoint
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.loop import fit
from cnnlab.training.train import seed_everything, train


@pytest.fixture(scope="module")
def digits():
    """320 training and 100 validation MNIST digits: 10 steps of 32 per epoch."""
    mnist = load_dataset("mnist")
    return (mnist.x_train[:320], mnist.y_train[:320]), (mnist.x_train[320:420], mnist.y_train[320:420])


class StopAfterSteps(StopOnSignal):
    """StopOnSignal (without its handlers) whose signal arrives once ``steps`` steps are done."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps_left = steps

    def on_train_batch_end(self, batch, logs=None):
        self.steps_left -= 1
        self.raised = self.steps_left <= 0
        super().on_train_batch_end(batch, logs)


def _start(model_name: str, seed: int = 0):
    seed_everything(seed)
    model = create_model(model_name)
    return model, make_optimizer(model, TrainConfig())


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["cnn", "cnn-dropout"])
@pytest.mark.parametrize("stop_after", [4, 10, 13])  # mid-epoch 1, at the end of epoch 1, mid-epoch 2
def test_interrupted_then_resumed_fit_ends_with_the_same_weights(tmp_path, digits, model_name, stop_after):
    config = FitConfig(epochs=2, batch_size=32)
    train_data, validation = digits

    model, optimizer = _start(model_name)
    expected = fit(model, train_data, validation, config, optimizer=optimizer, verbose=False)

    interrupted, optimizer = _start(model_name)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(
            interrupted,
            train_data,
            validation,
            config,
            run=tmp_path,
            optimizer=optimizer,
            callbacks=[Checkpoint(tmp_path), StopAfterSteps(stop_after)],
            verbose=False,
        )
    assert (stop.value.epoch, stop.value.step) == divmod(stop_after, 10)

    resumed, optimizer = _start(model_name, seed=99)  # other initial weights and random state: all must be restored
    progress = load_checkpoint(tmp_path, resumed, optimizer)
    history = fit(
        resumed, train_data, validation, config, run=tmp_path, progress=progress, optimizer=optimizer, verbose=False
    )

    assert _without_seconds(history) == _without_seconds(expected)
    for (name, weight), (_, reference) in zip(resumed.state_dict().items(), model.state_dict().items()):
        assert torch.equal(weight, reference), name


@pytest.mark.slow
def test_the_random_state_matters_for_dropout(tmp_path, digits):
    """Control for the test above: resuming cnn-dropout without restoring torch's generator diverges."""
    config = FitConfig(epochs=1, batch_size=32)
    model, optimizer = _start("cnn-dropout")
    fit(model, *digits, config, optimizer=optimizer, verbose=False)
    interrupted, optimizer = _start("cnn-dropout")
    with pytest.raises(TrainingInterrupted):
        fit(
            interrupted,
            *digits,
            config,
            run=tmp_path,
            optimizer=optimizer,
            callbacks=[Checkpoint(tmp_path), StopAfterSteps(4)],
            verbose=False,
        )
    resumed, optimizer = _start("cnn-dropout")
    progress = load_checkpoint(tmp_path, resumed, optimizer)
    torch.manual_seed(1234)  # forget the restored generator state
    fit(resumed, *digits, config, progress=progress, optimizer=optimizer, verbose=False)
    assert not torch.equal(resumed.layers[-1].linear.weight, model.layers[-1].linear.weight)


@pytest.mark.slow
def test_same_seed_same_history_other_seed_other_history(digits):
    def history(seed: int) -> list[dict]:
        model, optimizer = _start("cnn-dropout", seed)
        return _without_seconds(
            fit(model, *digits, FitConfig(epochs=1, batch_size=32, seed=seed), optimizer=optimizer, verbose=False)
        )

    first = history(3)
    assert history(3) == first
    assert history(4) != first


# --- a real process, a real signal ----------------------------------------------------------------

TRAIN_ARGS = ["--limit", "3000", "--epochs", "3", "--batch-size", "32"]  # 66 steps per epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> bytes:
    runs = tmp_path_factory.mktemp("runs")
    train(TrainConfig(limit=3000, epochs=3, batch_size=32, name="whole", runs_dir=str(runs)), verbose=False)
    return (runs / "whole" / "model.safetensors").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_and_resume_ends_byte_identical(tmp_path, run_cli, uninterrupted, signal_number):
    child = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", *TRAIN_ARGS, "--name", "cut", "--runs-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stdout:  # wait for the first epoch to end: the signal lands in epoch 2 or 3
        if line.startswith("epoch 1/3"):
            child.send_signal(signal_number)
            break
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    last_line = err.strip().splitlines()[-1]
    assert f"resume with: cnnlab train --resume {tmp_path / 'cut'}" in last_line
    assert not (tmp_path / "cut" / "model.safetensors").exists()

    resumed = run_cli("train", "--resume", tmp_path / "cut", "--quiet")
    assert resumed.code == 0, resumed.err
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == uninterrupted


# --- SIGKILL in the middle of a save ----------------------------------------------------------------

SAVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import torch
    from cnnlab.training.checkpoint import Progress, save_checkpoint
    from cnnlab.nn.registry import create_model
    from cnnlab.nn.optimizers import make_optimizer
    from cnnlab.training.config import TrainConfig

    run, die = Path(sys.argv[1]), sys.argv[2]  # die: 'before' or 'after' the rename of save 3, or 'never'
    model = create_model("cnn")
    optimizer = make_optimizer(model, TrainConfig())
    rename, epoch = os.replace, 0

    def replace_then_maybe_die(source, target):
        if die == "before" and epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target)
        if die == "after" and epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace_then_maybe_die
    while True:  # each save holds weights = epoch, epoch optimizer steps and progress.epoch = epoch
        epoch += 1
        model(torch.rand(4, 1, 28, 28)).sum().backward()
        optimizer.step()
        with torch.no_grad():
            for weight in model.parameters():
                weight.fill_(epoch)
        save_checkpoint(run, model, optimizer, Progress(epoch=epoch))
""")


def _loaded_epoch(run: Path) -> int:
    """Load the checkpoint and check that its weights, optimizer and progress all come from one save."""
    model = create_model("cnn")
    optimizer = make_optimizer(model, TrainConfig())
    epoch = load_checkpoint(run, model, optimizer).epoch
    assert all(torch.all(weight == epoch) for weight in model.parameters())
    assert all(int(state["step"]) == epoch for state in optimizer.state.values())
    return epoch


@pytest.mark.slow
@pytest.mark.parametrize("die, expected_epoch", [("before", 2), ("after", 3)])
def test_sigkill_at_the_rename_leaves_a_whole_checkpoint(tmp_path, die, expected_epoch):
    child = subprocess.run([sys.executable, "-c", SAVER, str(tmp_path), die], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert _loaded_epoch(tmp_path) == expected_epoch
    leftovers = list(tmp_path.glob(f".{FILE}.*.tmp"))
    assert len(leftovers) == (1 if die == "before" else 0)  # the killed save's fully written temporary file
    model = create_model("cnn")
    save_checkpoint(tmp_path, model, make_optimizer(model, TrainConfig()), Progress())
    assert not list(tmp_path.glob(f".{FILE}.*.tmp"))  # the next save clears it away


@pytest.mark.slow
def test_sigkill_at_a_random_moment_leaves_a_whole_checkpoint(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), "never"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / FILE).exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3 + 0.4 * torch.rand(()).item())  # several saves happen in this time
    child.kill()
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    assert _loaded_epoch(tmp_path) >= 1


# --- refusals ---------------------------------------------------------------------------------------


def _saved(run: Path) -> None:
    model = create_model("cnn")
    save_checkpoint(run, model, make_optimizer(model, TrainConfig()), Progress(epoch=1))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "not a readable cnnlab checkpoint"),
        (lambda data: b"\x80\x04\x95" + data, "not a readable cnnlab checkpoint"),  # a pickle's opening bytes
        (lambda data: b"", "not a readable cnnlab checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_refused_whole(tmp_path, damage, message):
    _saved(tmp_path)
    (tmp_path / FILE).write_bytes(damage((tmp_path / FILE).read_bytes()))
    model = create_model("cnn")
    before = [weight.clone() for weight in model.parameters()]
    with pytest.raises(CnnlabError, match=message):
        load_checkpoint(tmp_path, model, make_optimizer(model, TrainConfig()))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing half-restored


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    _saved(tmp_path)
    model = create_model("cnn2")
    with pytest.raises(CnnlabError, match="does not fit the run's model"):
        load_checkpoint(tmp_path, model, make_optimizer(model, TrainConfig()))


def test_a_missing_checkpoint_says_so(tmp_path):
    model = create_model("cnn")
    with pytest.raises(CnnlabError, match="no checkpoint to resume from"):
        load_checkpoint(tmp_path, model, make_optimizer(model, TrainConfig()))


def test_resuming_with_another_number_of_processes_is_refused(tmp_path, monkeypatch):
    _saved(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would set it; no process group is needed to refuse
    model = create_model("cnn")
    with pytest.raises(CnnlabError, match="trained by 1 process"):
        load_checkpoint(tmp_path, model, make_optimizer(model, TrainConfig()))
