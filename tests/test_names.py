"""The one table of names (cnnlab.names): every name has its implementation, and every implementation its name."""

from __future__ import annotations

import pytest
import torch

from cnnlab import names
from cnnlab.data.registry import BUILT_IN, list_datasets
from cnnlab.engine.devices import autocast
from cnnlab.nn.optimizers import OPTIMIZERS, learning_rate, make_optimizer
from cnnlab.nn.registry import create_model, parse_model
from cnnlab.training.config import FitConfig, TrainConfig
from cnnlab.training.recipes import recipe_config


def test_datasets_optimizers_and_models_have_one_name_each():
    assert list(BUILT_IN) == list(names.DATASETS) == [info.name for info in list_datasets()]
    assert list(OPTIMIZERS) == list(names.OPTIMIZERS)
    assert {name: entry[1] for name, entry in OPTIMIZERS.items()} == names.OPTIMIZERS  # Keras's default rates
    assert set(names.COURSE_EXPERIMENTS) <= set(names.MODEL_CARDS)


@pytest.mark.parametrize("name", list(names.MODEL_CARDS))
def test_every_registry_model_builds_and_fits_other_data(name):
    card = names.MODEL_CARDS[name]
    model = create_model(name)
    assert model.name == name and model.output_shape == (10,)
    other = create_model(name, input_shape=(40, 40, 3), classes=3)
    assert other.input_shape == (40, 40, 3) and other.output_shape == (3,)
    assert other.layers[-1].activation == "softmax" and parse_model(name).to_spec() == model.to_spec()
    assert card.course_epochs >= 1


def test_classes_must_be_a_positive_number():
    with pytest.raises(ValueError, match="classes must be a positive integer. Received: classes=0"):
        create_model("cnn", classes=0)


@pytest.mark.parametrize("recipe", list(names.RECIPES))
def test_every_recipe_builds_its_model_and_settings(recipe):
    config = recipe_config(recipe)
    config.check()
    assert parse_model(config.model).output_shape == (10,)


@pytest.mark.parametrize("optimizer", list(names.OPTIMIZERS))
@pytest.mark.parametrize("schedule", list(names.SCHEDULES))
def test_every_optimizer_and_schedule_steps(optimizer, schedule):
    model = create_model("mlp")
    step = make_optimizer(model, FitConfig(optimizer=optimizer))
    assert step.param_groups[0]["lr"] == names.OPTIMIZERS[optimizer]
    rates = [learning_rate(schedule, 1.0, index, 100) for index in range(100)]
    assert 0 < max(rates) <= 1.0 and (schedule != "onecycle" or rates[0] < rates[25] > rates[99])


@pytest.mark.parametrize("precision", list(names.PRECISIONS))
def test_every_precision_runs_a_forward_pass(precision):
    with autocast(torch.device("cpu"), precision):
        output = create_model("cnn")(torch.rand(2, 1, 28, 28))
    assert output.shape == (2, 10)
    assert (output.dtype == torch.bfloat16) == (precision == "mixed_bfloat16")


def test_every_device_name_is_accepted_and_others_are_refused():
    for device in names.DEVICES:
        TrainConfig(device=device).check()
    with pytest.raises(Exception, match="--device must be auto, cpu or cuda. Received: 'tpu'"):
        TrainConfig(device="tpu").check()


@pytest.mark.parametrize("name", list(names.MODEL_CARDS))
def test_every_hyper_parameter_of_a_model_is_in_its_spec_and_back(name):
    import string

    card = names.MODEL_CARDS[name]
    holes = {field for _, field, _, _ in string.Formatter().parse(card.spec) if field}
    assert holes == set(card.options)
    for key, value in card.options.items():  # each one changes the model
        changed = value * 2 if isinstance(value, int) else value / 2
        assert create_model(name, options={key: changed}).to_spec() != create_model(name).to_spec()
