"""Argument checks of the encoder builders."""

from __future__ import annotations

import numbers

POOLING = ("avg", "max")


def _positive_integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def check_input_shape(input_shape, any_size: bool = False) -> tuple:
    """`(height, width, channels)` of positive Python or numpy integers, as a tuple of ints.

    With `any_size=True`, `(None, None, channels)` (images of any size) is accepted too.
    """
    received = input_shape
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = ()
    any_size_shape = any_size and len(input_shape) == 3 and input_shape[:2] == (None, None)
    if any_size_shape and _positive_integer(input_shape[2]):
        return (None, None, int(input_shape[2]))
    if len(input_shape) != 3 or not all(_positive_integer(d) for d in input_shape):
        expected = "positive integers" + (" (or None, None, channels)" if any_size else "")
        raise ValueError(
            f"Argument `input_shape` must be (height, width, channels) of {expected}. "
            f"Received: input_shape={received!r}"
        )
    return tuple(int(d) for d in input_shape)


def check_pooling(pooling) -> str:
    if pooling not in POOLING:
        raise ValueError(
            "Argument `pooling` must be 'avg' or 'max' (encoders return (batch, features)). "
            f"Received: pooling={pooling!r}"
        )
    return pooling
