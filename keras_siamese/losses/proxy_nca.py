"""The ProxyNCA loss: `proxy_nca`, `proxy_nca_from_cosines`, `ProxyNCALoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import proxies as class_proxies
from keras_siamese import validation
from keras_siamese.losses.pair_batch import global_mean
from keras_siamese.losses.proxy_loss import ProxyLoss

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def _check_softmax_scale(softmax_scale) -> float:
    return validation.check_number("softmax_scale", softmax_scale, 0.0, include_minimum=False)


def proxy_nca_from_cosines(
    cosines: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    softmax_scale: float = 1.0,
) -> tf.Tensor:
    """ProxyNCA on precomputed cosines (the output of `keras_siamese.proxies.ClassProxies`).

    See `proxy_nca`; `cosines[i, c]` is the cosine of embedding `i` with the proxy of class
    `c`, and the squared distance of the unit vectors is `2 - 2 cos`.

    Args:
        cosines: `(batch, num_classes)` cosine similarities.
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        softmax_scale: the scale of the negative squared distances in the softmax (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for wrong shapes, labels out of range (when known) or a bad
            `softmax_scale`.
        TypeError: for float labels or a non-number `softmax_scale`.

    Example:
        >>> loss = proxy_nca_from_cosines(np.eye(2, dtype="float32"), [0, 1])
        >>> round(float(loss), 4)  # log(1 + e^-2)
        0.1269
    """
    softmax_scale = _check_softmax_scale(softmax_scale)
    labels = class_proxies.as_labels(labels)
    class_proxies.check_cosines(cosines, labels)
    cosines = tf.cast(cosines, tf.float32)
    labels, guard = class_proxies.class_labels(labels, class_proxies.num_columns(cosines))
    logits = -softmax_scale * (2.0 - 2.0 * cosines)  # -scale * squared distance
    _, target = class_proxies.target_cosines(logits, labels)
    per_example = tf.reduce_logsumexp(logits, axis=1) - target
    count = tf.cast(tf.shape(per_example)[0], tf.float32)
    return global_mean(tf.reduce_sum(per_example), count) + guard


def proxy_nca(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    proxies: tf.Tensor | np.ndarray,
    softmax_scale: float = 1.0,
) -> tf.Tensor:
    """The ProxyNCA loss: NCA of each embedding against one proxy per class.

    Movshovitz-Attias et al. 2017, "No Fuss Distance Metric Learning using Proxies"
    (https://arxiv.org/abs/1703.07464): the probability that an embedding `x` of class `y`
    picks its class's proxy is a softmax over the proxies of `-softmax_scale * d(x, p)^2`,
    and the loss is its negative log, averaged over the batch. As pytorch-metric-learning's
    `ProxyNCALoss` (whose `NCALoss` defaults to `LpDistance(power=2)`), `d` is the Euclidean
    distance of the L2-normalised embedding and proxy, so `d^2 = 2 - 2 cos`; with its default
    `softmax_scale=1` and the mean over the batch this gives its value for the same inputs.
    (Only where a softmax probability underflows to exactly 0 do they differ: PML drops that
    example from the mean, here its log-softmax stays finite and counts.)

    Under `tf.distribute` each replica returns its share of the global mean
    (`pair_batch.global_mean`), so after `distribute.scale_for_replicas` the replicas sum to
    the one-device loss.

    Args:
        embeddings: `(batch, dims)` embeddings (normalised here).
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        proxies: `(num_classes, dims)` proxies (normalised here).
        softmax_scale: the scale of the negative squared distances in the softmax (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: if `embeddings` or `proxies` are not of rank 2 or differ in dims, for
            labels out of range (when known) or a bad `softmax_scale`.
        TypeError: for float labels or a non-number `softmax_scale`.

    Example:
        >>> proxies = np.eye(3, 4, dtype="float32")
        >>> round(float(proxy_nca(proxies, [0, 1, 2], proxies)), 4)  # log(1 + 2 e^-2)
        0.2395
    """
    class_proxies.check_proxies(embeddings, proxies, "proxies")
    cosines = class_proxies.proxy_cosines(embeddings, proxies)
    return proxy_nca_from_cosines(cosines, labels, softmax_scale=softmax_scale)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProxyNCALoss(ProxyLoss):
    """The ProxyNCA loss (Movshovitz-Attias et al. 2017) as a `keras.losses.Loss`; see
    `proxy_nca`.

    `y_true` holds the integer labels `(batch,)` and `y_pred` the cosine similarities of the
    embeddings to the proxies, `(batch, num_classes)`: the output of
    `keras_siamese.proxies.ClassProxies(num_classes)`.
    `compute(embeddings, labels, proxies=proxies)` takes the embeddings instead.

    Args:
        num_classes: the number of classes (>= 1).
        softmax_scale: the scale of the negative squared distances (> 0; 1, as
            pytorch-metric-learning).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad hyperparameters; at call time for `y_pred` without `num_classes`
            columns, labels out of range, or the shape errors of `proxy_nca`.
        TypeError: for a non-integer `num_classes` or a non-number `softmax_scale`.

    Example:
        >>> loss_fn = ProxyNCALoss(2)
        >>> round(float(loss_fn(np.array([0, 1]), np.eye(2, dtype="float32"))), 4)
        0.1269
    """

    proxy_function = staticmethod(proxy_nca)
    cosine_function = staticmethod(proxy_nca_from_cosines)

    def __init__(
        self,
        num_classes: int,
        softmax_scale: float = 1.0,
        name: str = "proxy_nca_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"softmax_scale": softmax_scale}
        super().__init__(num_classes, hyperparameters, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(softmax_scale) -> dict:
        return {"softmax_scale": _check_softmax_scale(softmax_scale)}
