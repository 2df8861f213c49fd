"""Training recipes: a model and the settings that train it well, fast (the table is ``cnnlab.names.RECIPES``).

A recipe is a one-line model spec and the ``TrainConfig`` fields that differ from the course's
defaults: optimizer and its hyper-parameters, schedule, epochs, batch, augmentation, label smoothing,
validation split. ``cnnlab train --recipe NAME`` starts from them; options given on the command line
override them. ``cnnlab recipes`` prints what was measured when each was written; run the recipe to
measure it on your machine.
"""

from __future__ import annotations

from cnnlab.errors import CnnlabError
from cnnlab.names import RECIPES, Recipe


def list_recipes() -> list[Recipe]:
    return list(RECIPES.values())


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise CnnlabError(f"--recipe {name}: no such recipe; choose one of {', '.join(RECIPES)} (see cnnlab recipes)")
    return RECIPES[name]


def recipe_config(recipe_name: str, /, **overrides):
    """The TrainConfig of a recipe; ``overrides`` (TrainConfig fields, ``name`` included) win over its settings."""
    from cnnlab.training.config import TrainConfig

    recipe = get_recipe(recipe_name)
    return TrainConfig(
        **{"model": recipe.model, "dataset": recipe.dataset, **recipe.settings, "recipe": recipe_name, **overrides}
    )


def format_recipes() -> str:
    """One block per recipe: what it is, its settings, and what was measured."""
    blocks = []
    for recipe in list_recipes():
        settings = ", ".join(f"{key} {value}" for key, value in recipe.settings.items())
        lines = [
            f"{recipe.name}  ({recipe.dataset}, target {recipe.target:.1%})",
            f"  {recipe.description}",
            f"  model: {recipe.model}",
            f"  settings: {settings}",
        ]
        if recipe.measured is None:
            lines.append("  measured: not yet")
        else:
            done = recipe.measured
            if len(done.accuracies) == 1:
                accuracy, wall = f"{done.mean_accuracy:.2%} (seed 0)", f"{done.seconds[0]:.1f} s"
            else:
                each = ", ".join(f"{value:.2%}" for value in done.accuracies)
                accuracy = f"{done.mean_accuracy:.2%} mean of {len(done.accuracies)} seeds ({each})"
                wall = f"{done.median_seconds:.1f} s median ({min(done.seconds):.1f}–{max(done.seconds):.1f} s)"
            lines.append(f"  measured: test accuracy {accuracy}; wall {wall}, whole process")
            lines.append(f"            {done.date}, {done.machine}, {done.conditions}")
        lines.append(f"  run: cnnlab train --recipe {recipe.name}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
