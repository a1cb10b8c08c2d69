"""The contrastive margin loss of Siamese pairs: `contrastive_margin`, `ContrastiveMargin`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import validation
from keras_siamese.losses._checks import _static_shape

if TYPE_CHECKING:
    import numpy as np


def _contrastive_margin_per_pair(y, distance, margin):
    y = ops.convert_to_tensor(y)
    distance = ops.convert_to_tensor(distance)
    shape_y, shape_d = _static_shape(y), _static_shape(distance)
    if shape_d is not None and len(shape_d) != 1:
        raise ValueError(
            "Argument `distance` must have rank 1, one distance per pair: (batch_size,). "
            f"Received: distance.shape={shape_d}"
        )
    mismatch = shape_y is not None and (
        len(shape_y) != 1
        or (shape_d is not None and None not in (shape_y[0], shape_d[0]) and shape_y != shape_d)
    )
    if mismatch:
        raise ValueError(
            "Argument `y` must hold one 0/1 label per pair, of the shape of `distance` "
            f"(batch_size,). Received: y.shape={shape_y}, distance.shape={shape_d}"
        )
    y = ops.cast(y, "float32")
    distance = ops.cast(distance, "float32")
    return y * ops.square(distance) + (1.0 - y) * ops.square(ops.relu(margin - distance))


def contrastive_margin(
    y: tf.Tensor | np.ndarray, distance: tf.Tensor | np.ndarray, margin: float = 1.0
) -> tf.Tensor:
    """The contrastive loss of Siamese pairs: pull same-class pairs together, push others apart.

    From Hadsell, Chopra & LeCun, 2006, "Dimensionality Reduction by Learning an
    Invariant Mapping" (Eq. 4, with the 1/2 factors dropped): a similar pair (`y = 1`)
    costs its squared distance, a dissimilar pair (`y = 0`) costs
    `max(margin - distance, 0)^2`, so only dissimilar pairs closer than `margin`
    contribute. The result is `mean(y d^2 + (1 - y) max(margin - d, 0)^2)` over the
    pairs of this replica, computed in float32.

    Args:
        y: `(batch,)` labels, **1 for a same-class pair**, 0 otherwise.
        distance: `(batch,)` distances between the two embeddings of each pair
            (`keras_siamese.similarity.pair_distance`).
        margin: distance beyond which a dissimilar pair costs nothing (> 0). For
            L2-normalised embeddings distances lie in [0, 2].

    Returns:
        The scalar float32 mean over the pairs.

    Raises:
        ValueError: if `distance` is not of rank 1, `y` has another shape, or
            `margin <= 0`.
        TypeError: if `margin` is not a number.

    Example:
        >>> loss = contrastive_margin([1.0, 0.0], [0.5, 0.3], margin=1.0)
        >>> round(float(loss), 4)  # (0.5^2 + (1 - 0.3)^2) / 2
        0.37
    """
    margin = validation.check_number("margin", margin, 0.0, include_minimum=False)
    return ops.mean(_contrastive_margin_per_pair(y, distance, margin))


@keras.saving.register_keras_serializable(package="keras_siamese")
class ContrastiveMargin(keras.losses.Loss):
    """The contrastive loss of Siamese pairs as a `keras.losses.Loss`.

    `y_true` holds the pair labels (1 = same class) and `y_pred` the distances of the
    pairs; the per-pair values are reduced by the Keras `reduction` (the mean by
    default), so `sample_weight` works as for any Keras loss. See `contrastive_margin`
    (Hadsell, Chopra & LeCun, 2006). Passed as `SiameseNetwork(loss=...)` it selects
    pair mode with this margin.

    Args:
        margin: distance beyond which a dissimilar pair costs nothing (> 0).
        name: name of the loss.
        reduction: Keras reduction of the per-pair values.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: if `margin <= 0`; at call time for the shape errors of
            `contrastive_margin`.
        TypeError: if `margin` is not a number.

    Example:
        >>> loss_fn = ContrastiveMargin(margin=1.0)
        >>> round(float(loss_fn([1.0, 0.0], [0.5, 0.3])), 4)
        0.37
    """

    def __init__(
        self,
        margin: float = 1.0,
        name: str = "contrastive_margin",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        margin = validation.check_number("margin", margin, 0.0, include_minimum=False)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = margin

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _contrastive_margin_per_pair(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"margin": self.margin, "dtype": self._dtype_policy.name})
        return config
