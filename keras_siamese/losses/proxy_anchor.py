"""The Proxy-Anchor loss: `proxy_anchor`, `proxy_anchor_from_cosines`, `ProxyAnchorLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import distribute, validation
from keras_siamese import proxies as class_proxies
from keras_siamese.losses.proxy_loss import ProxyLoss

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


def _check_hyperparameters(margin, alpha) -> tuple[float, float]:
    margin = validation.check_number("margin", margin, 0.0)
    alpha = validation.check_number("alpha", alpha, 0.0, include_minimum=False)
    return margin, alpha


def log_one_plus_sum_exp(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per column, `log(1 + sum of exp(values) over the rows where mask is True)`, stably.

    A column without any True row gives `log(1) = 0`.
    """
    masked = tf.where(mask, values, float("-inf"))
    ones_row = tf.zeros_like(masked[:1])  # exp(0) = 1: the "1 +" of the sum
    return tf.reduce_logsumexp(tf.concat([masked, ones_row], axis=0), axis=0)


def proxy_anchor_from_cosines(
    cosines: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    margin: float = 0.1,
    alpha: float = 32.0,
) -> tf.Tensor:
    """Proxy-Anchor on precomputed cosines (the output of `keras_siamese.proxies.ClassProxies`).

    See `proxy_anchor`; `cosines[i, c]` is the cosine of embedding `i` with the proxy of class
    `c`. Under `tf.distribute` the cosines and labels of every replica are gathered and each
    replica returns the loss of the global batch.

    Args:
        cosines: `(batch, num_classes)` cosine similarities.
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        margin: the margin `delta` (>= 0).
        alpha: the scaling factor `alpha` (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for wrong shapes, labels out of range (when known) or bad hyperparameters.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> loss = proxy_anchor_from_cosines(np.eye(2, dtype="float32"), [0, 1])
        >>> round(float(loss), 3)  # log(1 + e^-28.8) + 2 log(1 + e^3.2) / 2
        3.24
    """
    margin, alpha = _check_hyperparameters(margin, alpha)
    labels = class_proxies.as_labels(labels)
    class_proxies.check_cosines(cosines, labels)
    cosines = tf.cast(cosines, tf.float32)
    num_classes = class_proxies.num_columns(cosines)
    labels, guard = class_proxies.class_labels(labels, num_classes)
    cosines = distribute.all_gather(cosines)
    labels = distribute.all_gather(labels)
    is_positive = tf.one_hot(labels, num_classes, on_value=True, off_value=False)
    positive_terms = log_one_plus_sum_exp(-alpha * (cosines - margin), is_positive)
    negative_terms = log_one_plus_sum_exp(alpha * (cosines + margin), ~is_positive)
    with_positives = tf.reduce_sum(tf.cast(tf.reduce_any(is_positive, axis=0), tf.float32))
    positive_loss = tf.math.divide_no_nan(tf.reduce_sum(positive_terms), with_positives)
    negative_loss = tf.reduce_sum(negative_terms) / tf.cast(num_classes, tf.float32)
    return positive_loss + negative_loss + guard


def proxy_anchor(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | Sequence[int],
    proxies: tf.Tensor | np.ndarray,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> tf.Tensor:
    """The Proxy-Anchor loss: each proxy pulls its class's embeddings, pushes the others.

    Kim et al. 2020, "Proxy Anchor Loss for Deep Metric Learning"
    (https://arxiv.org/abs/2003.13911), Eq. 4: with `s(x, p)` the cosine of an embedding and a
    proxy, `X_p+` the batch's embeddings of the proxy's class and `X_p-` the others,

        loss = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} e^{-alpha (s(x, p) - delta)})
             + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} e^{alpha (s(x, p) + delta)})

    where `P` is every proxy (`num_classes`) and `P+` the proxies with at least one positive
    in the batch. This is pytorch-metric-learning's `ProxyAnchorLoss` with its defaults
    (`margin=0.1`, `alpha=32`; its `DivisorReducer` divides the positive sum by the proxies
    with positives and the negative sum by `num_classes`) for the same inputs.

    Replicas: the loss aggregates over the batch per proxy, so it is not a mean of
    per-example terms. Inside `strategy.run` with several replicas the cosines and labels of
    every replica are gathered (`distribute.all_gather`, differentiable) and each replica
    returns the loss of the **global** batch, as Barlow Twins does. Divide it by the number of
    replicas (`distribute.scale_for_replicas`) before taking gradients: the replicas' summed
    gradients then equal the one-device gradients of the global batch.

    Args:
        embeddings: `(batch, dims)` embeddings (normalised here).
        labels: `(batch,)` integer labels in `[0, num_classes)`.
        proxies: `(num_classes, dims)` proxies (normalised here).
        margin: the margin `delta` (>= 0).
        alpha: the scaling factor `alpha` (> 0).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: if `embeddings` or `proxies` are not of rank 2 or differ in dims, for
            labels out of range (when known) or bad `margin` / `alpha`.
        TypeError: for float labels or non-number hyperparameters.

    Example:
        >>> proxies = np.eye(3, 4, dtype="float32")
        >>> float(proxy_anchor(proxies, [0, 1, 2], proxies)) > 0
        True
    """
    class_proxies.check_proxies(embeddings, proxies, "proxies")
    cosines = class_proxies.proxy_cosines(embeddings, proxies)
    return proxy_anchor_from_cosines(cosines, labels, margin=margin, alpha=alpha)


@keras.saving.register_keras_serializable(package="keras_siamese")
class ProxyAnchorLoss(ProxyLoss):
    """The Proxy-Anchor loss (Kim et al. 2020) as a `keras.losses.Loss`; see `proxy_anchor`.

    `y_true` holds the integer labels `(batch,)` and `y_pred` the cosine similarities of the
    embeddings to the proxies, `(batch, num_classes)`: the output of
    `keras_siamese.proxies.ClassProxies(num_classes)`.
    `compute(embeddings, labels, proxies=proxies)` takes the embeddings instead. Under
    `tf.distribute` every replica returns the global batch's loss (see `proxy_anchor`).

    Args:
        num_classes: the number of classes (>= 1).
        margin: the margin `delta` (>= 0; 0.1, as pytorch-metric-learning and the paper).
        alpha: the scaling factor (> 0; 32).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for bad hyperparameters; at call time for `y_pred` without `num_classes`
            columns, labels out of range, or the shape errors of `proxy_anchor`.
        TypeError: for non-number hyperparameters.

    Example:
        >>> loss_fn = ProxyAnchorLoss(2)
        >>> round(float(loss_fn(np.array([0, 1]), np.eye(2, dtype="float32"))), 3)
        3.24
    """

    proxy_function = staticmethod(proxy_anchor)
    cosine_function = staticmethod(proxy_anchor_from_cosines)

    def __init__(
        self,
        num_classes: int,
        margin: float = 0.1,
        alpha: float = 32.0,
        name: str = "proxy_anchor_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"margin": margin, "alpha": alpha}
        super().__init__(num_classes, hyperparameters, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(margin, alpha) -> dict:
        margin, alpha = _check_hyperparameters(margin, alpha)
        return {"margin": margin, "alpha": alpha}
