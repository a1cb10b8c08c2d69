"""`simsiam_optimizer`: SimSiam's SGD recipe with a fixed-rate predictor."""

from __future__ import annotations

import keras

from keras_siamese import validation
from keras_siamese.optimizers.schedules import WarmupCosine
from keras_siamese.optimizers.split import SplitOptimizer


def simsiam_optimizer(
    batch_size: int,
    steps: int,
    base_learning_rate: float = 0.03,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    fixed_predictor_learning_rate: bool = True,
    warmup_steps: int = 0,
) -> keras.optimizers.Optimizer:
    """Returns SimSiam's CIFAR recipe: SGD, linear-scaled rate, cosine decay, fixed predictor.

    Chen & He, 2021 (https://arxiv.org/abs/2011.10566, appendix D, CIFAR): SGD with
    momentum 0.9, weight decay 5e-4 and a rate `base_learning_rate * batch_size / 256`
    (base 0.03) decayed with a cosine to 0 at `steps`, and (section 4.4, their code's
    `--fix-pred-lr`) the predictor trained at the undecayed rate.

    The paper's (PyTorch) weight decay is added to the gradient and so accumulates
    through the momentum; Keras' `SGD(weight_decay=...)` is decoupled
    (`w -= lr * decay * w` each step). To give the same shrinkage per step, the Keras
    decay is `weight_decay / (1 - momentum)` (5e-3 for the defaults).

    Args:
        batch_size: the global batch size (> 0), over all replicas.
        steps: total number of training steps (> warmup_steps).
        base_learning_rate: the rate for a batch of 256 (> 0).
        momentum: SGD momentum in [0, 1).
        weight_decay: the paper's (coupled) weight decay, >= 0.
        fixed_predictor_learning_rate: give the predictor its own optimizer at the
            constant peak rate (a `SplitOptimizer` routing `"predictor"`); False returns
            one `SGD` for all variables.
        warmup_steps: linear warmup of the decayed rate (the paper uses none at
            batch 512; useful at high rates).

    Returns:
        A `SplitOptimizer` of two `keras.optimizers.SGD` (or one `SGD`).

    Raises:
        ValueError: for values out of range.
        TypeError: for non-numeric arguments.

    Example:
        >>> optimizer = simsiam_optimizer(batch_size=512, steps=800 * 97)
        >>> round(float(optimizer.predictor_optimizer.learning_rate), 4)
        0.06
    """
    batch_size = validation.check_integer("batch_size", batch_size, 1)
    steps = validation.check_integer("steps", steps, 1)
    warmup_steps = validation.check_integer("warmup_steps", warmup_steps, 0)
    base_learning_rate = validation.check_number(
        "base_learning_rate", base_learning_rate, 0.0, include_minimum=False
    )
    momentum = validation.check_number("momentum", momentum, 0.0, 1.0, include_maximum=False)
    weight_decay = validation.check_number("weight_decay", weight_decay, 0.0)
    if not isinstance(fixed_predictor_learning_rate, bool):
        raise TypeError(
            "Argument `fixed_predictor_learning_rate` must be a bool. Received: "
            f"fixed_predictor_learning_rate={fixed_predictor_learning_rate!r}"
        )
    peak = base_learning_rate * batch_size / 256
    schedule = WarmupCosine(peak, total_steps=steps, warmup_steps=warmup_steps)
    decay = weight_decay / (1.0 - momentum) if weight_decay > 0 else None
    default = keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=decay, name="sgd")
    if not fixed_predictor_learning_rate:
        return default
    predictor = keras.optimizers.SGD(
        peak, momentum=momentum, weight_decay=decay, name="predictor_sgd"
    )
    return SplitOptimizer(default, predictor, route=("predictor",))
