"""The Sinkhorn-Knopp algorithm of SwAV: soft codes that spread a batch over the prototypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf
from keras import ops

from keras_siamese import validation
from keras_siamese.losses._checks import _static_shape

if TYPE_CHECKING:
    import numpy as np


def check_sinkhorn_arguments(iterations, epsilon) -> tuple[int, float]:
    """Validates Sinkhorn's `iterations` (an integer >= 1) and `epsilon` (finite, > 0)."""
    iterations = validation.check_integer(
        "sinkhorn_iterations", iterations, meaning=" (Sinkhorn-Knopp iterations; SwAV uses 3)"
    )
    epsilon = validation.check_temperature(epsilon, "epsilon")
    return iterations, epsilon


def sinkhorn(
    scores: tf.Tensor | np.ndarray,
    iterations: int = 3,
    epsilon: float = 0.05,
    mask: tf.Tensor | np.ndarray | None = None,
) -> tf.Tensor:
    """Soft codes of a batch by the Sinkhorn-Knopp algorithm, as in SwAV.

    Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments" (https://arxiv.org/abs/2006.09882), section 3.1: the codes `Q` maximise
    `Tr(Q^T C^T Z) + epsilon H(Q)` over the transportation polytope where the `B` samples
    are spread equally over the `K` prototypes ("equipartition"). Starting from
    `exp(scores / epsilon)` scaled to sum to 1, each iteration gives every prototype the
    same total and then every sample the total `1 / B`; the codes are the result times `B`.
    So each row of the returned codes sums to exactly 1 (a distribution over the
    prototypes), and each column sums to about `B / K`, closer with more iterations. This
    is lightly 1.6.0's `sinkhorn(out, iterations, epsilon)` for the same inputs. The largest
    score is subtracted first (the normalisation cancels it), so `exp` cannot overflow in
    float32.

    The codes are targets: no gradient flows into `scores`. The function computes on the
    scores it is given; `keras_siamese.losses.swav` gives it those of the global batch
    under `tf.distribute`.

    Args:
        scores: `(batch_size, num_prototypes)` similarities of the samples (L2-normalised
            projections) with the (L2-normalised) prototypes.
        iterations: Sinkhorn-Knopp iterations (>= 1; SwAV uses 3).
        epsilon: the entropy weight (finite, > 0; SwAV uses 0.05): smaller gives sharper
            codes.
        mask: optional `(batch_size,)` booleans: the samples that take part. Masked-out
            rows get all-zero codes and do not count in `B`; the other rows' codes are those
            of the batch without them (e.g. queue slots not yet filled).

    Returns:
        float32 codes of the shape of `scores`.

    Raises:
        ValueError: if `scores` is not of rank 2, `mask` not of rank 1, `iterations < 1`,
            or `epsilon` is not finite and > 0.
        TypeError: if `iterations` is not an integer or `epsilon` not a number.

    Example:
        >>> scores = keras.random.uniform((8, 4), seed=1)
        >>> codes = sinkhorn(scores, iterations=3, epsilon=0.05)
        >>> [round(float(total), 4) for total in keras.ops.sum(codes, axis=1)][:2]
        [1.0, 1.0]
    """
    iterations, epsilon = check_sinkhorn_arguments(iterations, epsilon)
    scores = ops.stop_gradient(ops.cast(ops.convert_to_tensor(scores), "float32"))
    shape = _static_shape(scores)
    if shape is not None and len(shape) != 2:
        raise ValueError(
            "Argument `scores` must have rank 2, (batch_size, num_prototypes). "
            f"Received: scores.shape={shape}"
        )
    if mask is None:
        valid = ops.ones((ops.shape(scores)[0], 1), "float32")
    else:
        mask = ops.convert_to_tensor(mask)
        mask_shape = _static_shape(mask)
        if mask_shape is not None and len(mask_shape) != 1:
            raise ValueError(
                "Argument `mask` must have rank 1, one boolean per row of `scores`. "
                f"Received: mask.shape={mask_shape}"
            )
        valid = ops.expand_dims(ops.cast(mask, "float32"), 1)
    logits = scores / epsilon
    largest = ops.max(ops.where(valid > 0, logits, ops.full_like(logits, -float("inf"))))
    largest = ops.where(ops.isfinite(largest), largest, 0.0)  # all rows masked out
    codes = ops.exp(logits - ops.stop_gradient(largest)) * valid
    codes = ops.divide_no_nan(codes, ops.sum(codes))
    count = ops.sum(valid)
    for _ in range(iterations):
        codes = ops.divide_no_nan(codes, ops.sum(codes, axis=0, keepdims=True))
        codes = ops.divide_no_nan(codes, ops.sum(codes, axis=1, keepdims=True) * count)
    return codes * count
