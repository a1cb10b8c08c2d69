"""VICReg's variance-invariance-covariance loss: `vicreg` and `VICRegLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _check_pair_of_batches, _split_stacked_views

if TYPE_CHECKING:
    import numpy as np


def _centered(z):
    return z - ops.mean(z, axis=0, keepdims=True)


def _variance_term(z, epsilon):
    """Mean over dimensions of `relu(1 - sqrt(unbiased variance + epsilon))`."""
    count = ops.cast(ops.shape(z)[0], "float32")
    variance = ops.sum(ops.square(_centered(z)), axis=0) / (count - 1.0)
    return ops.mean(ops.relu(1.0 - ops.sqrt(variance + epsilon)))


def _covariance_term(z):
    """Sum of the squared off-diagonal entries of the unbiased covariance, divided by d."""
    count = ops.cast(ops.shape(z)[0], "float32")
    centered = _centered(z)
    covariance = ops.matmul(ops.transpose(centered), centered) / (count - 1.0)
    dims = ops.shape(covariance)[0]
    off_diagonal = 1.0 - ops.eye(dims, dtype="float32")
    return ops.sum(ops.square(covariance) * off_diagonal) / ops.cast(dims, "float32")


def _check_weights(invariance_weight, variance_weight, covariance_weight, epsilon):
    return (
        validation.check_number("invariance_weight", invariance_weight, 0.0),
        validation.check_number("variance_weight", variance_weight, 0.0),
        validation.check_number("covariance_weight", covariance_weight, 0.0),
        validation.check_number("epsilon", epsilon, 0.0, include_minimum=False),
    )


def vicreg(
    z_a: tf.Tensor | np.ndarray,
    z_b: tf.Tensor | np.ndarray,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    epsilon: float = 1e-4,
    return_terms: bool = False,
):
    """The VICReg loss: invariance between views, variance and decorrelation within each.

    Bardes et al. 2022, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning" (https://arxiv.org/abs/2105.04906), Eq. 1-6, as the authors'
    code and lightly 1.6.0's `VICRegLoss(lambda_param=invariance_weight,
    mu_param=variance_weight, nu_param=covariance_weight, eps=epsilon)` compute it:

    - invariance: the mean squared difference of `z_a` and `z_b` over all entries;
    - variance: `mean_j relu(1 - sqrt(Var(z_j) + epsilon))` with the unbiased batch
      variance of dimension `j`, averaged over the two branches;
    - covariance: the sum of the squared off-diagonal entries of the unbiased covariance
      matrix, divided by the dimension, summed over the two branches.

    The loss is the weighted sum of the three terms. Inside `strategy.run` of a strategy with
    more than one replica, `z_a` and `z_b` are gathered from every replica
    (`distribute.all_gather`, differentiable) and all three terms are computed on the global
    batch on every replica. Each replica returns that global loss; divide it by the number
    of replicas (`distribute.scale_for_replicas`) before taking gradients and the summed
    gradients equal the one-device gradients on the global batch.

    The computation is in float32 whatever the dtype of `z_a` and `z_b`.

    Args:
        z_a: embeddings ("expander" outputs) of the first views, `(batch_size, dims)`.
        z_b: embeddings of the second views, same shape; row `i` of both is image `i`.
        invariance_weight: lambda of the paper (>= 0; 25).
        variance_weight: mu of the paper (>= 0; 25).
        covariance_weight: nu of the paper (>= 0; 1).
        epsilon: added to the variance under the square root (> 0; 1e-4).
        return_terms: also return `{"invariance": ..., "variance": ..., "covariance": ...}`,
            the three terms before weighting (for metrics).

    Returns:
        The scalar float32 loss, or `(loss, terms)` with `return_terms=True`.

    Raises:
        ValueError: if `z_a` or `z_b` is not of rank 2, if their shapes differ, if the static
            batch size is 1 outside a multi-replica step (the unbiased variance needs 2), for
            a negative or non-finite weight, or an `epsilon` that is not finite and > 0.
        TypeError: if a weight or `epsilon` is not a number.

    Example:
        >>> z_a = keras.random.normal((8, 16), seed=1)
        >>> loss, terms = vicreg(z_a, z_a, return_terms=True)
        >>> float(terms["invariance"])
        0.0
    """
    weights = _check_weights(invariance_weight, variance_weight, covariance_weight, epsilon)
    invariance_weight, variance_weight, covariance_weight, epsilon = weights
    z_a = ops.convert_to_tensor(z_a)
    z_b = ops.convert_to_tensor(z_b)
    _check_pair_of_batches(z_a, z_b, "VICReg", "the embeddings of the two views of the same images")
    z_a = distribute.all_gather(ops.cast(z_a, "float32"))
    z_b = distribute.all_gather(ops.cast(z_b, "float32"))
    invariance = ops.mean(ops.square(z_a - z_b))
    variance = 0.5 * (_variance_term(z_a, epsilon) + _variance_term(z_b, epsilon))
    covariance = _covariance_term(z_a) + _covariance_term(z_b)
    loss = (
        invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    )
    if return_terms:
        return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}
    return loss


@keras.saving.register_keras_serializable(package="keras_siamese")
class VICRegLoss(keras.losses.Loss):
    """The VICReg loss as a `keras.losses.Loss`.

    `y_pred` holds the two views stacked on the batch axis: its first half is `z_a`, its
    second half `z_b`. `y_true` is ignored (pass `None`). See `vicreg` for the maths
    (Bardes et al. 2022, https://arxiv.org/abs/2105.04906) and the cross-replica statistics.

    Args:
        invariance_weight: weight of the invariance term (>= 0).
        variance_weight: weight of the variance term (>= 0).
        covariance_weight: weight of the covariance term (>= 0).
        epsilon: added to the variance under the square root (> 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a bad weight or `epsilon`; at call time if `y_pred` is not of rank 2
            or has an odd number of rows, or for the errors of `vicreg`.
        TypeError: if a weight or `epsilon` is not a number.

    Example:
        >>> loss_fn = VICRegLoss()
        >>> z = keras.random.normal((16, 8), seed=1)  # 8 images, two views each
        >>> float(loss_fn(None, z)) > 0
        True
    """

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        epsilon: float = 1e-4,
        name: str = "vicreg",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        weights = _check_weights(invariance_weight, variance_weight, covariance_weight, epsilon)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.invariance_weight, self.variance_weight = weights[:2]
        self.covariance_weight, self.epsilon = weights[2:]

    def __call__(self, y_true, y_pred, sample_weight=None):
        # y_true is ignored; a placeholder keeps Keras' conversion of None from failing.
        if y_true is None:
            y_true = ops.zeros((), dtype=self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        z_a, z_b = _split_stacked_views(y_pred, type(self).__name__)
        return vicreg(
            z_a,
            z_b,
            invariance_weight=self.invariance_weight,
            variance_weight=self.variance_weight,
            covariance_weight=self.covariance_weight,
            epsilon=self.epsilon,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "invariance_weight": self.invariance_weight,
                "variance_weight": self.variance_weight,
                "covariance_weight": self.covariance_weight,
                "epsilon": self.epsilon,
                "dtype": self._dtype_policy.name,
            }
        )
        return config
