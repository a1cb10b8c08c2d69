"""Argument checks of the encoder builders."""

from __future__ import annotations

import numbers

POOLING = ("avg", "max")
# Token sequences (ViT-style backbones) may also be pooled to their class token (token 0).
TOKEN_POOLING = (*POOLING, "cls")


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


def check_pooling(pooling, allowed: tuple[str, ...] = POOLING) -> str:
    """`pooling` if it is one of `allowed` (`POOLING`, or `TOKEN_POOLING` for KerasHub).

    Args:
        pooling: the value to check.
        allowed: the pooling names the caller implements.

    Returns:
        `pooling`.

    Raises:
        ValueError: naming the allowed values, for any other value.

    Example:
        >>> check_pooling("cls", TOKEN_POOLING)
        'cls'
    """
    if pooling not in allowed:
        names = ", ".join(repr(name) for name in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ValueError(
            f"Argument `pooling` must be {names} (encoders return (batch, features)). "
            f"Received: pooling={pooling!r}"
        )
    return pooling
