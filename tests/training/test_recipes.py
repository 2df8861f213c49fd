"""Recipes: listed with their measurements, built into configs, trainable, and mnist-fast's accuracy."""

from __future__ import annotations

import json

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.names import RECIPES
from cnnlab.nn.registry import parse_model
from cnnlab.training.recipes import get_recipe, list_recipes, recipe_config
from cnnlab.training.train import train


def test_recipes_lists_every_recipe_with_its_measurements(run_cli):
    result = run_cli("recipes")
    assert result.code == 0 and result.err == ""
    for recipe in list_recipes():
        assert f"run: cnnlab train --recipe {recipe.name}" in result.out
        if recipe.measured is not None:
            assert f"measured: test accuracy {recipe.measured.mean_accuracy:.2%}" in result.out
    assert {"mnist-fast", "mnist-best", "fashion-best"} <= set(RECIPES)


def test_recipes_json_holds_the_measured_figures(run_cli):
    result = run_cli("recipes", "--json")
    listed = json.loads(result.out)
    assert [entry["name"] for entry in listed] == list(RECIPES)
    for entry in listed:
        if entry["measured"] is not None:
            measured = entry["measured"]
            assert len(measured["accuracies"]) == len(measured["seconds"]) >= 1
            assert measured["mean_accuracy"] == pytest.approx(
                sum(measured["accuracies"]) / len(measured["accuracies"]), abs=1e-4
            )


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_is_a_valid_config_and_model(name):
    recipe = get_recipe(name)
    config = recipe_config(name)
    config.check()
    assert (config.recipe, config.model, config.dataset) == (name, recipe.model, recipe.dataset)
    assert parse_model(config.model).output_shape == (10,)
    if recipe.measured is not None:  # what is stored reaches what is promised
        assert recipe.measured.mean_accuracy >= recipe.target


def test_options_override_the_recipe():
    config = recipe_config("mnist-fast", seed=3, epochs=2, name="mine")
    assert (config.seed, config.epochs, config.name) == (3, 2, "mine")
    assert config.optimizer == RECIPES["mnist-fast"].settings["optimizer"]


def test_unknown_recipe_is_one_line(run_cli, tmp_path):
    with pytest.raises(CnnlabError, match="no such recipe"):
        get_recipe("mnist-slow")
    result = run_cli("train", "--recipe", "mnist-slow", "--runs-dir", tmp_path)
    assert result.code == 1 and result.err.startswith("cnnlab: error: --recipe mnist-slow: no such recipe")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_trains_a_step_and_writes_its_run(name, tmp_path):
    batch = RECIPES[name].settings["batch_size"]
    result = train(recipe_config(name, limit=batch, epochs=1, runs_dir=str(tmp_path), name="one-step"), verbose=False)
    assert len(result.history) == 1 and 0 <= result.test["accuracy"] <= 1
    saved = json.loads((tmp_path / "one-step" / "config.json").read_text())
    assert saved["recipe"] == name and saved["augment"] == RECIPES[name].settings.get("augment")


@pytest.mark.slow
def test_train_cli_takes_the_recipe_and_the_options_given(run_cli, tmp_path):
    result = run_cli(
        "train",
        "--recipe",
        "mnist-fast",
        "--limit",
        "512",
        "--seed",
        "3",
        "--runs-dir",
        tmp_path,
        "--name",
        "fast",
        "--quiet",
    )
    assert result.code == 0, result.err
    saved = json.loads((tmp_path / "fast" / "config.json").read_text())
    settings = RECIPES["mnist-fast"].settings
    assert (saved["recipe"], saved["seed"], saved["limit"], saved["model"]) == (
        "mnist-fast",
        3,
        512,
        RECIPES["mnist-fast"].model,
    )
    assert (saved["epochs"], saved["lr"], saved["validation_split"]) == (
        settings["epochs"],
        settings["lr"],
        settings["validation_split"],
    )


@pytest.mark.slow
def test_mnist_fast_reaches_99_percent(tmp_path):
    """One seed of the recipe, as `cnnlab train --recipe mnist-fast` runs it (about 10 s on 2 cores)."""
    result = train(recipe_config("mnist-fast", seed=0, runs_dir=str(tmp_path)), verbose=False)
    assert result.test["accuracy"] >= 0.989
