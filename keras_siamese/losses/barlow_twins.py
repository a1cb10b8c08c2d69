"""The redundancy-reduction loss of Barlow Twins: `barlow_twins` and `BarlowTwinsLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _check_pair_of_batches, _split_stacked_views

if TYPE_CHECKING:
    import numpy as np

# The epsilon of the per-dimension standardisation, added to the (biased) batch variance:
# PyTorch's `batch_norm` default, which lightly's `BarlowTwinsLoss` uses.
STANDARDIZATION_EPSILON = 1e-5


def _standardize(z):
    """Per dimension over the batch: `(z - mean) / sqrt(biased variance + 1e-5)`."""
    mean = ops.mean(z, axis=0, keepdims=True)
    variance = ops.mean(ops.square(z - mean), axis=0, keepdims=True)
    return (z - mean) / ops.sqrt(variance + STANDARDIZATION_EPSILON)


def barlow_twins(
    z_a: tf.Tensor | np.ndarray,
    z_b: tf.Tensor | np.ndarray,
    lambda_: float = 0.005,
    return_terms: bool = False,
):
    """The Barlow Twins loss: drive the cross-correlation of the two views to the identity.

    Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction"
    (https://arxiv.org/abs/2103.03230), Eq. 1 and 2: each dimension of `z_a` and `z_b` is
    standardised over the batch (biased variance, epsilon 1e-5 under the square root), `C =
    z_a_std^T z_b_std / N` is their `(d, d)` cross-correlation, and the loss is
    `sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2`: the invariance term makes the two
    views' dimensions agree, the redundancy-reduction term decorrelates the dimensions. This
    is lightly 1.6.0's `BarlowTwinsLoss(lambda_param=lambda_)` for the same inputs.

    Inside `strategy.run` of a strategy with more than one replica, `z_a` and `z_b` are
    gathered from every replica (`distribute.all_gather`, differentiable) and the loss of the
    global batch is computed on every replica, as the authors' code does with global
    BatchNorm and an all-reduced `C`. Each replica returns that global loss; divide it by the
    number of replicas (`distribute.scale_for_replicas`) before taking gradients: the summed
    gradients then equal the one-device gradients on the global batch, because the gradient of
    `all_gather` sums what every replica's loss sends to each slice.

    The computation is in float32 whatever the dtype of `z_a` and `z_b`.

    Args:
        z_a: projections of the first views, shape `(batch_size, projection_dims)`.
        z_b: projections of the second views, same shape; row `i` of both is image `i`.
        lambda_: weight of the redundancy-reduction term (>= 0, finite). The paper uses
            0.0051 with 8192 dimensions; lightly's default is 0.005.
        return_terms: also return `{"invariance": ..., "redundancy": ...}`, the two sums
            before weighting (for metrics).

    Returns:
        The scalar float32 loss, or `(loss, terms)` with `return_terms=True`.

    Raises:
        ValueError: if `z_a` or `z_b` is not of rank 2, if their shapes differ, if the static
            batch size is 1 outside a multi-replica step, or if `lambda_` is negative or not
            finite.
        TypeError: if `lambda_` is not a number.

    Example:
        >>> z_a = keras.random.normal((8, 16), seed=1)
        >>> loss = barlow_twins(z_a, z_a + 0.1 * keras.random.normal((8, 16), seed=2))
        >>> float(loss) < 16.0
        True
    """
    lambda_ = validation.check_number("lambda_", lambda_, 0.0)
    z_a = ops.convert_to_tensor(z_a)
    z_b = ops.convert_to_tensor(z_b)
    _check_pair_of_batches(
        z_a, z_b, "Barlow Twins", "the projections of the two views of the same images"
    )
    z_a = distribute.all_gather(ops.cast(z_a, "float32"))
    z_b = distribute.all_gather(ops.cast(z_b, "float32"))
    batch_size = ops.cast(ops.shape(z_a)[0], "float32")
    correlation = ops.matmul(ops.transpose(_standardize(z_a)), _standardize(z_b)) / batch_size
    identity = ops.eye(ops.shape(correlation)[0], dtype="float32")
    invariance = ops.sum(ops.square(ops.diagonal(correlation) - 1.0))
    redundancy = ops.sum(ops.square(correlation) * (1.0 - identity))
    loss = invariance + lambda_ * redundancy
    if return_terms:
        return loss, {"invariance": invariance, "redundancy": redundancy}
    return loss


@keras.saving.register_keras_serializable(package="keras_siamese")
class BarlowTwinsLoss(keras.losses.Loss):
    """The Barlow Twins loss as a `keras.losses.Loss`.

    The Keras `Loss` signature has a single prediction tensor, so `y_pred` holds the two
    views stacked on the batch axis: its first half is `z_a`, its second half `z_b`.
    `y_true` is ignored (pass `None`). See `barlow_twins` for the maths (Zbontar et al.
    2021, https://arxiv.org/abs/2103.03230) and the cross-replica statistics.

    Args:
        lambda_: weight of the redundancy-reduction term (>= 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a bad `lambda_`; at call time if `y_pred` is not of rank 2 or has
            an odd number of rows, or for the errors of `barlow_twins`.
        TypeError: if `lambda_` is not a number.

    Example:
        >>> loss_fn = BarlowTwinsLoss(lambda_=0.005)
        >>> z = keras.random.normal((16, 8), seed=1)  # 8 images, two views each
        >>> float(loss_fn(None, z)) > 0
        True
    """

    def __init__(
        self,
        lambda_: float = 0.005,
        name: str = "barlow_twins",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        lambda_ = validation.check_number("lambda_", lambda_, 0.0)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.lambda_ = lambda_

    def __call__(self, y_true, y_pred, sample_weight=None):
        # y_true is ignored; a placeholder keeps Keras' conversion of None from failing.
        if y_true is None:
            y_true = ops.zeros((), dtype=self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        z_a, z_b = _split_stacked_views(y_pred, type(self).__name__)
        return barlow_twins(z_a, z_b, lambda_=self.lambda_)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"lambda_": self.lambda_, "dtype": self._dtype_policy.name})
        return config
