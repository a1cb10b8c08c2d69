"""Training curves from the history file that `keras.callbacks.CSVLogger` writes.

`read_history` turns the CSV file into `{metric: per-epoch values}`; `write_curves` draws it
with `training_curves` (one panel per metric). Neither imports TensorFlow.
"""

from __future__ import annotations

import csv
import math
import os

from keras_siamese.plots.figures import training_curves


def read_history(history_path: str | os.PathLike) -> dict[str, list[float | None]]:
    """Reads a `CSVLogger` file as `{metric: per-epoch values}`, None where a value is missing.

    An epoch logged twice (a run interrupted between logging and backing up an epoch, then
    resumed with `CSVLogger(..., append=True)`) keeps its last row. Values that are not finite
    numbers become None.

    Args:
        history_path: the CSV file, with an `epoch` column.

    Returns:
        The metrics in the order of the file's columns; `{}` when the file does not exist.

    Example:
        >>> read_history("runs/simclr/history.csv")["loss"]
        [5.12, 4.31, 4.02]
    """
    history_path = os.fspath(history_path)
    if not os.path.isfile(history_path):
        return {}
    rows = {}
    with open(history_path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            try:
                rows[int(row["epoch"])] = row
            except (KeyError, TypeError, ValueError):
                continue
    history: dict[str, list[float | None]] = {}
    names = [name for row in rows.values() for name in row if name != "epoch"]
    for name in dict.fromkeys(names):
        values = []
        for epoch in sorted(rows):
            text = rows[epoch].get(name)
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = None
            values.append(value if value is not None and math.isfinite(value) else None)
        history[name] = values
    return history


def write_curves(
    history_path: str | os.PathLike, path: str | os.PathLike, title: str | None = None
) -> str | None:
    """Draws the training curves of a `CSVLogger` file into a PNG file.

    Args:
        history_path: the CSV file written by `keras.callbacks.CSVLogger`.
        path: the PNG file to write; its directory is created.
        title: an optional figure title.

    Returns:
        `path`, or None (writing nothing) while the history holds no finite value yet, e.g.
        before the first epoch has ended.

    Example:
        >>> write_curves("runs/simclr/history.csv", "runs/simclr/plots/training_curves.png")
        'runs/simclr/plots/training_curves.png'
    """
    history = read_history(history_path)
    if not any(value is not None for values in history.values() for value in values):
        return None
    return training_curves(history, path, title=title)
