"""A sweep file, read and checked: what ``cnnlab sweep`` searches, how, and for which metric.

A sweep file is YAML or JSON, in the form of a W&B sweep::

    method: tpe              # grid, random or tpe (Optuna's Tree-structured Parzen Estimator)
    metric: val_accuracy     # val_accuracy, val_loss, test_accuracy or test_loss; goal: maximize|minimize
    settings:                # the same for every trial: any `cnnlab train --config` key
      dataset: fashion-mnist
      epochs: 5
    parameters:              # searched: values: [...], or min: and max: (log: true; integers when both are)
      dense_layer_size: {values: [64, 128, 256]}
      lr: {min: 0.0003, max: 0.003, log: true}
    pruning: true            # stop trials that fall below the median after an epoch; or {startup_trials: N}

Every mistake is one CnnlabError naming the file and the key; every trial's settings are built (and so
checked) here, before anything trains.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training.settings import build_config, read_settings

METHODS = ("grid", "random", "tpe")
METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
GOALS = ("maximize", "minimize")
_KEYS = ("method", "metric", "goal", "settings", "parameters", "pruning", "seed")
_THE_SWEEPS = {"name", "runs_dir"}  # each trial's run folder is the sweep's to name: SWEEP_DIR/runs/trial-NNN
_CHECKED_COMBINATIONS = 2000  # beyond this many, each parameter's values are checked with the others' first


@dataclass(frozen=True)
class Parameter:
    """One searched key: a list of ``values``, or a range from ``low`` to ``high`` (integers when both are)."""

    name: str
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def candidates(self) -> tuple:
        """The values a grid takes (every integer of a range), or the ends of a range to check."""
        if self.values is not None:
            return self.values
        return tuple(range(self.low, self.high + 1)) if self.integer else (self.low, self.high)

    def suggest(self, trial):
        """This parameter's value for an Optuna trial (the queued value, when the trial has one)."""
        if self.values is not None:
            return trial.suggest_categorical(self.name, list(self.values))
        if self.integer:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclass
class SweepSpec:
    path: Path
    method: str = "tpe"
    metric: str = "val_accuracy"
    goal: str = "maximize"
    settings: dict = field(default_factory=dict)
    parameters: dict[str, Parameter] = field(default_factory=dict)
    pruning: dict | None = None  # {"startup_trials": N, "warmup_epochs": N}, or None: no pruning
    seed: int = 0

    @property
    def validation_metric(self) -> str:
        """What is reported after each epoch (for pruning): the validation side of the metric."""
        return "val_" + self.metric.split("_", 1)[1]

    def grid(self) -> list[dict]:
        """Every combination of the parameters' values, in an order shuffled by ``seed`` (a short sweep spreads)."""
        names = list(self.parameters)
        points = [
            dict(zip(names, each)) for each in itertools.product(*(p.candidates() for p in self.parameters.values()))
        ]
        random.Random(self.seed).shuffle(points)
        return points

    def trial_config(self, params: dict, origin: str, **run):
        """The TrainConfig of a trial: the fixed settings, then its parameters, then where its run goes."""
        return build_config((f"{self.path} settings", self.settings), (origin, params), ("sweep", run))

    def identity(self) -> dict:
        """What makes two sweeps the same search: a study refuses to go on with another."""
        parameters = {name: [p.values, p.low, p.high, p.log] for name, p in self.parameters.items()}
        return {
            "method": self.method,
            "metric": self.metric,
            "goal": self.goal,
            "settings": self.settings,
            "parameters": parameters,
        }


def _parameter(path: Path, name: str, given) -> Parameter:
    where = f"{path} parameters.{name}"
    if isinstance(given, list):  # the short form: `lr: [0.001, 0.003]`
        given = {"values": given}
    if not isinstance(given, dict):
        raise CnnlabError(f"{where}: give values: [...] or min: and max:; a fixed value goes under settings")
    unknown = sorted(set(given) - {"values", "min", "max", "log"})
    if unknown:
        raise CnnlabError(f"{where}: unknown key {unknown[0]!r}; a parameter has values, or min, max and log")
    if "values" in given:
        values = given["values"]
        if set(given) != {"values"}:
            raise CnnlabError(f"{where}: give either values or min and max, not both")
        if not isinstance(values, list) or not values:
            raise CnnlabError(f"{where}: values must be a non-empty list")
        if not all(value is None or isinstance(value, bool | int | float | str) for value in values):
            raise CnnlabError(f"{where}: values must be numbers, text, true/false or null")
        if len(set(map(repr, values))) != len(values):
            raise CnnlabError(f"{where}: a value is listed twice")
        return Parameter(name, values=tuple(values))
    low, high, log = given.get("min"), given.get("max"), given.get("log", False)
    numbers = all(isinstance(each, int | float) and not isinstance(each, bool) for each in (low, high))
    if not numbers:
        raise CnnlabError(f"{where}: min and max must both be numbers. Received: min={low!r}, max={high!r}")
    if not low < high:
        raise CnnlabError(f"{where}: min must be less than max. Received: min={low}, max={high}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise CnnlabError(f"{where}: log must be true or false, and log needs min > 0")
    return Parameter(name, low=low, high=high, log=log)


def _pruning(path: Path, given) -> dict | None:
    if given is False or given is None:
        return None
    pruning = {"startup_trials": 3, "warmup_epochs": 0}  # the median needs a few finished trials to mean much
    if given is True:
        return pruning
    if not isinstance(given, dict) or set(given) - set(pruning):
        raise CnnlabError(f"{path} pruning: give true, false or {{startup_trials: N, warmup_epochs: N}}")
    for key, value in given.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CnnlabError(f"{path} pruning.{key}: must be a whole number, 0 or more. Received: {value!r}")
    return {**pruning, **given}


def read_sweep(path: str | Path) -> SweepSpec:
    """A sweep file -> SweepSpec, with every trial's settings checked; CnnlabError names the file and the key."""
    path = Path(path)
    raw = read_settings(path)
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise CnnlabError(f"{path}: unknown key {unknown[0]!r}; a sweep file has {', '.join(_KEYS)}")
    method, metric = raw.get("method", "tpe"), raw.get("metric", "val_accuracy")
    if method not in METHODS:
        raise CnnlabError(f"{path} method: must be one of {', '.join(METHODS)}. Received: {method!r}")
    if metric not in METRICS:
        raise CnnlabError(f"{path} metric: must be one of {', '.join(METRICS)}. Received: {metric!r}")
    goal = raw.get("goal", "minimize" if metric.endswith("loss") else "maximize")
    if goal not in GOALS:
        raise CnnlabError(f"{path} goal: must be maximize or minimize. Received: {goal!r}")
    settings, parameters = raw.get("settings") or {}, raw.get("parameters")
    if not isinstance(settings, dict):
        raise CnnlabError(f"{path} settings: expected a mapping of settings such as 'epochs: 5'")
    if not isinstance(parameters, dict) or not parameters:
        raise CnnlabError(
            f"{path} parameters: give at least one parameter to search, e.g. lr: {{min: 0.0003, max: 0.003}}"
        )
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise CnnlabError(f"{path} seed: must be an integer. Received: {seed!r}")
    for key in _THE_SWEEPS & {k.replace("-", "_") for k in (*settings, *parameters)}:
        raise CnnlabError(f"{path}: {key} is the sweep's to choose (each trial runs in SWEEP_DIR/runs/trial-NNN)")
    spec = SweepSpec(path, method, metric, goal, settings, pruning=_pruning(path, raw.get("pruning", False)), seed=seed)
    spec.parameters = {name: _parameter(path, name, given) for name, given in parameters.items()}
    if method == "grid":
        ranges = [p.name for p in spec.parameters.values() if p.values is None and not p.integer]
        if ranges:
            raise CnnlabError(f"{path} parameters.{ranges[0]}: a grid needs values: [...] (or a range of integers)")
    _check_trials(spec)
    return spec


def _check_trials(spec: SweepSpec) -> None:
    """Build the config of every combination of values (range ends), or of each value with the others' first."""
    candidates = {
        name: p.candidates() if p.values is not None else (p.low, p.high) for name, p in spec.parameters.items()
    }
    count = 1
    for values in candidates.values():
        count *= len(values)
    if count <= _CHECKED_COMBINATIONS:
        combinations = (dict(zip(candidates, each)) for each in itertools.product(*candidates.values()))
    else:
        first = {name: values[0] for name, values in candidates.items()}
        combinations = ({**first, name: value} for name, values in candidates.items() for value in values)
    for params in combinations:
        config = spec.trial_config(params, f"{spec.path} parameters")
        try:
            config.check()
        except CnnlabError as problem:
            where = ", ".join(f"{key}={value!r}" for key, value in params.items())
            raise CnnlabError(f"{spec.path}: the trial with {where}: {problem}") from None
