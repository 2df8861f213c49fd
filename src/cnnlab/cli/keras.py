"""Commands for Keras model files: ``cnnlab import`` turns a ``.keras`` or ``.h5`` file into a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from cnnlab import names
from cnnlab.errors import CnnlabError


@click.command("import")
@click.argument("model_file", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--name", help="Run folder name under --runs-dir (default: MODEL's file name without .keras/.h5).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--dataset",
    type=click.Choice(list(names.DATASETS)),
    help="The dataset the model was trained on: its class names go with the model (default: 0..N-1).",
)
def import_command(model_file: str, name: str | None, runs_dir: str, dataset: str | None) -> None:
    """Turn a Keras model file (MODEL.keras or MODEL.h5, a Sequential model) into a cnnlab run folder.

    Nothing in the file is run: Lambda layers and custom objects are refused. Then use the run as any
    other: `cnnlab predict`, `cnnlab evaluate`, `cnnlab serve`.
    """
    from cnnlab.data.registry import class_names as dataset_classes
    from cnnlab.data.registry import list_datasets
    from cnnlab.nn.keras_files import load_keras
    from cnnlab.training.run import Run

    model = load_keras(model_file)
    outputs = model.output_shape
    if len(outputs) != 1 or model.layers[-1].activation != "softmax":
        raise CnnlabError(
            f"{model_file}: the last layer gives {outputs} with activation "
            f"'{model.layers[-1].activation}', not a softmax over classes; a run is a classifier "
            "(use cnnlab.nn.keras_files.load_keras and keras_predict from Python instead)"
        )
    class_names = [str(k) for k in range(outputs[0])]
    if dataset is not None:
        shape = next(info.image_shape for info in list_datasets() if info.name == dataset)
        class_names = dataset_classes(dataset)
        if tuple(model.input_shape) != shape or len(class_names) != outputs[0]:
            raise CnnlabError(
                f"{model_file}: the model takes {tuple(model.input_shape)} images into {outputs[0]} "
                f"classes, {dataset} has {shape} images in {len(class_names)} classes; give the "
                "dataset it was trained on, or no --dataset"
            )
    run = Run.new(Path(runs_dir) / (name or Path(model_file).stem))
    run.save_model(model, class_names, dataset)
    weights = sum(parameter.numel() for parameter in model.parameters())
    click.echo(
        f"wrote {run}: {len(model.layers)} layers, {weights:,} weights from {model_file}; try "
        f"cnnlab predict {run} IMAGE.png"
    )


COMMANDS = [import_command]
