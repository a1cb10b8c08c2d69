"""Argument checks shared by the whole package: one rule per kind of argument.

Importing this module does not import TensorFlow, so the command line uses the same rules
for its flags before it loads TensorFlow.

Every public function and class validates its arguments with these before doing any work, so
the same kind of bad value gets the same answer everywhere (a `temperature` of `inf` is refused
by the losses, the models and the kNN protocol alike). Messages follow Keras: they name the
argument, say what is expected and end with `Received: name=value`.

Example:
    >>> from keras_siamese import validation
    >>> validation.check_temperature(0.2)
    0.2
    >>> validation.check_integer("k", 0, minimum=1)
    Traceback (most recent call last):
    ValueError: Argument `k` must be an integer >= 1. Received: k=0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def _type_name(value) -> str:
    return type(value).__name__


def check_number(
    name: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    include_minimum: bool = True,
    include_maximum: bool = True,
    finite: bool = True,
) -> float:
    """Checks a real number (not a bool) inside optional bounds; returns it as a float.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        minimum: the lower bound, or None for none.
        maximum: the upper bound, or None for none.
        include_minimum: whether `value == minimum` is allowed.
        include_maximum: whether `value == maximum` is allowed.
        finite: refuse NaN and infinities.

    Returns:
        `float(value)`.

    Raises:
        TypeError: for a bool or a non-number.
        ValueError: for a value outside the bounds, NaN, or an infinity when `finite`.

    Example:
        >>> check_number("momentum", 0.9, 0.0, 1.0, include_maximum=False)
        0.9
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r} of type "
            f"{_type_name(value)}"
        )
    value = float(value)
    parts = []
    if finite:
        parts.append("finite")
    if minimum is not None:
        parts.append(f"{'>=' if include_minimum else '>'} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<=' if include_maximum else '<'} {maximum:g}")
    bad = math.isnan(value) or (finite and math.isinf(value))
    if minimum is not None:
        bad = bad or value < minimum or (not include_minimum and value == minimum)
    if maximum is not None:
        bad = bad or value > maximum or (not include_maximum and value == maximum)
    if bad:
        expected = " and ".join(parts) if parts else "a number"
        raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")
    return value


def check_integer(name: str, value, minimum: int | None = 1, meaning: str = "") -> int:
    """Checks an integer (Python or numpy, not a bool) >= `minimum`; returns it as an int.

    Args:
        name: the argument's name.
        value: the value to check.
        minimum: the smallest allowed value, or None for any integer.
        meaning: words appended to the expectation, e.g. `" (the number of neighbours)"`.

    Returns:
        `int(value)`.

    Raises:
        TypeError: for a bool, a float or any non-integer.
        ValueError: for a value below `minimum`.

    Example:
        >>> check_integer("batch_size", 256)
        256
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer{meaning}. Received: {name}={value!r} of "
            f"type {_type_name(value)}"
        )
    if minimum is not None and value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}{meaning}. Received: {name}={value}"
        )
    return int(value)


def check_temperature(value, name: str = "temperature") -> float:
    """The one temperature rule: a finite number > 0 (NT-Xent, kNN, InfoNCE, DINO, ...).

    Args:
        value: the temperature.
        name: the argument's name (e.g. `"teacher_temperature"`).

    Returns:
        The temperature as a float.

    Raises:
        TypeError: for a non-number.
        ValueError: for 0, a negative value, NaN or an infinity.

    Example:
        >>> check_temperature(0.5)
        0.5
    """
    return check_number(name, value, 0.0, include_minimum=False)


def check_probability(name: str, value) -> float:
    """Checks a probability in [0, 1]; returns it as a float.

    Example:
        >>> check_probability("solarize_probability", 0.2)
        0.2
    """
    return check_number(name, value, 0.0, 1.0)


def check_dims(name: str, dims) -> tuple[int, ...]:
    """Checks layer sizes: an int or a non-empty sequence of positive ints; returns a tuple.

    Args:
        name: the argument's name (e.g. `"projection_dims"`).
        dims: an int or a sequence of ints.

    Returns:
        The sizes as a tuple of ints.

    Raises:
        ValueError: for an empty sequence, a non-integer or a size < 1.

    Example:
        >>> check_dims("projection_dims", (512, 128))
        (512, 128)
    """
    if isinstance(dims, numbers.Integral) and not isinstance(dims, (bool, np.bool_)):
        dims = (dims,)
    valid = isinstance(dims, Sequence) and not isinstance(dims, str) and len(dims) > 0
    if valid:
        valid = all(
            isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)) and d >= 1
            for d in dims
        )
    if not valid:
        raise ValueError(
            f"Argument `{name}` must be a positive integer or a non-empty sequence of positive "
            f"integers. Received: {name}={dims!r}"
        )
    return tuple(int(d) for d in dims)


def static_shape(value) -> tuple | None:
    """The static shape of an array or tensor as a tuple; None when its rank is unknown.

    Example:
        >>> static_shape(np.zeros((2, 3)))
        (2, 3)
    """
    try:
        return tuple(value.shape)
    except (TypeError, ValueError):
        return None


def check_rank_2(name: str, value, expected: str) -> tuple | None:
    """Checks a static rank of 2 (an unknown rank passes); returns the static shape.

    Args:
        name: the argument's name.
        value: the array or tensor.
        expected: the expected shape as the message words it, e.g. `"(batch_size, dims)"`.

    Raises:
        ValueError: for a known rank other than 2.

    Example:
        >>> check_rank_2("embeddings", np.zeros((8, 4)), "(batch_size, dims)")
        (8, 4)
    """
    shape = static_shape(value)
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"Argument `{name}` must have rank 2, shape {expected}. Received: {name}.shape={shape}"
        )
    return shape


def check_labels_per_row(
    values, labels, name: str = "embeddings", expected: str = "(batch_size, dims)"
) -> None:
    """Checks rank-2 `values` (`check_rank_2`) and labels `(batch_size,)`, one per row.

    Static shapes only (unknown ones pass); the labels' dtype is left to the caller. The
    embeddings of the metric losses and the cosines of the proxy losses go through here.

    Args:
        values: the `(batch_size, ...)` rows the labels belong to.
        labels: one integer class per row.
        name: the argument name of `values`.
        expected: the expected shape of `values` as the message words it.

    Raises:
        ValueError: naming the argument, for `values` not of rank 2, `labels` not of rank 1
            (one-hot labels included) or batch sizes that differ.

    Example:
        >>> check_labels_per_row(np.zeros((4, 8)), np.array([0, 0, 1, 1]))
    """
    shape_v, shape_l = check_rank_2(name, values, expected), static_shape(labels)
    if shape_l is not None and len(shape_l) != 1:
        raise ValueError(
            "Argument `labels` must hold one integer class per embedding, shape "
            "(batch_size,) (not one-hot: use `argmax(labels, axis=-1)`). "
            f"Received: labels.shape={shape_l}"
        )
    if shape_v is not None and shape_l is not None and None not in (shape_v[0], shape_l[0]):
        if shape_v[0] != shape_l[0]:
            raise ValueError(
                f"Arguments `{name}` and `labels` must have the same batch size. "
                f"Received: {name}.shape={shape_v}, labels.shape={shape_l}"
            )


def check_image_batch(value, image_shape: tuple | None, argument: str = "images") -> None:
    """The one image-batch check: rank 4, the expected channels, an integer or float dtype.

    Works on arrays, tensors and `tf.TensorSpec`s (static shapes only, so it runs before
    tracing).

    Args:
        value: the batch (anything with `.shape` and `.dtype`).
        image_shape: the expected `(height, width, channels)`; only the channels are checked
            here (the size check belongs to the caller, which may resize). None skips it.
        argument: the argument's name.

    Raises:
        ValueError: for single images (rank 3), another rank, or the wrong channel count.
        TypeError: for a dtype that is neither integer nor floating (strings, bools).

    Example:
        >>> check_image_batch(np.zeros((8, 28, 28, 1), "uint8"), (28, 28, 1))
    """
    shape = tuple(value.shape)
    expected = "" if image_shape is None else f" matching the encoder input {tuple(image_shape)}"
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = (
                " A rank-3 value is one image (add a batch axis with `image[None]`), images "
                "without a channel axis (add one with `images[..., None]`) or a dataset of "
                "single images (batch them first, e.g. `dataset.batch(64, drop_remainder=True)`)."
            )
        raise ValueError(
            f"Argument `{argument}` must be a batch of images (batch, height, width, "
            f"channels){expected}.{hint} Received: {argument}.shape={shape}"
        )
    if image_shape is not None and shape[-1] is not None and shape[-1] != image_shape[-1]:
        raise ValueError(
            f"Argument `{argument}` must have {image_shape[-1]} channels like the encoder "
            f"input {tuple(image_shape)}. Received: {argument}.shape={shape}"
        )
    dtype = value.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "USO":
        name = "string" if dtype.kind in "US" else "object"
        raise TypeError(
            f"Argument `{argument}` must be uint8 or float in [0, 255]. "
            f"Received: {argument}.dtype={name}"
        )
    import tensorflow as tf  # here only: the command line checks its flags before TensorFlow

    dtype = tf.as_dtype(dtype)
    if dtype.is_bool or not (dtype.is_integer or dtype.is_floating):
        raise TypeError(
            f"Argument `{argument}` must be uint8 or float in [0, 255]. "
            f"Received: {argument}.dtype={dtype.name}"
        )


def check_finite(array, argument: str = "images") -> None:
    """Raises ValueError if a float array holds NaN or infinities (integer arrays pass).

    Example:
        >>> check_finite(np.array([1.0, np.nan]), "images")
        Traceback (most recent call last):
        ValueError: Argument `images` contains NaN or infinite values; ...
    """
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(
            f"Argument `{argument}` contains NaN or infinite values; images must be finite "
            "values in [0, 255]. Received: "
            f"{int(np.sum(~np.isfinite(array)))} non-finite values in {argument}"
        )
