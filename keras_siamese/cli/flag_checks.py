"""Checks of flag values that run before TensorFlow is imported.

`number` and `positive` apply the rules of `keras_siamese.validation` (numbers are finite; a
temperature is > 0) to the flags of `evaluate`; `auto_integer` parses `train --crop_size` and
`--encoder_grid`. The recipe fields of `train` are checked by the recipes themselves
(`keras_siamese.cli.recipe_flags`). Each answers in flag terms (`--name ... Received:
--name=value`) as one `absl.app.UsageError`, without TensorFlow.
"""

from __future__ import annotations

from absl import app

from keras_siamese import validation


def _flag_error(name: str, error: Exception) -> app.UsageError:
    """The library's message in flag terms: `--name` for `name`."""
    message = str(error).replace(f"Argument `{name}`", f"--{name}")
    return app.UsageError(message.replace(f"Received: {name}=", f"Received: --{name}="))


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

    The rule is `keras_siamese.validation.check_number`'s (which imports no TensorFlow).

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
    try:
        validation.check_number(
            name,
            value,
            minimum,
            maximum,
            include_minimum=not open_minimum,
            include_maximum=not open_maximum,
        )
    except (TypeError, ValueError) as error:
        raise _flag_error(name, error) from None
    return value


def positive(name: str, value: float) -> float:
    """A finite number > 0: the rule of `keras_siamese.validation.check_temperature`."""
    return number(name, value, 0.0, open_minimum=True)


def auto_integer(name: str, value, minimum: int, expected: str) -> str | int:
    """Parses a flag that is `auto` or an integer >= `minimum`; returns `"auto"` or the int.

    Idempotent: an int (a value already parsed, or read back from config.json) is checked
    and returned.

    Args:
        name: the flag's name, without dashes.
        value: its text (or an int).
        minimum: the smallest integer accepted.
        expected: what the values mean, for the error (e.g. "1: global average pooling").

    Raises:
        absl.app.UsageError: for anything else, naming the flag, the value and `expected`.

    Example:
        >>> auto_integer("encoder_grid", "4", 1, "1: global average pooling")
        4
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    text = str(value).strip()
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif text.isdigit():
        number = int(text)
    if number is None or number < minimum:
        raise app.UsageError(
            f"--{name} must be 'auto' or an integer >= {minimum} ({expected}). "
            f"Received: --{name}={value}"
        )
    return number
