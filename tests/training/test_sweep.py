"""Sweeps (cnnlab.training.sweep): the sweep file's checks, and real tiny sweeps (200 images, 1-2 epochs):
pruning, results files, resuming after Ctrl-C and after a dead worker, and two workers sharing one SQLite study."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytest.importorskip("optuna")

from cnnlab.errors import CnnlabError
from cnnlab.training import sweep
from cnnlab.training.settings import build_config, read_settings
from cnnlab.training.sweep_space import read_sweep

TINY = {"limit": 200, "epochs": 1, "batch_size": 64, "device": "cpu"}


def write_sweep(folder, name="s.yaml", **fields):
    path = folder / name
    path.write_text(yaml.safe_dump({"settings": TINY, **fields}))
    return path


def study_of(out, name="s"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"method": "bayes", "parameters": {"lr": [0.1]}}, "s.yaml method: must be one of grid, random, tpe. "),
        ({"parameters": {"dense_layer_sise": [64]}}, "s.yaml parameters dense_layer_sise: not a train setting"),
        ({"parameters": {"lr": {"min": 0.1, "max": 0.01}}}, "s.yaml parameters.lr: min must be less than max. "),
        ({"parameters": {"lr": 0.1}}, "s.yaml parameters.lr: give values: [...] or min: and max:; a fixed value"),
        ({"parameters": {}}, "s.yaml parameters: give at least one parameter to search"),
        ({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 0.2}}}, "s.yaml parameters.lr: a grid needs"),
        ({"parameters": {"epochs": [2, 0]}}, "s.yaml: the trial with epochs=0: --epochs must be at least 1. "),
        ({"parameters": {"name": ["a"]}}, "s.yaml: name is the sweep's to choose"),
        ({"metric": "accuracy", "parameters": {"lr": [0.1]}}, "s.yaml metric: must be one of val_accuracy, "),
        ({"pruning": "yes", "parameters": {"lr": [0.1]}}, "s.yaml pruning: give true, false or "),
    ],
)
def test_a_mistake_in_the_sweep_file_is_one_error_naming_the_file_and_key(tmp_path, fields, message):
    path = write_sweep(tmp_path, **fields)
    with pytest.raises(CnnlabError) as raised:
        read_sweep(path)
    assert str(raised.value).startswith(f"{tmp_path}/{message}")


def test_a_parameter_the_model_lacks_is_refused_for_that_model_only(tmp_path):
    # mlp has no dense_layer_size: the combination is refused, before anything trains
    path = write_sweep(tmp_path, parameters={"model": ["cnn", "mlp"], "dense_layer_size": [64]})
    with pytest.raises(CnnlabError, match="parameters dense_layer_size: not a train setting .* hyper-parameter of mlp"):
        read_sweep(path)


def test_a_grid_is_every_combination_once_in_a_seeded_order(tmp_path):
    spec = read_sweep(
        write_sweep(tmp_path, method="grid", parameters={"epochs": {"min": 1, "max": 3}, "lr": [0.1, 0.2]})
    )
    points = spec.grid()
    assert sorted((p["epochs"], p["lr"]) for p in points) == [(e, lr) for e in (1, 2, 3) for lr in (0.1, 0.2)]
    assert (
        points == spec.grid()
        and points
        != read_sweep(
            write_sweep(
                tmp_path,
                "t.yaml",
                seed=1,
                **{"method": "grid", "parameters": {"epochs": {"min": 1, "max": 3}, "lr": [0.1, 0.2]}},
            )
        ).grid()
    )


@pytest.mark.slow
def test_a_grid_sweep_prunes_the_bad_trial_and_writes_every_result(tmp_path):
    # seed 0 runs lr 0.003 first; lr 1e-7 learns nothing: level with it after epoch 1, below it after epoch 2
    path = write_sweep(
        tmp_path,
        method="grid",
        seed=0,
        settings={**TINY, "epochs": 3},
        parameters={"lr": [0.003, 1e-7]},
        pruning={"startup_trials": 1},
    )
    spec, out, lines = read_sweep(path), tmp_path / "out", []
    assert [p["lr"] for p in spec.grid()] == [0.003, 1e-7]
    rows = sweep.run_sweep(spec, out, echo=lines.append)
    assert [(row["trial"], row["state"], row["lr"], row["epochs_run"]) for row in rows] == [
        (0, "complete", 0.003, 3),
        (1, "pruned", 1e-7, 2),
    ]
    assert lines[0].startswith("trial 0: lr=0.003 → val_accuracy ") and lines[1].endswith(" s)")
    assert "pruned at epoch 2" in lines[1]
    assert json.loads((out / "results.json").read_text()) == rows
    assert (out / "results.csv").read_text().splitlines()[0] == (
        "trial,state,lr,val_accuracy,test_accuracy,epochs_run,pruned_at,seconds,run,note"
    )
    best = read_settings(out / "best.yaml")  # a cnnlab train --config file
    assert best == {**TINY, "epochs": 3, "lr": 0.003} and build_config(("best", best)).lr == 0.003
    assert (out / "sweep.png").stat().st_size > 1000
    history = json.loads((out / "runs" / "trial-000" / "history.json").read_text())
    assert rows[0]["val_accuracy"] == max(row["val_accuracy"] for row in history)
    assert (out / "runs" / "trial-001" / "metrics.json").exists()  # a pruned run still ends tidily
    # the same sweep again: nothing left to run, nothing run twice
    assert sweep.run_sweep(read_sweep(path), out, echo=lines.append) == rows and len(lines) == 2


@pytest.mark.slow
def test_ctrl_c_queues_the_trial_again_and_the_same_command_resumes(tmp_path, monkeypatch):
    from cnnlab.training import train as training
    from cnnlab.training.callbacks import Callback

    real, calls = training.train, []

    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            os.kill(os.getpid(), signal.SIGINT)  # as a person would, during trial 1's first step

    def train(config, **options):
        calls.append(config.name)
        if len(calls) == 2:
            options["callbacks"] = [*options["callbacks"], CtrlC()]
        return real(config, **options)

    monkeypatch.setattr(training, "train", train)
    path = write_sweep(tmp_path, method="random", parameters={"lr": {"min": 0.001, "max": 0.003}})
    out = tmp_path / "out"
    with pytest.raises(sweep.SweepInterrupted):
        sweep.run_sweep(read_sweep(path), out, trials=2, echo=lambda line: None)
    interrupted = json.loads((out / "results.json").read_text())  # written on the way out
    assert [row["state"] for row in interrupted] == ["complete", "failed", "waiting"]
    assert interrupted[1]["note"] == "interrupted; queued again as trial 2"
    rows = sweep.run_sweep(read_sweep(path), out, echo=lambda line: None)  # no --trials: the study remembers 2
    assert [row["state"] for row in rows] == ["complete", "failed", "complete"]
    assert rows[2]["lr"] == interrupted[1]["lr"] and rows[2]["note"] == "a retry of trial 1"
    assert rows[0] == interrupted[0] and calls == ["trial-000", "trial-001", "trial-002"]  # trial 0 not run again


@pytest.mark.slow
def test_a_trial_left_running_by_a_dead_worker_is_run_again(tmp_path):
    path = write_sweep(tmp_path, method="grid", parameters={"lr": [0.002]})
    spec, out = read_sweep(path), tmp_path / "out"
    out.mkdir()
    url = f"sqlite:///{out / 'study.db'}"
    study = sweep.open_study(spec, url, "s", heartbeat=1, grace=1)
    study.set_user_attr("trials", 1)
    sweep.fill(study, spec, 1)
    dead = sweep.take(study)  # a worker took trial 0, said it was alive once, and was killed
    study._storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    rows = sweep.run_sweep(spec, out, url=url, name="s", echo=lambda line: None, heartbeat=1, grace=1)
    assert [(row["trial"], row["state"]) for row in rows] == [(0, "failed"), (1, "complete")]
    assert rows[1]["lr"] == dead.system_attrs["fixed_params"]["lr"] == 0.002 and rows[1]["note"] == "a retry of trial 0"


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_and_run_each_trial_once(tmp_path):
    path = write_sweep(tmp_path, method="grid", parameters={"dense_layer_size": [8, 16, 32], "lr": [0.002]})
    out, url = tmp_path / "out", f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "cnnlab", "sweep", "--config", path, "--out", out, "--storage", url]
    workers = [
        subprocess.Popen(
            [*map(str, command), "--study", "shared"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    results = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], results
    import optuna

    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert all(trial.state.name == "COMPLETE" for trial in trials)
    assert sorted(trial.params["dense_layer_size"] for trial in trials) == [8, 16, 32]
    runs = {trial.user_attrs["run"] for trial in trials}
    assert runs == {str(out / "runs" / f"trial-00{n}") for n in range(3)}
    assert all((out / "runs" / f"trial-00{n}" / "metrics.json").exists() for n in range(3))
    printed = [line for text, _ in results for line in text.splitlines()]
    ran = sorted(line.split(":")[0] for line in printed if re.match(r"trial \d+: ", line))
    assert ran == ["trial 0", "trial 1", "trial 2"]  # each trial printed by the one worker that ran it


def test_three_failures_in_a_row_stop_the_sweep_and_leave_the_rest_queued(tmp_path, monkeypatch):
    from cnnlab.training import train as training

    def broken(config, **options):
        raise CnnlabError("fashion-mnist: not found")

    monkeypatch.setattr(training, "train", broken)
    path = write_sweep(tmp_path, method="grid", parameters={"lr": [0.001, 0.002, 0.003, 0.004]})
    lines = []
    with pytest.raises(CnnlabError, match="^3 trials in a row failed, the last with: fashion-mnist: not found. "):
        sweep.run_sweep(read_sweep(path), tmp_path / "out", trials=10, echo=lines.append)
    assert lines[0] == "the grid has 4 points: 4 trials, each point once"
    assert lines[1].startswith("trial 0: lr=") and lines[1].endswith(" → failed: fashion-mnist: not found")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [row["state"] for row in rows] == ["failed", "failed", "failed", "waiting"]
    assert rows[0]["note"] == "fashion-mnist: not found"


def test_a_larger_trials_adds_trials_and_a_smaller_one_runs_none(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cnnlab.training import train as training

    def instant(config, **options):  # a run that measures its own lr: no training needed to count trials
        return SimpleNamespace(history=[{"val_accuracy": config.lr}], test={"accuracy": 0.5, "loss": 1.0})

    monkeypatch.setattr(training, "train", instant)
    path = write_sweep(tmp_path, method="tpe", parameters={"lr": {"min": 0.001, "max": 0.01}, "epochs": [2, 3]})
    out, lines = tmp_path / "out", []
    first = sweep.run_sweep(read_sweep(path), out, trials=3, echo=lines.append)
    assert sweep.run_sweep(read_sweep(path), out, trials=2, echo=lines.append) == first and len(lines) == 3
    rows = sweep.run_sweep(read_sweep(path), out, trials=5, echo=lines.append)
    assert [(row["trial"], row["state"]) for row in rows] == [(n, "complete") for n in range(5)]
    assert rows[:3] == first and len({row["lr"] for row in rows}) == 5
    assert all(row["epochs"] in (2, 3) and row["epochs_run"] == 1 for row in rows)  # the parameter, and what ran
    assert [line.split(":")[0] for line in lines] == [f"trial {n}" for n in range(5)]
