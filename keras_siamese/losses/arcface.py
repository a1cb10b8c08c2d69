"""The additive angular margin loss of ArcFace: `arcface`, `arcface_from_cosines`, `ArcFaceLoss`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import proxies as class_proxies
from keras_siamese import validation
from keras_siamese.losses.pair_batch import global_mean
from keras_siamese.losses.proxy_loss import ProxyLoss

if TYPE_CHECKING:
    from collections.abc import Sequence


def check_margin_degrees(margin) -> float:
    """ArcFace's angular margin in degrees: a finite number in [0, 180).

    Raises:
        TypeError: for a non-number.
        ValueError: for a margin outside [0, 180).
    """
    return validation.check_number("margin", margin, 0.0, 180.0, include_maximum=False)


def check_scale(scale) -> float:
    """The logit scale `s` of the margin losses: a finite number > 0."""
    return validation.check_number("scale", scale, 0.0, include_minimum=False)


def angular_margin_target(target: tf.Tensor, margin_degrees: float) -> tf.Tensor:
    """`cos(theta + m)` for `theta = arccos(target)`, kept decreasing past `theta = pi - m`.

    ArcFace's target logit before scaling, as pytorch-metric-learning's `ArcFaceLoss`:
    `cos(theta + m)` while `theta <= pi - m`, else `cos(theta) - m * sin(m)` (the linear
    continuation of the insightface code), with `m` in radians. Computed as
    `cos(theta) cos(m) - sin(theta) sin(m)` with `sin(theta) = sqrt(1 - cos^2)`, whose gradient
    stays finite at `cos(theta) = +-1` (an embedding on its class weight) where `arccos`'s is not.
    """
    margin = math.radians(margin_degrees)
    target = tf.clip_by_value(target, -1.0, 1.0)
    sine_squared = 1.0 - tf.square(target)
    positive = sine_squared > 0.0
    sine = tf.where(positive, tf.sqrt(tf.where(positive, sine_squared, 1.0)), 0.0)
    with_margin = target * math.cos(margin) - sine * math.sin(margin)
    # theta <= pi - m  <=>  cos(theta) >= cos(pi - m) = -cos(m).
    return tf.where(target >= -math.cos(margin), with_margin, target - margin * math.sin(margin))


def margin_softmax_loss(cosines, is_target, target_logits, scale, guard) -> tf.Tensor:
    """The mean softmax cross-entropy of `scale * cosines` with the target cosines replaced.

    Args:
        cosines: float32 `(batch, num_classes)` cosines.
        is_target: bool `(batch, num_classes)` one-hot of the labels.
        target_logits: float32 `(batch,)` the modified cosines of the labels' columns.
        scale: the scale `s`.
        guard: float32 scalar added to the loss (NaN for labels out of range).

    Returns:
        The float32 mean over the batch in the replica convention of `global_mean`.
    """
    logits = scale * tf.where(is_target, target_logits[:, None], cosines)
    target = tf.reduce_sum(tf.where(is_target, logits, 0.0), axis=1)
    per_example = tf.reduce_logsumexp(logits, axis=1) - target
    count = tf.cast(tf.shape(per_example)[0], tf.float32)
    return global_mean(tf.reduce_sum(per_example), count) + guard


def arcface_from_cosines(
    cosines: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    margin: float = 28.6,
    scale: float = 64.0,
) -> tf.Tensor:
    """ArcFace on precomputed cosines (the output of `keras_siamese.proxies.ClassProxies`).

    See `arcface`; `cosines[i, c]` is the cosine of embedding `i` with the weight of class `c`
    and `num_classes` is the number of columns.

    Args:
        cosines: `(batch, num_classes)` cosine similarities.
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        margin: the additive angular margin in degrees, in [0, 180).
        scale: the scale `s` of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for wrong shapes, labels out of range (when known) or bad hyperparameters.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> float(arcface_from_cosines(np.eye(3, dtype="float32"), [0, 1, 2])) < 1e-6
        True
    """
    margin, scale = check_margin_degrees(margin), check_scale(scale)
    labels = class_proxies.as_labels(labels)
    class_proxies.check_cosines(cosines, labels)
    cosines = tf.cast(cosines, tf.float32)
    labels, guard = class_proxies.class_labels(labels, class_proxies.num_columns(cosines))
    is_target, target = class_proxies.target_cosines(cosines, labels)
    target_logits = angular_margin_target(target, margin)
    return margin_softmax_loss(cosines, is_target, target_logits, scale, guard)


def arcface(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    class_weights: tf.Tensor | np.ndarray,
    margin: float = 28.6,
    scale: float = 64.0,
) -> tf.Tensor:
    """The ArcFace loss: softmax cross-entropy with an additive angular margin.

    Deng et al. 2019, "ArcFace: Additive Angular Margin Loss for Deep Face Recognition"
    (https://arxiv.org/abs/1801.07698), Eq. 3: with `theta_j` the angle between the
    L2-normalised embedding and the L2-normalised weight of class `j`, the loss of an
    example of class `y` is `-log(e^{s cos(theta_y + m)} / (e^{s cos(theta_y + m)} +
    sum_{j != y} e^{s cos(theta_j)}))`, averaged over the batch. Past `theta_y = pi - m`
    the target logit continues as `s (cos(theta_y) - m sin(m))` so that it keeps decreasing.
    This is pytorch-metric-learning's `ArcFaceLoss` with its defaults (`margin=28.6` degrees,
    about the paper's 0.5 radian, `scale=64`; the mean over the batch) for the same inputs.

    Under `tf.distribute` each replica returns its share of the global mean
    (`pair_batch.global_mean`: local sum / global batch size * replicas), so after
    `distribute.scale_for_replicas` the replicas sum to the one-device loss.

    Args:
        embeddings: `(batch, dims)` embeddings (normalised here).
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        class_weights: `(num_classes, dims)` class weights (normalised here).
        margin: the additive angular margin `m` in degrees, in [0, 180).
        scale: the scale `s` of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: if `embeddings` or `class_weights` are not of rank 2 or differ in dims,
            for labels out of range (when known) or bad `margin` / `scale`.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> weights = np.eye(4, 8, dtype="float32")
        >>> float(arcface(weights[[0, 1, 2, 3]], [0, 1, 2, 3], weights, scale=16.0)) < 1.0
        True
    """
    class_proxies.check_proxies(embeddings, class_weights, "class_weights")
    cosines = class_proxies.proxy_cosines(embeddings, class_weights)
    return arcface_from_cosines(cosines, labels, margin=margin, scale=scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ArcFaceLoss(ProxyLoss):
    """The ArcFace loss (Deng et al. 2019) as a `keras.losses.Loss`; see `arcface`.

    `y_true` holds the integer labels `(batch,)` (or `(batch, 1)`) and `y_pred` the cosine
    similarities of the embeddings to the class weights, `(batch, num_classes)`: the output
    of `keras_siamese.proxies.ClassProxies(num_classes)`, which owns the weights.
    `compute(embeddings, labels, proxies=class_weights)` takes the embeddings instead.

    Args:
        num_classes: the number of classes (>= 1).
        margin: the additive angular margin in degrees, in [0, 180) (28.6, as
            pytorch-metric-learning).
        scale: the scale of the logits (> 0; 64).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad hyperparameters; at call time for `y_pred` without `num_classes`
            columns, labels out of range, or the shape errors of `arcface`.
        TypeError: for non-number hyperparameters.

    Example:
        >>> loss_fn = ArcFaceLoss(3)
        >>> float(loss_fn(np.array([0, 1, 2]), np.eye(3, dtype="float32"))) < 1e-6
        True
    """

    proxy_function = staticmethod(arcface)
    cosine_function = staticmethod(arcface_from_cosines)

    def __init__(
        self,
        num_classes: int,
        margin: float = 28.6,
        scale: float = 64.0,
        name: str = "arcface_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"margin": margin, "scale": scale}
        super().__init__(num_classes, hyperparameters, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(margin, scale) -> dict:
        return {"margin": check_margin_degrees(margin), "scale": check_scale(scale)}
