"""The optimizer recipes of the `train` methods, from the resolved configuration.

`peak_learning_rate` scales `--learning_rate` to the batch size; a method's `build_optimizer`
(see `keras_siamese.cli.methods`) is `scheduled` (SGD with momentum, LARS or Adam on a warmup +
cosine schedule) or a recipe of its own. The rows are read to answer `--help`, so this module
must not import TensorFlow: only the function bodies do.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras_siamese as ks

if TYPE_CHECKING:
    import keras

MOMENTUM = 0.9


def peak_learning_rate(config: dict) -> float:
    """The peak rate: the resolved `--learning_rate` scaled to the batch size.

    `linear`: `rate * batch_size / 256` (Goyal et al. 2017, as SimCLR and SimSiam);
    `sqrt`: `rate * sqrt(batch_size / 256)` (SimCLR's LARS recipe); `none`: unchanged.
    """
    base = config["resolved"]["learning_rate"]
    batch_size = config["resolved"]["batch_size"]
    scaling = config["learning_rate_scaling"]
    if scaling == "linear":
        return base * batch_size / 256
    if scaling == "sqrt":
        return base * math.sqrt(batch_size / 256)
    return base


def scheduled(config: dict) -> keras.optimizers.Optimizer:
    """SGD with momentum 0.9, LARS or Adam (the resolved `--optimizer`) on warmup + cosine."""
    import keras

    resolved = config["resolved"]
    weight_decay = resolved["weight_decay"] or None
    schedule = ks.optimizers.WarmupCosine(
        peak_learning_rate=resolved["peak_learning_rate"],
        total_steps=resolved["total_steps"],
        warmup_steps=resolved["warmup_steps"],
    )
    optimizer = resolved["optimizer"]
    if optimizer == "lars":
        return ks.optimizers.LARS(schedule, momentum=MOMENTUM, weight_decay=weight_decay or 0.0)
    if optimizer == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=weight_decay)
    return keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=weight_decay)


def simsiam(config: dict) -> keras.optimizers.Optimizer:
    """With SGD, SimSiam's recipe; with LARS or Adam, `scheduled`.

    SimSiam with SGD keeps its predictor at the constant peak rate (Chen & He 2021,
    section 4.4) through `keras_siamese.optimizers.simsiam_optimizer`.
    """
    resolved = config["resolved"]
    if resolved["optimizer"] != "sgd":
        return scheduled(config)
    batch_size = config["batch_size"]
    return ks.optimizers.simsiam_optimizer(
        batch_size=batch_size,
        steps=resolved["total_steps"],
        base_learning_rate=resolved["peak_learning_rate"] * 256 / batch_size,
        momentum=MOMENTUM,
        # simsiam_optimizer takes the paper's coupled decay and divides it by (1 - momentum).
        weight_decay=resolved["weight_decay"] * (1.0 - MOMENTUM),
        warmup_steps=resolved["warmup_steps"],
    )
