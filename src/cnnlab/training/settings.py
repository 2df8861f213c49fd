"""Settings from files and ``key=value`` pairs, as the W&B lesson keeps them in a ``config``.

``cnnlab train --config FILE.yaml --set dense_layer_size=256`` and ``cnnlab sweep`` build their TrainConfig
here; a cnnlab.keras script reads the same files through ``cnnlab.config`` (the ``Config`` below).

A settings file is one flat mapping, YAML or JSON: keys are TrainConfig fields (``epochs``, ``batch_size``
or ``batch-size``, ``optimizer``, ...) or hyper-parameters of the registry model (``first_layer_conv_width``,
``dense_layer_size``, ... see ``cnnlab.names.MODEL_CARDS``), which go to ``TrainConfig.model_options``.
Later sources win: the defaults, a recipe (``recipe:``), the file, the options given on the command line, ``--set``.
"""

from __future__ import annotations

import json
import os
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training.config import TrainConfig, model_option_problem
from cnnlab.training.run import FACTS

# TrainConfig fields a settings file does not choose: where the run goes is the command's
_NOT_SETTINGS = {"model_options"}


def read_settings(path: str | Path) -> dict:
    """A settings file (.yaml, .yml or .json) -> its mapping, or one CnnlabError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        reason = getattr(problem, "strerror", None) or "not UTF-8 text"
        raise CnnlabError(f"{path}: cannot read the settings file ({reason})") from None
    if path.suffix.lower() == ".json":
        try:
            settings = json.loads(text)
        except json.JSONDecodeError as problem:
            raise CnnlabError(f"{path}: not valid JSON (line {problem.lineno}: {problem.msg})") from None
    elif path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            settings = yaml.safe_load(text)  # data only: no Python objects are built
        except yaml.YAMLError as problem:
            mark = getattr(problem, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise CnnlabError(f"{path}: not valid YAML{where}") from None
    else:
        raise CnnlabError(f"{path}: a settings file must end in .yaml, .yml or .json")
    if settings is None:
        return {}
    if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
        raise CnnlabError(f"{path}: expected a mapping of settings such as 'epochs: 5'")
    return settings


def parse_value(text: str):
    """A command-line value as YAML reads it ('5' -> 5, 'true' -> True, '[3, 5]' -> [3, 5]); '1e-3' -> 0.001."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 wants a dot in a float: read 1e-3 as a number all the same
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_assignments(pairs, option: str = "--set") -> dict:
    """['epochs=5', 'lr=1e-3'] -> {'epochs': 5, 'lr': 0.001}; a pair without '=' is refused, naming it."""
    settings = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise CnnlabError(f"{option} expects KEY=VALUE, such as {option} epochs=5. Received: {pair!r}")
        settings[key.strip()] = parse_value(value.strip())
    return settings


def _field_types() -> dict[str, object]:
    hints = typing.get_type_hints(TrainConfig)
    return {field.name: hints[field.name] for field in fields(TrainConfig) if field.name not in _NOT_SETTINGS}


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text", type(None): "null"}


def _coerce(key: str, value, kind, origin: str):
    """``value`` as TrainConfig's field ``key`` holds it (an int is a fine float, a list a fine tuple)."""
    kinds = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    if value is None and type(None) in kinds:
        return None
    for each in kinds:
        if each is bool and isinstance(value, bool):
            return value
        if each is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if each is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            try:  # YAML 1.1 reads 2e-3 (no dot) as text
                return float(value)
            except ValueError:
                continue
        if each is str and isinstance(value, str):
            return value
        if typing.get_origin(each) is tuple and isinstance(value, list | tuple):
            return tuple(value)
    wanted = " or ".join(_KIND_NAMES.get(each, "a list") for each in kinds)
    raise CnnlabError(f"{origin} {key}: expected {wanted}. Received: {key}={value!r}")


def build_config(*sources: tuple[str, dict]) -> TrainConfig:
    """A TrainConfig from (origin, settings) pairs, later ones winning; origins name them in errors.

    A ``recipe`` among the settings starts from that recipe's model and settings. Keys that are not
    TrainConfig fields are the model's hyper-parameters; ``TrainConfig.check`` refuses those it lacks.
    """
    kinds = _field_types()
    merged: dict = {}
    options: dict = {}  # hyper-parameter -> (value, where it came from)
    for origin, settings in sources:
        for raw_key, value in settings.items():
            key = raw_key.replace("-", "_")
            if key in FACTS:  # a run's config.json as a settings file: its facts are not settings
                continue
            if key == "model_options" and isinstance(value, dict):  # config.json's own form
                options.update({name: (each, origin) for name, each in value.items()})
            elif key in kinds:
                merged[key] = _coerce(key, value, kinds[key], origin)
            else:
                options[key] = (value, origin)
    if merged.get("recipe"):
        from cnnlab.training.recipes import recipe_config

        config = recipe_config(merged.pop("recipe"), **merged)
    else:
        config = TrainConfig(**merged)
    for key, (value, origin) in options.items():
        problem = model_option_problem(config.model, key, value)
        if problem:
            raise CnnlabError(f"{origin} {key}: {problem}")
    config.model_options = {key: value for key, (value, _) in options.items()}
    return config


class Config(dict):
    """The settings of a script, read as attributes: ``config.epochs``, as W&B's ``wandb.config``.

    ``cnnlab.config`` is one, filled from the script's own command line (``--config FILE``, ``--set KEY=VALUE``,
    other arguments left alone) and the ``CNNLAB_CONFIG`` (a file) and ``CNNLAB_SET`` (``key=value`` pairs,
    separated by spaces) environment variables (for a shell loop over settings or a job queue). ``setdefaults``
    fills in what those did not give, so the script's own values are the defaults::

        from cnnlab import config
        config.setdefaults(epochs=2, dense_layer_size=128)
        model.add(Dense(config.dense_layer_size, activation="relu"))
    """

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no setting {key!r}; set it with config.setdefaults({key}=...)") from None

    def __setattr__(self, key: str, value) -> None:
        self[key] = value

    def setdefaults(self, settings: dict | None = None, **values) -> Config:
        for key, value in {**(settings or {}), **values}.items():
            self.setdefault(key, value)
        return self

    @classmethod
    def from_sources(cls, argv=None, environ=None) -> Config:
        """Settings from the command line ``argv`` (default sys.argv) and ``environ`` (default os.environ)."""
        argv = sys.argv[1:] if argv is None else list(argv)
        environ = os.environ if environ is None else environ
        files, pairs = [environ["CNNLAB_CONFIG"]] if environ.get("CNNLAB_CONFIG") else [], []
        pairs += environ.get("CNNLAB_SET", "").split()
        for index, argument in enumerate(argv):
            for flag, found in (("--config", files), ("--set", pairs)):
                if argument == flag and index + 1 < len(argv):
                    found.append(argv[index + 1])
                elif argument.startswith(flag + "="):
                    found.append(argument[len(flag) + 1 :])
        config = cls()
        for file in files:
            config.update(read_settings(file))
        config.update(parse_assignments(pairs))
        return config


_SCRIPT_CONFIG: list[Config] = []


def script_config() -> Config:
    """``cnnlab.config``: the script's settings, read once, when first used."""
    if not _SCRIPT_CONFIG:
        _SCRIPT_CONFIG.append(Config.from_sources())
    return _SCRIPT_CONFIG[0]
