"""A time budget in training steps: `parse_duration` and `steps_in_budget`, pure arithmetic.

The learning-rate and momentum schedules of a recipe are built for a number of steps, so a
run with a time budget chooses its steps before its model is built: time one training step
of the model (`keras_siamese.distribute.time_train_step`), then take the largest number of
steps whose estimated time fits. No TensorFlow here.

Example:
    >>> import keras_siamese as ks
    >>> recipe = ks.recipes.get("simclr")
    >>> model = recipe.build_model((28, 28, 1), total_steps=1000)
    >>> model.compile(optimizer=recipe.build_optimizer(1000, recipe.batch_size))
    >>> step, first = ks.distribute.time_train_step(model, images[:256])
    >>> steps = ks.recipes.steps_in_budget(
    ...     ks.recipes.parse_duration("10m"), step, overhead_seconds=first
    ... )
    >>> model = recipe.build_model((28, 28, 1), total_steps=steps)  # the real model
"""

from __future__ import annotations

import math
import re

# "600", "90s", "10m", "1.5h" (spaces and case ignored).
_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>s|m|h)?$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# steps are floored: a quotient that is a whole number up to rounding stays that number.
_ROUNDING = 1e-9


def parse_duration(text: str) -> float:
    """Seconds of a duration written as seconds (`"600"`) or with a unit (`"90s"`, `"10m"`,
    `"1.5h"`).

    Args:
        text: a positive number, optionally followed by `s`, `m` or `h`.

    Returns:
        The duration in seconds (> 0).

    Raises:
        TypeError: when `text` is not a string.
        ValueError: when `text` is not a positive duration.

    Example:
        >>> parse_duration("1.5h")
        5400.0
        >>> parse_duration("90s"), parse_duration("600")
        (90.0, 600.0)
    """
    if not isinstance(text, str):
        raise TypeError(f"Argument `text` must be a string. Received: text={text!r}")
    match = _DURATION.match(text.strip().lower())
    seconds = float(match["number"]) * _UNIT_SECONDS[match["unit"]] if match else 0.0
    if not match or not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(
            "Argument `text` must be a positive duration: seconds (600) or a number with s, m "
            f"or h (90s, 10m, 1.5h). Received: text={text!r}"
        )
    return seconds


def _check_seconds(name: str, value, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"Argument `{name}` must be a number of seconds. Received: {name}={value!r}"
        )
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"Argument `{name}` must be finite and {bound}. Received: {name}={value!r}"
        )
    return float(value)


def steps_in_budget(
    budget_seconds: float,
    step_seconds: float,
    overhead_seconds: float = 0.0,
    max_steps: int | None = None,
) -> int:
    """The most training steps whose estimated time fits a budget: at least 1, at most
    `max_steps`.

    The estimate is `overhead_seconds + steps * step_seconds`: the time of a step in the
    steady state (e.g. the median of a few timed steps) and what the run spends once (e.g.
    the first step, which traces and compiles the train function). Whatever else the run
    does (evaluation, checkpoints, reading the data) is outside the estimate: leave it out of
    the budget or add it to `overhead_seconds`.

    Args:
        budget_seconds: the time budget, > 0.
        step_seconds: seconds of one training step, > 0.
        overhead_seconds: seconds spent once, >= 0.
        max_steps: the most steps to return (e.g. what the epochs give), or None.

    Returns:
        `floor((budget_seconds - overhead_seconds) / step_seconds)`, at least 1 (a budget
        smaller than the overhead still trains one step), at most `max_steps`.

    Raises:
        TypeError: for a non-number argument or a non-integer `max_steps`.
        ValueError: for a negative, zero (but `overhead_seconds`) or infinite argument, or
            `max_steps` < 1.

    Example:
        >>> steps_in_budget(600, 0.4, overhead_seconds=20)
        1450
        >>> steps_in_budget(600, 0.4, overhead_seconds=20, max_steps=1000)
        1000
    """
    budget_seconds = _check_seconds("budget_seconds", budget_seconds, positive=True)
    step_seconds = _check_seconds("step_seconds", step_seconds, positive=True)
    overhead_seconds = _check_seconds("overhead_seconds", overhead_seconds, positive=False)
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise TypeError(
                f"Argument `max_steps` must be an int or None. Received: max_steps={max_steps!r}"
            )
        if max_steps < 1:
            raise ValueError(f"Argument `max_steps` must be >= 1. Received: max_steps={max_steps}")
    steps = math.floor((budget_seconds - overhead_seconds) / step_seconds + _ROUNDING)
    steps = max(1, steps)
    return steps if max_steps is None else min(steps, max_steps)
