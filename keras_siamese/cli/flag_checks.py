"""Checks of flag values that run before TensorFlow is imported.

They follow the rules of `keras_siamese.validation` (numbers are finite; a temperature is
> 0; layer sizes are positive integers), which the library applies to the same values, but
answer in flag terms (`--name ... Received: --name=value`) as one `absl.app.UsageError`.
`keras_siamese.validation` itself imports TensorFlow, so the command line cannot call it while
it answers `--help` and argument errors in a fraction of a second; `tests/test_cli_startup.py`
checks that both give the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from absl import app


def _interval(
    minimum: float | None, maximum: float | None, open_minimum: bool, open_maximum: bool
) -> str:
    if minimum is not None and maximum is not None:
        left = "(" if open_minimum else "["
        right = ")" if open_maximum else "]"
        return f"in {left}{minimum:g}, {maximum:g}{right}"
    if minimum is not None:
        return f"a finite number {'>' if open_minimum else '>='} {minimum:g}"
    if maximum is not None:
        return f"a finite number {'<' if open_maximum else '<='} {maximum:g}"
    return "a finite number"


def number(
    name: str,
    value: float,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """Checks that `--name` is a finite number within the bounds; returns it.

    Args:
        name: the flag's name, without dashes.
        value: its parsed value.
        minimum: the lower bound, or None.
        maximum: the upper bound, or None.
        open_minimum: refuse `value == minimum`.
        open_maximum: refuse `value == maximum`.

    Raises:
        absl.app.UsageError: for NaN, an infinity or a value outside the bounds.

    Example:
        >>> number("min_crop_area", 0.25, 0.0, 1.0, open_minimum=True)
        0.25
    """
    bad = not math.isfinite(value)
    if minimum is not None:
        bad = bad or value < minimum or (open_minimum and value == minimum)
    if maximum is not None:
        bad = bad or value > maximum or (open_maximum and value == maximum)
    if bad:
        expected = _interval(minimum, maximum, open_minimum, open_maximum)
        raise app.UsageError(f"--{name} must be {expected}. Received: --{name}={value}")
    return value


def positive(name: str, value: float) -> float:
    """A finite number > 0: the rule of `keras_siamese.validation.check_temperature`."""
    return number(name, value, 0.0, open_minimum=True)


def non_negative(name: str, value: float) -> float:
    """A finite number >= 0 (a margin, a weight decay)."""
    return number(name, value, 0.0)


def positive_integers(name: str, values: Sequence[str]) -> tuple[int, ...]:
    """Checks a list flag of layer sizes (`--projection_dims=512,128`); returns the sizes.

    Raises:
        absl.app.UsageError: for an empty list or an item that is not an integer >= 1.

    Example:
        >>> positive_integers("projection_dims", ["512", "128"])
        (512, 128)
    """
    items = [str(item).strip() for item in values]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise app.UsageError(
            f"--{name} must be positive integers separated by commas. "
            f"Received: --{name}={','.join(items)}"
        )
    return tuple(int(item) for item in items)


def auto_number(name: str, text: str, default: float, minimum: float, strict: bool) -> float:
    """Parses a flag that is `auto` (the method's `default`) or a finite number above `minimum`.

    Example:
        >>> auto_number("weight_decay", "auto", 5e-4, 0.0, strict=False)
        0.0005
    """
    if text.strip().lower() == "auto":
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    in_range = value > minimum if strict else value >= minimum
    if not in_range or not math.isfinite(value):
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise app.UsageError(
            f"--{name} must be 'auto' or a number {bound}. Received: --{name}={text}"
        )
    return value
