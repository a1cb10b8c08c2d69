"""Fashion-MNIST (Xiao et al., 2017, https://arxiv.org/abs/1708.07747) from local IDX files.

The four gzipped IDX files of the original release are looked up in order in
`$KERAS_SIAMESE_DATA_DIR`, `/usr/share/datasets/fashion-mnist` (the Debian/Ubuntu package
`dataset-fashion-mnist`) and `~/.keras/datasets/fashion-mnist`. Nothing is ever downloaded.
"""

from __future__ import annotations

import os

import numpy as np

from keras_siamese.datasets import arguments, idx, splits

FASHION_MNIST = "fashion_mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATA_DIR_VARIABLE = "KERAS_SIAMESE_DATA_DIR"

# Searched after `$KERAS_SIAMESE_DATA_DIR`, in this order.
FASHION_MNIST_DIRS = (
    "/usr/share/datasets/fashion-mnist",
    "~/.keras/datasets/fashion-mnist",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def is_fashion_mnist(name: str) -> bool:
    """Whether `name` spells Fashion-MNIST (case, dashes and surrounding spaces ignored)."""
    return name.strip().lower().replace("-", "_") == FASHION_MNIST


def load_arrays(name: str = FASHION_MNIST, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Loads a Fashion-MNIST split as numpy arrays.

    The files are parsed once per process (cached on path, modification time and size)
    and the arrays are read-only views of that cache: copy them before writing.

    Args:
        name: `"fashion_mnist"` (the only dataset held as local arrays).
        split: `"train"`, `"test"`, a slice such as `"train[:1000]"` or `"test[:10%]"`,
            or a concatenation such as `"train+test"`.

    Returns:
        `(images, labels)`: `uint8` images `[N, 28, 28, 1]` in `[0, 255]` and `int64`
        labels `[N]` in `[0, 9]` (names in `FASHION_MNIST_CLASSES`).

    Raises:
        TypeError: if `name` or `split` is not a string.
        ValueError: for another dataset name, an unknown split, or a corrupt file.
        FileNotFoundError: if the files are in none of the searched directories.

    Example:
        >>> images, labels = load_arrays("fashion_mnist", "test[:100]")
        >>> images.shape, labels.shape
        ((100, 28, 28, 1), (100,))
    """
    arguments.check_name(name)
    arguments.check_split(split)
    if not is_fashion_mnist(name):
        raise ValueError(
            "`load_arrays` reads only 'fashion_mnist'; use `load(name, split)` for TFDS "
            f"datasets. Received: name={name!r}"
        )
    parts = splits.parse_split(split, _FILES, FASHION_MNIST)
    directory = _find_directory(sorted({part.name for part in parts}))
    image_chunks, label_chunks = [], []
    for part in parts:
        images, labels = _read_split(directory, part.name)
        selected = splits.select(len(labels), part, split)
        image_chunks.append(images[selected.start : selected.stop])
        label_chunks.append(labels[selected.start : selected.stop])
    if len(parts) == 1:
        return image_chunks[0], label_chunks[0]
    return np.concatenate(image_chunks), np.concatenate(label_chunks)


def _search_directories() -> list[str]:
    directories = []
    from_environment = os.environ.get(DATA_DIR_VARIABLE)
    if from_environment:
        directories.append(from_environment)
    directories.extend(FASHION_MNIST_DIRS)
    return [os.path.abspath(os.path.expanduser(directory)) for directory in directories]


def _find_directory(split_names: list[str]) -> str:
    needed = [file for name in split_names for file in _FILES[name]]
    report = []
    for directory in _search_directories():
        if not os.path.isdir(directory):
            report.append(f"  {directory} (no such directory)")
            continue
        missing = [file for file in needed if not os.path.isfile(os.path.join(directory, file))]
        if not missing:
            return directory
        report.append(f"  {directory} (missing {', '.join(missing)})")
    raise FileNotFoundError(
        f"Fashion-MNIST files {', '.join(needed)} were not found. Searched, in order:\n"
        + "\n".join(report)
        + f"\nInstall them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or download the four *-ubyte.gz files from "
        "https://github.com/zalandoresearch/fashion-mnist and set "
        f"{DATA_DIR_VARIABLE} to their directory."
    )


def _read_split(directory: str, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (os.path.join(directory, file) for file in _FILES[split_name])
    images = idx.read_idx(images_path, idx.IMAGES_MAGIC)
    labels = idx.read_idx(labels_path, idx.LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the counts must agree. One of the files is from another "
            "release or corrupt: replace both."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{labels_path} holds label {int(labels.max())}, but Fashion-MNIST labels are "
            f"0 to {len(FASHION_MNIST_CLASSES) - 1}. The file is corrupt: replace it."
        )
    return images[..., np.newaxis], labels.astype(np.int64)
