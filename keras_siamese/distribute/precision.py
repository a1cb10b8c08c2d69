"""`set_mixed_precision`: Keras' global dtype policy by name; `fastest_precision`: which one
trains faster on this machine, timed; `time_train_step`: the seconds of a model's training step
(what a time budget is divided by, `keras_siamese.recipes.steps_in_budget`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

MIXED_PRECISION_NAMES = ("none", "bfloat16", "float16")


def set_mixed_precision(name: str | None) -> str:
    """Sets Keras' global dtype policy: `"bfloat16"`, `"float16"` or `"none"` (float32).

    Layers then compute in the low precision with float32 variables; keras_siamese's losses,
    similarities and metrics cast to float32. With `"float16"`, `compile` wraps the optimizer
    in a `keras.optimizers.LossScaleOptimizer` and the training steps scale the loss with
    `optimizer.scale_loss`. bfloat16 needs no loss scaling (TPUs, recent CPUs and GPUs).
    Call it before building the model.

    Args:
        name: `"bfloat16"`, `"float16"`, or `"none"`/`None` for float32.

    Returns:
        The policy name set: `"mixed_bfloat16"`, `"mixed_float16"` or `"float32"`.

    Raises:
        ValueError: for another name.

    Example:
        >>> set_mixed_precision("bfloat16")
        'mixed_bfloat16'
        >>> set_mixed_precision("none")
        'float32'
    """
    if name in (None, "none", "float32"):
        policy = "float32"
    elif name in ("bfloat16", "float16"):
        policy = f"mixed_{name}"
    else:
        raise ValueError(
            f"Argument `name` must be one of {', '.join(MIXED_PRECISION_NAMES)}. "
            f"Received: name={name!r}"
        )
    keras.mixed_precision.set_global_policy(policy)
    return policy


def precision_candidates() -> tuple[str, ...]:
    """The precisions worth timing here: float32 and bfloat16, and float16 with a GPU.

    Returns:
        Names for `set_mixed_precision`, float32 first.

    Example:
        >>> precision_candidates()  # on a CPU
        ('float32', 'bfloat16')
    """
    import tensorflow as tf

    gpu = bool(tf.config.list_logical_devices("GPU"))
    return ("float32", "bfloat16", "float16") if gpu else ("float32", "bfloat16")


def _train_step(model: keras.Model, batch) -> Callable[[], None]:
    """`step()`: one call of the model's train function on `batch`, waited for (the loss
    is read back). The first call traces the function."""
    import tensorflow as tf

    model.make_train_function()
    function = model.train_function
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    return lambda: keras.ops.convert_to_numpy(function(iterator)["loss"])


def _seconds(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )


def time_train_step(model: keras.Model, batch, steps: int = 3) -> tuple[float, float]:
    """Times a compiled model's training step on one batch: the first (tracing), then more.

    The first call of the train function traces (and with `jit_compile` compiles) it: its
    time is what a run spends once. The following `steps` calls, timed one by one, give
    the median seconds of a step in the steady state. The model trains on `batch` for
    `steps + 1` steps: time a throwaway copy (built like the real model) when its weights
    matter. `fastest_precision` times its candidates the same way.

    Args:
        model: a compiled `keras.Model` (built, or built by its first step).
        batch: one batch the model's `fit` accepts (e.g. a uint8 image tensor).
        steps: timed steps after the first.

    Returns:
        `(median seconds per step, seconds of the first step)`.

    Raises:
        ValueError: when `steps` is not a positive integer.

    Example:
        >>> step, first = time_train_step(model, images[:256])
        >>> steps = ks.recipes.steps_in_budget(600, step, overhead_seconds=first)
    """
    _check_count("steps", steps)
    step = _train_step(model, batch)
    first = _seconds(step)
    return float(np.median([_seconds(step) for _ in range(steps)])), first


def fastest_precision(
    build_model: Callable[[], keras.Model],
    batch,
    candidates: Sequence[str] | None = None,
    rounds: int = 5,
    margin: float = 0.05,
    return_first_seconds: bool = False,
) -> tuple[str, dict[str, float]] | tuple[str, dict[str, float], dict[str, float]]:
    """Times a model's training step in each precision here; the fastest wins.

    Which precision is faster depends on the hardware, not on the model: on one 2-core Intel
    Xeon bfloat16 ran a ResNet-18 SimCLR step 1.6x slower than float32, on AMD EPYC machines
    from 1.1x to 2.5x faster. So measure, never assume. Each candidate policy is set, the
    model is built and its train function traced and run twice (`time_train_step`'s step,
    the first one timed: tracing included), then the steps are timed in
    interleaved rounds (so a load change hits every candidate alike) and the medians compared:
    a lower precision must beat the first candidate (float32) by `margin`, so that timing
    noise between near-equal candidates never trades accuracy for nothing. The global
    policy in force before the call is restored; call `set_mixed_precision` with the answer
    before building the real model.

    Args:
        build_model: `() -> keras.Model`, compiled, built under the current global policy.
        batch: one batch the model's `fit` accepts (e.g. a uint8 image tensor).
        candidates: names for `set_mixed_precision`; default `precision_candidates()`.
        rounds: timed rounds of one step per candidate.
        margin: how much faster (a fraction of the first candidate's time) another candidate
            must be to be chosen.
        return_first_seconds: also return the seconds of each candidate's first step
            (tracing included: what a run spends once, e.g. for `steps_in_budget`).

    Returns:
        `(name, {name: median seconds per step})`, and `{name: seconds of the first step}`
        third with `return_first_seconds=True`.

    Raises:
        ValueError: for an unknown candidate or `rounds` < 1.

    Example:
        >>> name, seconds = fastest_precision(build_simclr, images[:256])
        >>> set_mixed_precision(name)
    """
    candidates = tuple(candidates or precision_candidates())
    unknown = [name for name in candidates if name not in (*MIXED_PRECISION_NAMES, "float32")]
    if unknown or not candidates:
        raise ValueError(
            "Argument `candidates` must name precisions among float32, bfloat16, float16. "
            f"Received: candidates={candidates!r}"
        )
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ValueError(f"Argument `margin` must be in [0, 1). Received: margin={margin!r}")
    _check_count("rounds", rounds)
    before = keras.mixed_precision.global_policy().name
    steps, firsts = {}, {}
    try:
        for name in candidates:
            set_mixed_precision(name)
            steps[name] = _train_step(build_model(), batch)
            firsts[name] = _seconds(steps[name])  # traces
            steps[name]()
    finally:
        keras.mixed_precision.set_global_policy(before)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(_seconds(step))
    medians = {name: float(np.median(values)) for name, values in times.items()}
    first = candidates[0]
    fastest = min(medians, key=medians.get)
    if medians[fastest] > (1.0 - margin) * medians[first]:
        fastest = first
    return (fastest, medians, firsts) if return_first_seconds else (fastest, medians)
