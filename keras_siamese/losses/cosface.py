"""The additive cosine margin loss of CosFace: `cosface`, `cosface_from_cosines`, `CosFaceLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import proxies as class_proxies
from keras_siamese import validation
from keras_siamese.losses.arcface import check_scale, margin_softmax_loss
from keras_siamese.losses.proxy_loss import ProxyLoss

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def check_cosine_margin(margin) -> float:
    """CosFace's margin, subtracted from a cosine: a finite number in [0, 2]."""
    return validation.check_number("margin", margin, 0.0, 2.0)


def cosface_from_cosines(
    cosines: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    margin: float = 0.35,
    scale: float = 64.0,
) -> tf.Tensor:
    """CosFace on precomputed cosines (the output of `keras_siamese.proxies.ClassProxies`).

    See `cosface`; `cosines[i, c]` is the cosine of embedding `i` with the weight of class `c`.

    Args:
        cosines: `(batch, num_classes)` cosine similarities.
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        margin: the cosine margin `m`, in [0, 2].
        scale: the scale `s` of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for wrong shapes, labels out of range (when known) or bad hyperparameters.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> float(cosface_from_cosines(np.eye(3, dtype="float32"), [0, 1, 2])) < 1e-6
        True
    """
    margin, scale = check_cosine_margin(margin), check_scale(scale)
    labels = class_proxies.as_labels(labels)
    class_proxies.check_cosines(cosines, labels)
    cosines = tf.cast(cosines, tf.float32)
    labels, guard = class_proxies.class_labels(labels, class_proxies.num_columns(cosines))
    is_target, target = class_proxies.target_cosines(cosines, labels)
    return margin_softmax_loss(cosines, is_target, target - margin, scale, guard)


def cosface(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    class_weights: tf.Tensor | np.ndarray,
    margin: float = 0.35,
    scale: float = 64.0,
) -> tf.Tensor:
    """The CosFace loss (large margin cosine loss): softmax with a margin on the cosine.

    Wang et al. 2018, "CosFace: Large Margin Cosine Loss for Deep Face Recognition"
    (https://arxiv.org/abs/1801.09414), Eq. 4: with `cos(theta_j)` the cosine of the
    L2-normalised embedding and the L2-normalised weight of class `j`, the loss of an example
    of class `y` is `-log(e^{s (cos(theta_y) - m)} / (e^{s (cos(theta_y) - m)} + sum_{j != y}
    e^{s cos(theta_j)}))`, averaged over the batch. This is pytorch-metric-learning's
    `CosFaceLoss` with its defaults (`margin=0.35`, `scale=64`; the mean over the batch) for
    the same inputs.

    Under `tf.distribute` each replica returns its share of the global mean
    (`pair_batch.global_mean`), so after `distribute.scale_for_replicas` the replicas sum to
    the one-device loss.

    Args:
        embeddings: `(batch, dims)` embeddings (normalised here).
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        class_weights: `(num_classes, dims)` class weights (normalised here).
        margin: the cosine margin `m`, in [0, 2].
        scale: the scale `s` of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: if `embeddings` or `class_weights` are not of rank 2 or differ in dims,
            for labels out of range (when known) or bad `margin` / `scale`.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> weights = np.eye(4, 8, dtype="float32")
        >>> float(cosface(weights, [0, 1, 2, 3], weights, scale=16.0)) < 0.01
        True
    """
    class_proxies.check_proxies(embeddings, class_weights, "class_weights")
    cosines = class_proxies.proxy_cosines(embeddings, class_weights)
    return cosface_from_cosines(cosines, labels, margin=margin, scale=scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class CosFaceLoss(ProxyLoss):
    """The CosFace loss (Wang et al. 2018) as a `keras.losses.Loss`; see `cosface`.

    `y_true` holds the integer labels `(batch,)` and `y_pred` the cosine similarities of the
    embeddings to the class weights, `(batch, num_classes)`: the output of
    `keras_siamese.proxies.ClassProxies(num_classes)`.
    `compute(embeddings, labels, proxies=class_weights)` takes the embeddings instead.

    Args:
        num_classes: the number of classes (>= 1).
        margin: the cosine margin, in [0, 2] (0.35, as pytorch-metric-learning).
        scale: the scale of the logits (> 0; 64).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad hyperparameters; at call time for `y_pred` without `num_classes`
            columns, labels out of range, or the shape errors of `cosface`.
        TypeError: for non-number hyperparameters.

    Example:
        >>> loss_fn = CosFaceLoss(3)
        >>> float(loss_fn(np.array([0, 1, 2]), np.eye(3, dtype="float32"))) < 1e-6
        True
    """

    proxy_function = staticmethod(cosface)
    cosine_function = staticmethod(cosface_from_cosines)

    def __init__(
        self,
        num_classes: int,
        margin: float = 0.35,
        scale: float = 64.0,
        name: str = "cosface_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"margin": margin, "scale": scale}
        super().__init__(num_classes, hyperparameters, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(margin, scale) -> dict:
        return {"margin": check_cosine_margin(margin), "scale": check_scale(scale)}
