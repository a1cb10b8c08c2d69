"""Sub-center ArcFace: `sub_center_arcface`, `sub_center_arcface_from_cosines`,
`SubCenterArcFaceLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import proxies as class_proxies
from keras_siamese import validation
from keras_siamese.losses.arcface import (
    arcface_from_cosines,
    check_margin_degrees,
    check_scale,
)
from keras_siamese.losses.proxy_loss import ProxyLoss

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def class_cosines(cosines: tf.Tensor, sub_centers: int) -> tf.Tensor:
    """Each class's largest cosine over its sub-centres: `(batch, C * K)` to `(batch, C)`.

    Column `c * sub_centers + k` is sub-centre `k` of class `c`.
    """
    columns = cosines.shape[-1]
    columns = int(columns) if columns is not None else tf.shape(cosines)[-1]
    grouped = tf.reshape(cosines, [-1, columns // sub_centers, sub_centers])
    return tf.reduce_max(grouped, axis=2)


def sub_center_arcface_from_cosines(
    cosines: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    sub_centers: int = 3,
    margin: float = 28.6,
    scale: float = 64.0,
) -> tf.Tensor:
    """Sub-center ArcFace on precomputed cosines (the output of `ClassProxies`).

    See `sub_center_arcface`; `cosines[i, c * sub_centers + k]` is the cosine of embedding `i`
    with sub-centre `k` of class `c`.

    Args:
        cosines: `(batch, num_classes * sub_centers)` cosine similarities.
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        sub_centers: the sub-centres of each class (>= 1).
        margin: the additive angular margin in degrees, in [0, 180).
        scale: the scale of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for wrong shapes (columns not a multiple of `sub_centers`), labels out of
            range (when known) or bad hyperparameters.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> cosines = np.eye(2, 6, dtype="float32")  # each on its class's first sub-centre
        >>> float(sub_center_arcface_from_cosines(cosines, [0, 0], scale=8.0)) > 0
        True
    """
    sub_centers = validation.check_integer("sub_centers", sub_centers)
    margin, scale = check_margin_degrees(margin), check_scale(scale)
    labels = class_proxies.as_labels(labels)
    class_proxies.check_cosines(cosines, labels, columns_divisor=sub_centers)
    cosines = class_cosines(tf.cast(cosines, tf.float32), sub_centers)
    return arcface_from_cosines(cosines, labels, margin=margin, scale=scale)


def sub_center_arcface(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    class_weights: tf.Tensor | np.ndarray,
    sub_centers: int = 3,
    margin: float = 28.6,
    scale: float = 64.0,
) -> tf.Tensor:
    """The sub-center ArcFace loss: ArcFace against the closest of K sub-centres per class.

    Deng et al. 2020, "Sub-center ArcFace: Boosting Face Recognition by Large-Scale Noisy Web
    Faces" (ECCV): each class has `sub_centers` weights; the cosine of an embedding with a
    class is its largest cosine with the class's sub-centres, and ArcFace (`arcface`) is
    computed on those class cosines, so a class may keep clean and noisy (or multi-modal)
    examples on different sub-centres. This is pytorch-metric-learning's
    `SubCenterArcFaceLoss` with its defaults (`sub_centers=3`, `margin=28.6` degrees,
    `scale=64`; the mean over the batch) for the same inputs, whose weight column
    `c * sub_centers + k` is row `c * sub_centers + k` of `class_weights` here.

    Under `tf.distribute` each replica returns its share of the global mean (see `arcface`).

    Args:
        embeddings: `(batch, dims)` embeddings (normalised here).
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        class_weights: `(num_classes * sub_centers, dims)` weights (normalised here); row
            `c * sub_centers + k` is sub-centre `k` of class `c`.
        sub_centers: the sub-centres `K` of each class (>= 1; 1 is ArcFace).
        margin: the additive angular margin in degrees, in [0, 180).
        scale: the scale of the logits (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: if `embeddings` or `class_weights` are not of rank 2, differ in dims, or
            `class_weights` has a number of rows that `sub_centers` does not divide; for labels
            out of range (when known) or bad hyperparameters.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> weights = np.eye(6, 8, dtype="float32")  # 2 classes x 3 sub-centres
        >>> loss = sub_center_arcface(weights[[0, 4]], [0, 1], weights, scale=16.0)
        >>> float(loss) < 1e-3
        True
    """
    sub_centers = validation.check_integer("sub_centers", sub_centers)
    class_proxies.check_proxies(embeddings, class_weights, "class_weights", sub_centers)
    cosines = class_proxies.proxy_cosines(embeddings, class_weights)
    return sub_center_arcface_from_cosines(
        cosines, labels, sub_centers=sub_centers, margin=margin, scale=scale
    )


@keras.saving.register_keras_serializable(package="keras_siamese")
class SubCenterArcFaceLoss(ProxyLoss):
    """Sub-center ArcFace (Deng et al. 2020) as a `keras.losses.Loss`; see
    `sub_center_arcface`.

    `y_true` holds the integer labels `(batch,)` and `y_pred` the cosine similarities to every
    sub-centre, `(batch, num_classes * sub_centers)`: the output of
    `keras_siamese.proxies.ClassProxies(num_classes, proxies_per_class=sub_centers)`.
    `compute(embeddings, labels, proxies=class_weights)` takes the embeddings instead.

    Args:
        num_classes: the number of classes (>= 1).
        sub_centers: the sub-centres of each class (>= 1; 3 as pytorch-metric-learning).
        margin: the additive angular margin in degrees, in [0, 180) (28.6).
        scale: the scale of the logits (> 0; 64).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad hyperparameters; at call time for `y_pred` without
            `num_classes * sub_centers` columns, labels out of range, or the shape errors of
            `sub_center_arcface`.
        TypeError: for non-integer `num_classes` / `sub_centers` or non-number `margin` /
            `scale`.

    Example:
        >>> loss_fn = SubCenterArcFaceLoss(2, sub_centers=3)
        >>> cosines = np.eye(2, 6, dtype="float32")
        >>> float(loss_fn(np.array([0, 1]), cosines)) > 0  # label 1 is far from its centres
        True
    """

    proxy_function = staticmethod(sub_center_arcface)
    cosine_function = staticmethod(sub_center_arcface_from_cosines)

    def __init__(
        self,
        num_classes: int,
        sub_centers: int = 3,
        margin: float = 28.6,
        scale: float = 64.0,
        name: str = "sub_center_arcface_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"sub_centers": sub_centers, "margin": margin, "scale": scale}
        super().__init__(num_classes, hyperparameters, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(sub_centers, margin, scale) -> dict:
        return {
            "sub_centers": validation.check_integer("sub_centers", sub_centers),
            "margin": check_margin_degrees(margin),
            "scale": check_scale(scale),
        }
