"""`set_mixed_precision`: Keras' global dtype policy by name."""

from __future__ import annotations

import keras

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
