"""Commands about datasets (``cnnlab datasets``, ``cnnlab show``) and the dataset options shared by
every command that trains or evaluates: ``@dataset_options`` and ``load_dataset_from_options``.
"""

from __future__ import annotations

from pathlib import Path

import click

DATASET_HELP = "mnist (ships with cnnlab), fashion-mnist, cifar10, or folder:PATH (one sub-folder per class)."

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read the dataset's own files from this folder.",
)
image_size_option = click.option(
    "--image-size",
    type=click.IntRange(min=4),
    default=28,
    show_default=True,
    help="folder: datasets: resize images to this many pixels a side.",
)
channels_option = click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    callback=lambda context, parameter, value: int(value),
    help="folder: datasets: 1 gray, 3 RGB.",
)


def dataset_options(command):
    """Add ``--dataset``, ``--data-dir``, ``--image-size`` and ``--channels`` to a click command."""
    dataset_option = click.option("--dataset", default="mnist", show_default=True, help=DATASET_HELP)
    for option in (channels_option, image_size_option, data_dir_option, dataset_option):
        command = option(command)
    return command


def load_dataset_from_options(dataset: str, data_dir: Path | None = None, image_size: int = 28, channels: int = 1):
    """Load what the dataset options name, and say on stderr which unreadable files were skipped."""
    from cnnlab.data.registry import load_dataset

    loaded = load_dataset(dataset, data_dir, image_size=image_size, channels=channels)
    if loaded.skipped:
        click.echo(f"cnnlab: {loaded.skipped_message()}", err=True)
    return loaded


@click.command("datasets")
def datasets_command() -> None:
    """List the datasets: image shape, classes, sizes, and where each is found or how to get it."""
    from cnnlab.data.registry import list_datasets

    rows = [("name", "shape", "classes", "train", "test", "where")]
    rows += [
        (
            info.name,
            "×".join(map(str, info.image_shape)),
            str(info.num_classes),
            str(info.train_size),
            str(info.test_size),
            info.location,
        )
        for info in list_datasets()
    ]
    rows.append(
        (
            "folder:PATH",
            "N×N×C",
            "folders",
            "-",
            "-",
            "your images: PATH/<class>/*.png, or PATH/train/<class>/ and PATH/test/<class>/",
        )
    )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]))


@click.command(
    "show", help=f"Draw the first samples of DATASET with their class names into a PNG.\n\nDATASET is {DATASET_HELP}"
)
@click.argument("dataset")
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 400),
    default=25,
    show_default=True,
    help="How many samples: the first N of the split.",
)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@data_dir_option
@image_size_option
@channels_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The PNG to write (default: DATASET-samples.png in the current folder).",
)
def show_command(
    dataset: str, count: int, split: str, data_dir: Path | None, image_size: int, channels: int, out: Path | None
) -> None:
    from cnnlab.errors import CnnlabError
    from cnnlab.lab.plots import sample_grid

    loaded = load_dataset_from_options(dataset, data_dir, image_size, channels)
    images, labels = (loaded.x_train, loaded.y_train) if split == "train" else (loaded.x_test, loaded.y_test)
    if not len(images):
        raise CnnlabError(f"{dataset}: its {split} split is empty; show the other one (--split)")
    out = out or Path(f"{Path(dataset.removeprefix('folder:')).name or 'folder'}-samples.png")
    try:
        sample_grid(images[:count], labels[:count], loaded.class_names, out=out)
    except OSError as problem:
        raise CnnlabError(f"{out}: cannot be written ({problem.strerror}); choose another --out") from None
    click.echo(f"wrote {out}: the first {min(count, len(images))} {split} samples of {loaded.name}")


COMMANDS = [datasets_command, show_command]
