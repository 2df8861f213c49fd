"""``run_sweep``: the trials of a sweep file, run through one Optuna study that any number of workers share.

The study lives in an RDB storage: ``sqlite:///SWEEP_DIR/study.db`` unless given (PostgreSQL across
machines). Its trials are a queue: the worker that first asks for N trials in all enqueues them (WAITING);
every worker then takes queued trials one at a time (WAITING -> RUNNING is one atomic update, so no trial
runs twice), and samples its parameters when it takes it, from the trials finished so far. So N trials are
run in all, numbered 0..N-1, however many workers there are. A trial interrupted by Ctrl-C, or left RUNNING
by a worker that was killed (its heartbeat stops), is marked FAIL and queued again with the same parameters:
running the same command again resumes the sweep.

Each trial is a ``cnnlab train`` run in SWEEP_DIR/runs/trial-NNN; what it measured goes into the study (the
trial's user attributes), so any worker can write the results: results.csv, results.json, best.yaml, sweep.png.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import socket
import threading
import time
import warnings
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training.callbacks import Callback, TrainingInterrupted
from cnnlab.training.sweep_results import Outcome, trial_line, write_results
from cnnlab.training.sweep_space import SweepSpec

HEARTBEAT_SECONDS = 10  # a running trial's worker says it is alive this often
GRACE_SECONDS = 60  # and is taken for dead after this long without a word (a busy 2-core machine is slow to say)
FAILURES_IN_A_ROW = 3  # a missing dataset fails every trial: stop, rather than fail them all
NO_TRIALS = "give --trials N: how many trials to run in all (random and tpe searches have no end of their own)"


def optuna():
    try:
        import optuna
    except ImportError:
        raise CnnlabError("cnnlab sweep needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its per-trial INFO lines: the sweep prints its own
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's
    return optuna


class SweepInterrupted(Exception):
    """Ctrl-C: the trial in flight is queued again and the results so far are written."""


def storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS):
    """An RDB storage with heartbeats; a trial whose worker died is queued again by whoever notices first."""
    from optuna.storages import RDBStorage

    # concurrent SQLite writers wait for the lock instead of failing at once ("database is locked")
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    # optuna 4.9 renamed the callback's argument
    known = inspect.signature(RDBStorage).parameters
    argument = (
        "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in known else "failed_trial_callback"
    )
    for attempt in range(5):
        try:
            return RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=grace, **{argument: requeue}
            )
        except Exception as problem:  # SQLAlchemy's errors: a bad URL, a missing driver, a server not there
            # two workers creating one new SQLite study at once: the second trips over the first's tables
            if attempt < 4 and any(race in str(problem) for race in ("UNIQUE constraint failed", "already exists")):
                time.sleep(0.5)
                continue
            reason = str(problem).splitlines()[0]
            raise CnnlabError(f"--storage {shown(url)}: cannot open the study storage ({reason})") from None


def shown(url: str) -> str:
    """A storage URL as messages print it: without its password."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def requeue(study, trial) -> None:
    """Queue a failed trial again with its parameters (Optuna's retry attributes name the first try)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    attrs = {"fixed_params": trial.params, "failed_trial": history[0], "retry_history": history}
    study.add_trial(optuna().trial.create_trial(state=optuna().trial.TrialState.WAITING, system_attrs=attrs))


def replaced(trials) -> set[int]:
    """The numbers of the trials queued again: each is done by its retry."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}


def open_study(spec: SweepSpec, url: str, name: str, heartbeat=HEARTBEAT_SECONDS, grace=GRACE_SECONDS):
    """Create the study, or load it to resume; a study made by another sweep file is refused."""
    pruner = optuna().pruners.NopPruner()
    if spec.pruning:
        pruner = optuna().pruners.MedianPruner(spec.pruning["startup_trials"], spec.pruning["warmup_epochs"])
    study = optuna().create_study(
        storage=storage(url, heartbeat, grace),
        study_name=name,
        direction=spec.goal,
        pruner=pruner,
        load_if_exists=True,
    )
    identity = json.loads(json.dumps(spec.identity()))  # as the storage keeps it: lists, not tuples
    kept = study.user_attrs.get("sweep")
    if kept is None:
        study.set_user_attr("sweep", identity)  # two workers starting at once write the same value
    elif kept != identity:
        differs = next(key for key in identity if identity[key] != kept.get(key))
        raise CnnlabError(
            f"{spec.path}: study {name!r} in {shown(url)} was made by a sweep with other {differs}; "
            "give another --study or --out to start a new one"
        )
    return study


def fill(study, spec: SweepSpec, total: int, wait_seconds: float = 60) -> None:
    """Queue trials until the study has ``total``: done by one worker only, the first to claim this total.

    The claim is a study named after the total: creating a study is atomic in every RDB storage.
    """
    marker = f"{study.study_name}:trials={total}"
    try:
        claim = optuna().create_study(storage=study._storage, study_name=marker)
    except optuna().exceptions.DuplicatedStudyError:  # another worker fills (or filled): wait until it is done
        deadline = time.monotonic() + wait_seconds
        while not optuna().load_study(study_name=marker, storage=study._storage).user_attrs.get("filled"):
            if time.monotonic() > deadline:
                raise CnnlabError(
                    f"the worker queueing the trials of study {study.study_name!r} stopped halfway; to queue them "
                    f"here, delete its claim: optuna delete-study --study-name '{marker}' --storage URL"
                ) from None
            time.sleep(0.2)
        return
    try:
        trials = study.get_trials(deepcopy=False)
        gone = replaced(trials)
        live = [trial for trial in trials if trial.number not in gone]
        if spec.method == "grid":
            taken = [trial.system_attrs.get("fixed_params", trial.params) for trial in live]
            for params in [point for point in spec.grid() if point not in taken][: max(0, total - len(live))]:
                study.enqueue_trial(params)
        else:
            for _ in range(total - len(live)):
                study.enqueue_trial({})  # parameters are sampled when a worker takes the trial
    except BaseException:  # Ctrl-C halfway: give the claim up, so that the next worker tops the queue up
        optuna().delete_study(study_name=marker, storage=study._storage)
        raise
    claim.set_user_attr("filled", True)


def take(study):
    """The next queued trial, now RUNNING and this worker's, or None when the queue is empty."""
    TrialState = optuna().trial.TrialState
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:  # False (or an error) when another worker took it first
            if study._storage.set_trial_state_values(queued._trial_id, state=TrialState.RUNNING):
                study._storage.record_heartbeat(queued._trial_id)  # from now on, if this worker dies it shows
                return queued
        except optuna().exceptions.UpdateFinishedTrialError:
            continue
    return None


def started(study) -> int:
    """How many of the study's trials are running or finished (a trial queued again counts once)."""
    trials = study.get_trials(deepcopy=False)
    gone = replaced(trials)
    return sum(1 for trial in trials if trial.number not in gone and trial.state.name != "WAITING")


class Heartbeat:
    """Tells the storage every few seconds that this worker still runs the trial (a thread, while in ``with``)."""

    def __init__(self, study, trial_id: int):
        self.storage, self.trial_id, self.stopped = study._storage, trial_id, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self.stopped.wait(interval):  # take() gave the first beat
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a storage busy for a moment: the next beat, well within the grace period
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


class Pruning(Callback):
    """Reports the validation metric after each epoch; stops training when the pruner says so."""

    def __init__(self, trial, key: str):
        self.trial, self.key, self.pruned_at = trial, key, None

    def on_epoch_end(self, epoch, logs=None):
        value = logs.get(self.key)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True  # the run still ends tidily: test metrics, model files


def run_trial(study, spec: SweepSpec, queued, out: Path) -> Outcome:
    """Run one taken trial to its end and tell the study how it went; Ctrl-C queues it again."""
    started = time.perf_counter()
    try:
        with Heartbeat(study, queued._trial_id):
            trial, params, result, pruned_at = _train_trial(study, spec, queued, out)
            return _tell(study, spec, trial, params, result, pruned_at, time.perf_counter() - started)
    except (KeyboardInterrupt, TrainingInterrupted):
        TrialState = optuna().trial.TrialState
        if study._storage.get_trial(queued._trial_id).state == TrialState.RUNNING:  # not told yet: queue it again
            study._storage.set_trial_user_attr(queued._trial_id, "error", "interrupted")
            requeue(study, study.tell(queued.number, state=TrialState.FAIL, skip_if_finished=True))
        raise SweepInterrupted(queued.number) from None
    except _TrialFailed as failed:
        return Outcome(
            queued.number, failed.params, "failed", None, time.perf_counter() - started, error=failed.message
        )
    except optuna().exceptions.UpdateFinishedTrialError:  # this worker was silent too long and taken for dead
        message = f"taken for dead (no heartbeat for {study._storage.grace_period} s) and queued again"
        return Outcome(queued.number, {}, "failed", None, time.perf_counter() - started, error=message)


class _TrialFailed(Exception):
    def __init__(self, params: dict, message: str):
        self.params, self.message = params, message


def _train_trial(study, spec: SweepSpec, queued, out: Path):
    """Sample the trial's parameters and train it; a trial's own failure is told to the study here."""
    from cnnlab.training.train import train

    study.sampler = sampler(spec, queued.number)
    trial = optuna().trial.Trial(study, queued._trial_id)
    params = {name: parameter.suggest(trial) for name, parameter in spec.parameters.items()}
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    name = f"trial-{trial.number:03d}"
    config = spec.trial_config(params, f"trial {trial.number}", runs_dir=str(out / "runs"), name=name)
    trial.set_user_attr("run", str(Path(config.runs_dir) / config.name))
    pruning = Pruning(trial, spec.validation_metric) if spec.pruning else None
    started = time.perf_counter()
    try:
        result = train(config, verbose=False, callbacks=[pruning] if pruning else [])
    except (KeyboardInterrupt, TrainingInterrupted):
        raise
    except Exception as problem:  # a trial's own failure (a diverged loss, a setting the model refuses)
        message = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        trial.set_user_attr("error", message)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        study.tell(trial, state=optuna().trial.TrialState.FAIL)
        raise _TrialFailed(params, message) from None
    return trial, params, result, pruning.pruned_at if pruning else None


def _tell(study, spec: SweepSpec, trial, params: dict, result, pruned_at: int | None, seconds: float) -> Outcome:
    """Keep what the trial measured in the study (user attributes), and finish it: complete, pruned or failed."""
    TrialState = optuna().trial.TrialState
    value = measured(spec, result.history, result.test)
    for key, each in {
        "seconds": round(seconds, 1),
        "epochs": len(result.history),
        "test_accuracy": result.test["accuracy"],
        "test_loss": result.test["loss"],
        spec.validation_metric: measured(spec, result.history, result.test, spec.validation_metric),
    }.items():
        trial.set_user_attr(key, each)
    if pruned_at is not None:
        trial.set_user_attr("pruned_at", pruned_at)
        study.tell(trial, state=TrialState.PRUNED)
        return Outcome(trial.number, params, "pruned", value, seconds, pruned_at=pruned_at)
    if value is None:
        trial.set_user_attr("error", f"no {spec.metric} (no validation data: set validation_split)")
        study.tell(trial, state=TrialState.FAIL)
        return Outcome(trial.number, params, "failed", None, seconds, error=f"no {spec.metric}")
    study.tell(trial, value)
    return Outcome(trial.number, params, "complete", value, seconds)


def measured(spec: SweepSpec, history: list[dict], test: dict, metric: str | None = None) -> float | None:
    """The metric of a run: the best epoch's for validation metrics, the test set's for test metrics."""
    metric = metric or spec.metric
    if metric.startswith("test_"):
        return test[metric.removeprefix("test_")]
    values = [row[metric] for row in history if metric in row and math.isfinite(row[metric])]
    if not values:
        return None
    return max(values) if spec.goal == "maximize" else min(values)


def sampler(spec: SweepSpec, number: int):
    """A sampler seeded by the sweep's seed and the trial's number: the same sweep samples the same values,
    and two workers never draw the same ones. Each reads the finished trials from the study afresh."""
    samplers = optuna().samplers
    if spec.method == "tpe":  # 5 random trials before the model of good and bad values takes over (Optuna: 10)
        return samplers.TPESampler(seed=spec.seed * 100_003 + number, n_startup_trials=5)
    return samplers.RandomSampler(seed=spec.seed * 100_003 + number)  # grid trials come with all their values


def trials_wanted(spec: SweepSpec, study, trials: int | None) -> int:
    """--trials, or what the study was last asked for, or the whole grid."""
    if trials is None:
        trials = study.user_attrs.get("trials") or (len(spec.grid()) if spec.method == "grid" else None)
        if trials is None:
            raise CnnlabError(NO_TRIALS)
    if trials < 1:
        raise CnnlabError(f"--trials must be at least 1. Received: {trials}")
    if spec.method == "grid" and trials > len(spec.grid()):
        trials = len(spec.grid())  # every point once: more trials would repeat some
    return trials


def run_sweep(
    spec: SweepSpec,
    out,
    trials: int | None = None,
    url: str | None = None,
    name: str | None = None,
    echo=print,
    heartbeat=HEARTBEAT_SECONDS,
    grace=GRACE_SECONDS,
) -> list:
    """Run this worker's share of the sweep's trials; return the rows of results (see sweep_results)."""
    out = Path(out)
    if trials is None and spec.method != "grid" and url is None and not (out / "study.db").exists():
        raise CnnlabError(NO_TRIALS)  # before anything is written: there is no study to remember a number
    out.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{out.resolve() / 'study.db'}"
    study = open_study(spec, url, name or spec.path.stem, heartbeat, grace)
    total = trials_wanted(spec, study, trials)
    if trials is not None and total < trials:
        echo(f"the grid has {total} points: {total} trials, each point once")
    study.set_user_attr("trials", total)
    fill(study, spec, total)
    waiting_for, failures = None, 0
    try:
        while True:
            optuna().storages.fail_stale_trials(study)  # a dead worker's trial goes back in the queue
            queued = take(study) if started(study) < total else None  # a smaller --trials than before: stop there
            if queued is None:
                running = study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,))
                if not running:
                    break
                if waiting_for != [t.number for t in running]:  # they may end, or their workers may die
                    waiting_for = [t.number for t in running]
                    numbers = ", ".join(map(str, waiting_for))
                    echo(f"waiting for trial {numbers}, running in another worker (run here if it stops for {grace} s)")
                time.sleep(min(heartbeat, 2))
                continue
            outcome = run_trial(study, spec, queued, out)
            echo(trial_line(spec, outcome))
            write_results(study, spec, out)
            failures = failures + 1 if outcome.state == "failed" else 0
            if failures == FAILURES_IN_A_ROW:  # something every trial shares is wrong: the rest stay queued
                raise CnnlabError(
                    f"{failures} trials in a row failed, the last with: {outcome.error}. "
                    "The sweep stopped; its other trials stay queued for the same command"
                )
    finally:  # Ctrl-C included: the results so far
        rows = write_results(study, spec, out)
    return rows
