"""SimSiam's stop-gradient negative cosine: `negative_cosine`, `NegativeCosine`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese.losses._checks import _check_same_shape_pair

if TYPE_CHECKING:
    import numpy as np


def _check_prediction_pair(p, z) -> None:
    """Validates the static shapes of a prediction and its target."""
    _check_same_shape_pair(
        p, z, ("p", "z"), "dims", "the prediction of one view and the projection of the other"
    )


def _negative_cosine_per_example(p, z):
    p = ops.convert_to_tensor(p)
    z = ops.convert_to_tensor(z)
    _check_prediction_pair(p, z)
    z = ops.stop_gradient(z)
    p = ops.normalize(ops.cast(p, "float32"), axis=-1)
    z = ops.normalize(ops.cast(z, "float32"), axis=-1)
    return -ops.sum(p * z, axis=-1)


def negative_cosine(p: tf.Tensor | np.ndarray, z: tf.Tensor | np.ndarray) -> tf.Tensor:
    """Negative cosine similarity with a stop-gradient on the target, SimSiam's `D(p, z)`.

    From Chen & He, 2021, "Exploring Simple Siamese Representation Learning"
    (https://arxiv.org/abs/2011.10566), Eq. 1 and 3:
    `D(p, z) = -(p / ||p||) . (stopgrad(z) / ||z||)`, averaged over the batch. The
    stop-gradient is inside: no gradient ever flows into `z`, which is what keeps
    SimSiam from collapsing. SimSiam's symmetric loss is
    `0.5 * negative_cosine(p_a, z_b) + 0.5 * negative_cosine(p_b, z_a)`.

    The value is in [-1, 1] (-1 when every `p_i` points along `z_i`) and is computed in
    float32 whatever the input dtype; rows of zeros count as similarity 0.

    Args:
        p: predictions of one view, shape `(n, dims)`.
        z: projections of the other view (the targets), same shape.

    Returns:
        The scalar float32 mean over the `n` rows.

    Raises:
        ValueError: if `p` or `z` is not of rank 2 or their shapes differ.

    Example:
        >>> p = keras.random.normal((8, 16), seed=1)
        >>> round(float(negative_cosine(p, 3.0 * p)), 4)
        -1.0
    """
    return ops.mean(_negative_cosine_per_example(p, z))


@keras.saving.register_keras_serializable(package="keras_siamese")
class NegativeCosine(keras.losses.Loss):
    """SimSiam's negative cosine similarity as a `keras.losses.Loss`.

    `y_true` holds the targets `z` (gradients never reach them) and `y_pred` the
    predictions `p`; the per-example values `-cos(p_i, z_i)` are reduced by the Keras
    `reduction` (the mean by default), so `sample_weight` works as for any Keras loss.
    See `negative_cosine` (Chen & He, 2021, https://arxiv.org/abs/2011.10566).

    Args:
        name: name of the loss.
        reduction: Keras reduction of the per-example values.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: at call time if `y_true` or `y_pred` is not of rank 2 or their
            shapes differ.

    Example:
        >>> loss_fn = NegativeCosine()
        >>> p = keras.random.normal((8, 16), seed=1)
        >>> round(float(loss_fn(-p, p)), 4)
        1.0
    """

    def __init__(
        self,
        name: str = "negative_cosine",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _negative_cosine_per_example(y_pred, y_true)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"dtype": self._dtype_policy.name})
        return config
