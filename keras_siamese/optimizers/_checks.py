"""Validation helpers shared by the optimizers and schedules."""

from __future__ import annotations

import numbers


def _check_number(name: str, value, minimum: float, inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    if value < minimum or (not inclusive and value == minimum):
        relation = ">=" if inclusive else ">"
        raise ValueError(
            f"Argument `{name}` must be {relation} {minimum}. Received: {name}={value}"
        )
    return float(value)


def _check_integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer. Received: {name}={value!r} of type "
            f"{type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"Argument `{name}` must be >= {minimum}. Received: {name}={value}")
    return int(value)
