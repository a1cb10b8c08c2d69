"""The checks of recipe fields: each raises naming the field (`Recipe field `name` ...`).

No TensorFlow at import time.
"""

from __future__ import annotations

import math
from typing import Any


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raises ValueError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"Recipe field `{name}` must be one of {choices}. Received: {name}={value!r}"
        )


def check_number(
    name: str, value: Any, minimum: float = 0.0, maximum: float = math.inf, strict=False
) -> None:
    """Raises TypeError for a non-number, ValueError outside `[minimum, maximum]` (or
    `(minimum, maximum]` when `strict`), naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Recipe field `{name}` must be a number. Received: {name}={value!r}")
    low_ok = value > minimum if strict else value >= minimum
    if not (low_ok and value <= maximum and math.isfinite(value)):
        low = "(" if strict else "["
        raise ValueError(
            f"Recipe field `{name}` must be in {low}{minimum}, {maximum}]. "
            f"Received: {name}={value!r}"
        )


def check_integer(name: str, value: Any, minimum: int = 1) -> None:
    """Raises TypeError for a non-integer, ValueError below `minimum`, naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Recipe field `{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(
            f"Recipe field `{name}` must be at least {minimum}. Received: {name}={value!r}"
        )


def check_dims(name: str, value: Any) -> None:
    """Raises unless `value` is a non-empty tuple of positive integers."""
    if not isinstance(value, tuple) or not value:
        raise TypeError(
            f"Recipe field `{name}` must be a non-empty tuple of integers. Received: "
            f"{name}={value!r}"
        )
    for item in value:
        check_integer(name, item)


__all__ = ["check_choice", "check_dims", "check_integer", "check_number"]


def check_colour(hue: float | None, grayscale_probability: float, color_strength: float) -> None:
    """Checks the colour fields: a probability, and a hue (None: the views' own) in [0, 0.5]
    whose amount at `color_strength` is at most half the colour wheel."""
    check_number("grayscale_probability", grayscale_probability, 0.0, 1.0)
    if hue is None:
        return
    check_number("hue", hue, 0.0, 0.5)
    if hue * color_strength > 0.5:
        raise ValueError(
            "Recipe field `hue` times `color_strength` must be at most 0.5 (a half turn of "
            f"the colour wheel). Received: hue={hue}, color_strength={color_strength}"
        )
