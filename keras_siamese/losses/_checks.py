"""Validation helpers shared by the losses: static shapes, temperature, margin."""

from __future__ import annotations

import numbers


def _static_shape(value) -> tuple | None:
    """Returns the static shape of a tensor as a tuple, or None when the rank is unknown."""
    try:
        return tuple(value.shape)
    except (TypeError, ValueError):
        return None


def _check_same_shape_pair(a, b, names: tuple[str, str], dims: str, meaning: str):
    """Checks two rank-2 tensors of one shape; returns their static shapes (or None)."""
    shapes = _static_shape(a), _static_shape(b)
    for name, shape in zip(names, shapes, strict=True):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"Argument `{name}` must have rank 2, shape (batch_size, {dims}). "
                f"Received: {name}.shape={shape}"
            )
    if shapes[0] is not None and shapes[1] is not None:
        pairs = zip(shapes[0], shapes[1], strict=True)
        if not all(x is None or y is None or x == y for x, y in pairs):
            raise ValueError(
                f"Arguments `{names[0]}` and `{names[1]}` must have the same shape ({meaning}). "
                f"Received: {names[0]}.shape={shapes[0]}, {names[1]}.shape={shapes[1]}"
            )
    return shapes


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"Argument `temperature` must be a positive number. Received: "
            f"temperature={temperature!r} of type {type(temperature).__name__}"
        )
    if not temperature > 0:
        raise ValueError(
            f"Argument `temperature` must be > 0. Received: temperature={temperature}"
        )
    return float(temperature)


def _check_margin(margin, allow_zero: bool) -> float:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(
            f"Argument `margin` must be a number. Received: margin={margin!r} of type "
            f"{type(margin).__name__}"
        )
    if not (margin >= 0 if allow_zero else margin > 0) or margin == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Argument `margin` must be finite and {bound}. Received: margin={margin}")
    return float(margin)
