"""Argument checks of the encoder builders."""

from __future__ import annotations

import numbers

POOLING = ("avg", "max")


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """`(height, width, channels)` of positive Python or numpy integers, as a tuple of ints."""
    received = input_shape
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = ()
    if len(input_shape) != 3 or any(
        isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in input_shape
    ):
        raise ValueError(
            "Argument `input_shape` must be (height, width, channels) of positive integers. "
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
