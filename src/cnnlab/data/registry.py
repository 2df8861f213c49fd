"""The datasets by name (``cnnlab.names.DATASETS``): ``load_dataset`` and ``list_datasets`` read this one table.

Built in: ``mnist`` (shipped inside the package), ``fashion-mnist`` (Debian's copy, the cache, or a
download), ``cifar10`` (the binary archive), and any ``folder:PATH`` of class folders. ``data_dir``
reads any IDX dataset from a folder instead.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab import names
from cnnlab.data.cache import cache_dir
from cnnlab.data.dataset import Dataset, DatasetInfo
from cnnlab.errors import CnnlabError


def _mnist_info() -> DatasetInfo:
    from cnnlab.data.idx import MNIST_DIR

    return DatasetInfo("mnist", (28, 28, 1), 10, 60000, 10000, f"{MNIST_DIR} (shipped with cnnlab)")


def _fashion_info() -> DatasetInfo:
    from cnnlab.data.idx import fashion_dirs, find_idx_files

    found = next((folder for folder, _ in fashion_dirs() if folder.is_dir() and not find_idx_files(folder)[1]), None)
    where = (
        str(found)
        if found
        else (
            f"not here: apt-get install dataset-fashion-mnist, or downloaded on first use "
            f"into {cache_dir() / 'fashion-mnist'}"
        )
    )
    return DatasetInfo("fashion-mnist", (28, 28, 1), 10, 60000, 10000, where)


def _cifar_info() -> DatasetInfo:
    from cnnlab.data.cifar import cifar10_info

    return cifar10_info()


def _load_mnist(data_dir: Path | None) -> Dataset:
    from cnnlab.data.idx import load_idx_folder, load_mnist

    return load_mnist() if data_dir is None else load_idx_folder("mnist", data_dir)


def _load_fashion(data_dir: Path | None) -> Dataset:
    from cnnlab.data.idx import load_fashion_mnist, load_idx_folder

    return load_fashion_mnist() if data_dir is None else load_idx_folder("fashion-mnist", data_dir)


def _load_cifar(data_dir: Path | None) -> Dataset:
    from cnnlab.data.cifar import load_cifar10  # each reader is imported when its dataset is asked for

    return load_cifar10(data_dir)


# name -> (load it, from data_dir when one is given; what list_datasets says of it)
BUILT_IN = {
    "mnist": (_load_mnist, _mnist_info),
    "fashion-mnist": (_load_fashion, _fashion_info),
    "cifar10": (_load_cifar, _cifar_info),
}


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    image_size: int | tuple[int, int] = 28,
    channels: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Load ``mnist``, ``fashion-mnist``, ``cifar10`` or ``folder:PATH``.

    ``data_dir``: read the dataset's own files from this folder instead (for IDX datasets the four
    files train-images-idx3-ubyte ... t10k-labels-idx1-ubyte, raw or .gz; any other name is then an
    IDX dataset with classes "0".."K-1"). ``image_size``, ``channels``, ``test_fraction`` and ``seed``
    apply to ``folder:PATH`` datasets only (see ``cnnlab.data.folders.load_image_folder``).
    """
    if name.startswith(names.FOLDER_PREFIX):
        if data_dir is not None:
            raise CnnlabError(f"--data-dir: not used by {name}; the folder is the path after 'folder:'")
        from cnnlab.data.folders import load_image_folder  # Pillow is imported only when needed

        return load_image_folder(name.removeprefix(names.FOLDER_PREFIX), image_size, channels, test_fraction, seed)
    folder = None if data_dir is None else Path(data_dir)
    if name in BUILT_IN:
        return BUILT_IN[name][0](folder)
    if folder is not None:
        from cnnlab.data.idx import load_idx_folder

        return load_idx_folder(name, folder)
    raise CnnlabError(
        f"dataset {name!r}: unknown; choose {', '.join(names.DATASETS)} or folder:PATH, or give "
        "--data-dir DIR holding IDX files"
    )


def class_names(name: str) -> list[str]:
    """The class names of a built-in dataset, without loading it."""
    from cnnlab.data.cifar import CIFAR_CLASSES
    from cnnlab.data.dataset import DIGITS
    from cnnlab.data.idx import FASHION_CLASSES

    return list({"mnist": DIGITS, "fashion-mnist": FASHION_CLASSES, "cifar10": CIFAR_CLASSES}[name])


def list_datasets() -> list[DatasetInfo]:
    """The built-in datasets and where each is read from; nothing is loaded, so this is fast."""
    return [describe() for _, describe in BUILT_IN.values()]
