"""Baseline tables: several encoders side by side, beside the raw pixels, in one Markdown table.

A learned representation means little alone: the examples read it against the raw pixels
(`raw_pixels`, what any method must beat) and the same encoder at random initialisation.
`compare_encoders` measures every encoder with the same protocols, data and seed (the weighted
kNN, the linear probe, the linear probe on a fraction of the labels, all from one
`representation_report` per encoder) and `format_table` prints the rows as Markdown.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import keras

from keras_siamese import validation
from keras_siamese.evaluation.features import Data, check_data
from keras_siamese.evaluation.linear_probe import _check_seed
from keras_siamese.evaluation.report import fraction_name, representation_report
from keras_siamese.evaluation.subsets import _check_fraction

KNN_K = 200  # InstDisc's and SimSiam's monitor: k=200, T=0.1
KNN_TEMPERATURE = 0.1


def comparison_columns(label_fraction: float = 0.01) -> tuple[str, str, str]:
    """The column names of `compare_encoders`' rows for `label_fraction`.

    Example:
        >>> comparison_columns(0.01)
        ('kNN', 'linear probe', 'linear probe, 1% of labels')
    """
    return ("kNN", "linear probe", f"linear probe, {fraction_name(label_fraction)} of labels")


def raw_pixels(image_shape: Sequence[int]) -> keras.Model:
    """The baseline "encoder": images in [0, 255] -> pixels in [0, 1], flattened, float32.

    Float32 whatever the global dtype policy, so the baseline is the same under mixed
    precision. It starts with a `Rescaling` layer, so every evaluation protocol takes it as
    it takes a keras_siamese model: images as stored, no `input_scale`.

    Args:
        image_shape: `(height, width, channels)` of the images.

    Returns:
        A `keras.Model` from `(batch, *image_shape)` to `(batch, height * width * channels)`.

    Raises:
        TypeError: if `image_shape` is not a sequence of integers.
        ValueError: if it does not have 3 positive sides.

    Example:
        >>> pixels = raw_pixels((28, 28, 1))
        >>> pixels.output_shape
        (None, 784)
    """
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, Sequence):
        raise TypeError(
            "Argument `image_shape` must be a sequence (height, width, channels). "
            f"Received: image_shape={image_shape!r}"
        )
    if len(image_shape) != 3:
        raise ValueError(
            "Argument `image_shape` must have 3 entries (height, width, channels). "
            f"Received: image_shape={tuple(image_shape)!r}"
        )
    shape = tuple(validation.check_integer("image_shape", side) for side in image_shape)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Rescaling(1 / 255, dtype="float32"),
            keras.layers.Flatten(dtype="float32"),
        ],
        name="raw_pixels",
    )


def compare_encoders(
    encoders: Mapping[str, Callable],
    train: Data,
    test: Data,
    probe_epochs: int = 20,
    label_fraction: float = 0.01,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Measures each encoder's frozen features with the same three protocols.

    For every encoder, one `representation_report`: the weighted kNN (k=200, T=0.1, `train`
    as the memory, `test` as the queries), the linear probe on all of `train`'s labels
    (`probe_epochs` epochs) and the linear probe on a class-balanced `label_fraction` of them
    (its default epochs), each as the top-1 accuracy on `test`. Same data and seed for every
    encoder, so the rows compare.

    Args:
        encoders: `{row name: encoder}`, in table order. An encoder is a keras_siamese model
            (or its `embedding_model()`) or a Keras model starting with a `Rescaling` layer
            (`raw_pixels`): anything that takes the images as stored, in [0, 255].
        train: `(images, labels)` numpy arrays or a dataset of them.
        test: the same for the evaluation split.
        probe_epochs: epochs of the linear probe on all labels.
        label_fraction: fraction of the training labels of the few-label probe, in (0, 1].
        seed: seed of the probes and of the labelled subset.
        progress: show the protocols' progress bars.

    Returns:
        `{row name: {column: top-1 accuracy in [0, 1]}}`, the columns being
        `comparison_columns(label_fraction)`: "kNN", "linear probe" and
        "linear probe, 1% of labels" (for 0.01).

    Raises:
        TypeError: if `encoders` is not a mapping of names to callables, or an argument has
            the wrong type.
        ValueError: if `encoders` is empty, `probe_epochs` < 1, `label_fraction` is outside
            (0, 1], `seed` < 0, or as `representation_report`.

    Example:
        >>> rows = compare_encoders(
        ...     {"raw pixels": raw_pixels((28, 28, 1)), "SimCLR": model},
        ...     (x_train, y_train), (x_test, y_test), probe_epochs=20)
        >>> print(format_table(rows))
    """
    _check_encoders(encoders)
    validation.check_integer("probe_epochs", probe_epochs)
    label_fraction = _check_fraction(label_fraction)
    _check_seed(seed)
    check_data(train, "train")
    check_data(test, "test")
    columns = comparison_columns(label_fraction)
    rows = {}
    for name, encoder in encoders.items():
        report = representation_report(
            encoder,
            train,
            test,
            k=KNN_K,
            temperature=KNN_TEMPERATURE,
            label_fractions=(),
            linear_label_fractions=(label_fraction,),
            linear_probe_options={"epochs": probe_epochs},
            seed=seed,
            progress=progress,
        )
        top1 = (
            report["knn"]["top1"],
            report["linear_probe"]["top1"],
            report["few_label_linear"][fraction_name(label_fraction)]["top1"],
        )
        rows[name] = dict(zip(columns, top1, strict=True))
    return rows


def _check_encoders(encoders) -> None:
    if not isinstance(encoders, Mapping):
        raise TypeError(
            "Argument `encoders` must be a dict {row name: encoder}. "
            f"Received: encoders={encoders!r} of type {type(encoders).__name__}"
        )
    if not encoders:
        raise ValueError("Argument `encoders` must name at least one encoder. Received: {}")
    for name, encoder in encoders.items():
        if not isinstance(name, str) or not callable(encoder):
            raise TypeError(
                "Argument `encoders` must map row names (str) to encoders (callable models). "
                f"Received: {name!r}: {type(encoder).__name__}"
            )


def format_table(
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[str] | Mapping[str, str] | None = None,
    name_header: str = "Encoder",
    scale: float = 100.0,
    digits: int | Mapping[str, int] = 1,
    missing: str = "—",
) -> str:
    """`{row name: {column: number}}` as a Markdown table, one line per row.

    Args:
        rows: the rows in table order, e.g. `compare_encoders`' result.
        columns: the columns to show, in order: keys of the rows, or `{key: header}`; None:
            the first row's keys.
        name_header: header of the first column (the row names).
        scale: every number is multiplied by it (100: accuracies in [0, 1] as %).
        digits: decimals, for every column or `{key: decimals}` (others: 1).
        missing: the cell of a column a row lacks.

    Returns:
        The table, lines joined by newlines, without a final newline.

    Raises:
        TypeError: if `rows` is not a mapping of mappings, or a cell is not a number.
        ValueError: if `rows` is empty or `columns` selects none.

    Example:
        >>> print(format_table({"raw pixels": {"kNN": 0.8533}}))
        | Encoder | kNN |
        |---|---|
        | raw pixels | 85.3 |
    """
    headers = _check_rows_and_columns(rows, columns)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise TypeError(f"Argument `scale` must be a finite number. Received: scale={scale!r}")
    lines = [
        f"| {name_header} | " + " | ".join(headers.values()) + " |",
        "|---" * (len(headers) + 1) + "|",
    ]
    for name, row in rows.items():
        cells = [_cell(row, key, scale, digits, missing) for key in headers]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _check_rows_and_columns(rows, columns) -> dict[str, str]:
    """Checks `format_table`'s rows; returns `{column key: header}`."""
    if not isinstance(rows, Mapping) or not all(isinstance(r, Mapping) for r in rows.values()):
        raise TypeError(
            "Argument `rows` must be a dict {row name: {column: number}}. "
            f"Received: rows={rows!r}"
        )
    if not rows:
        raise ValueError("Argument `rows` must hold at least one row. Received: rows={}")
    if columns is None:
        columns = list(next(iter(rows.values())))
    headers = dict(columns) if isinstance(columns, Mapping) else {key: key for key in columns}
    if not headers:
        raise ValueError(f"Argument `columns` must select a column. Received: columns={columns!r}")
    return headers


def _cell(row: Mapping, key: str, scale: float, digits, missing: str) -> str:
    if key not in row:
        return missing
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `rows` must hold numbers. Received: {key}={value!r} of type "
            f"{type(value).__name__}"
        )
    decimals = digits.get(key, 1) if isinstance(digits, Mapping) else digits
    return f"{value * scale:.{decimals}f}"
