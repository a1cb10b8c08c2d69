"""SimCLR's learning-rate schedule: `WarmupCosine` and `simclr_learning_rate`."""

from __future__ import annotations

import math

import keras

from keras_siamese import validation

SCALINGS = {"sqrt": 0.075, "linear": 0.3}


@keras.saving.register_keras_serializable(package="keras_siamese")
class WarmupCosine(keras.optimizers.schedules.CosineDecay):
    """Linear warmup from 0 to a peak, then cosine decay to a final rate.

    The schedule of SimCLR (Chen et al., 2020, Sec. B.1: "linear warmup for the first 10
    epochs, and decay the learning rate with the cosine decay schedule without
    restarts"). It is Keras' own `keras.optimizers.schedules.CosineDecay` with a warmup
    (`initial_learning_rate=0`, `warmup_target=peak_learning_rate`,
    `decay_steps=total_steps - warmup_steps`, `alpha=final_learning_rate /
    peak_learning_rate`), under the arguments SimCLR describes. At step `t`:

    ```
    t < warmup_steps:  peak * t / warmup_steps
    otherwise:         final + (peak - final) * (1 + cos(pi * p)) / 2,
                       p = min(1, (t - warmup_steps) / (total_steps - warmup_steps))
    ```

    so the rate reaches `peak_learning_rate` at `warmup_steps` and `final_learning_rate`
    at `total_steps`, where it stays.

    Args:
        peak_learning_rate: the rate at the end of the warmup (> 0).
        total_steps: the step at which the rate reaches `final_learning_rate`.
        warmup_steps: length of the linear warmup (0 starts at the peak);
            `0 <= warmup_steps < total_steps`.
        final_learning_rate: the rate at and after `total_steps`, in
            `[0, peak_learning_rate]`.

    Raises:
        ValueError: if the steps or rates are out of range.
        TypeError: if a step count is not an integer or a rate not a number.

    Example:
        >>> schedule = WarmupCosine(1.0, total_steps=100, warmup_steps=10)
        >>> round(float(schedule(5)), 3), round(float(schedule(10)), 3)
        (0.5, 1.0)
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        final_learning_rate: float = 0.0,
    ):
        peak_learning_rate = validation.check_number(
            "peak_learning_rate", peak_learning_rate, 0.0, include_minimum=False
        )
        total_steps = validation.check_integer("total_steps", total_steps, 1)
        warmup_steps = validation.check_integer("warmup_steps", warmup_steps, 0)
        if warmup_steps >= total_steps:
            raise ValueError(
                "Argument `warmup_steps` must be smaller than `total_steps`. Received: "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        final_learning_rate = validation.check_number(
            "final_learning_rate", final_learning_rate, 0.0
        )
        if final_learning_rate > peak_learning_rate:
            raise ValueError(
                "Argument `final_learning_rate` must not exceed `peak_learning_rate`. "
                f"Received: final_learning_rate={final_learning_rate}, "
                f"peak_learning_rate={peak_learning_rate}"
            )
        super().__init__(
            initial_learning_rate=0.0,
            decay_steps=total_steps - warmup_steps,
            alpha=final_learning_rate / peak_learning_rate,
            name="WarmupCosine",
            warmup_target=peak_learning_rate,
            warmup_steps=warmup_steps,
        )
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.final_learning_rate = final_learning_rate

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_learning_rate": self.final_learning_rate,
        }


def simclr_learning_rate(
    batch_size: int,
    steps: int,
    warmup_steps: int,
    scaling: str = "sqrt",
    base_learning_rate: float | None = None,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Returns SimCLR's learning-rate schedule for a batch size: scaled peak, warmup, cosine.

    Chen et al., 2020 (https://arxiv.org/abs/2002.05709, Sec. B.1 and Appendix B.1):
    the peak rate is `base * sqrt(batch_size)` with base 0.075 (`scaling="sqrt"`, better
    for small batches and long training) or `base * batch_size / 256` with base 0.3
    (`scaling="linear"`). It is reached linearly over `warmup_steps` (SimCLR: 10 epochs)
    and decays with a cosine to 0 at `steps`.

    Args:
        batch_size: the global batch size (> 0), over all replicas.
        steps: total number of training steps (> warmup_steps).
        warmup_steps: number of warmup steps (>= 0).
        scaling: `"sqrt"` or `"linear"`.
        base_learning_rate: overrides the base rate of the scaling rule (> 0).

    Returns:
        A `WarmupCosine` schedule, to pass as `learning_rate` to `LARS`.

    Raises:
        ValueError: for a non-positive batch size, `steps <= warmup_steps`, a negative
            `warmup_steps`, an unknown `scaling` or a non-positive base rate.
        TypeError: for a non-integer batch size or step count.

    Example:
        >>> schedule = simclr_learning_rate(batch_size=256, steps=1000, warmup_steps=100)
        >>> round(schedule.peak_learning_rate, 6)
        1.2
    """
    batch_size = validation.check_integer("batch_size", batch_size, 1)
    steps = validation.check_integer("steps", steps, 1)
    warmup_steps = validation.check_integer("warmup_steps", warmup_steps, 0)
    if steps <= warmup_steps:
        raise ValueError(
            "Argument `steps` must be larger than `warmup_steps`. Received: "
            f"steps={steps}, warmup_steps={warmup_steps}"
        )
    if scaling not in SCALINGS:
        raise ValueError(
            f"Argument `scaling` must be one of {sorted(SCALINGS)}. Received: "
            f"scaling={scaling!r}"
        )
    if base_learning_rate is None:
        base_learning_rate = SCALINGS[scaling]
    base_learning_rate = validation.check_number(
        "base_learning_rate", base_learning_rate, 0.0, include_minimum=False
    )
    if scaling == "sqrt":
        peak = base_learning_rate * math.sqrt(batch_size)
    else:
        peak = base_learning_rate * batch_size / 256
    return WarmupCosine(peak, total_steps=steps, warmup_steps=warmup_steps)
