"""SwAV's swapped-prediction loss over multi-crop views: `swav` and `SwAVLoss`."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _static_shape
from keras_siamese.losses.sinkhorn import check_sinkhorn_arguments, sinkhorn


def _check_score_lists(high_resolution_scores, low_resolution_scores):
    """Lists of rank-2 tensors of one shape, with at least one pair of views."""
    for name, scores in (
        ("high_resolution_scores", high_resolution_scores),
        ("low_resolution_scores", low_resolution_scores),
    ):
        if not isinstance(scores, Sequence) or isinstance(scores, str):
            raise TypeError(
                f"Argument `{name}` must be a list of (batch_size, num_prototypes) tensors, one "
                f"per view. Received: {name} of type {type(scores).__name__}"
            )
    if (
        len(high_resolution_scores) < 1
        or len(high_resolution_scores) + len(low_resolution_scores) < 2
    ):
        raise ValueError(
            "SwAV needs at least one high-resolution view (whose codes are the targets) and "
            "two views in all (one predicts the other's codes). Received: "
            f"{len(high_resolution_scores)} high-resolution and {len(low_resolution_scores)} "
            "low-resolution views"
        )
    high = [ops.convert_to_tensor(s) for s in high_resolution_scores]
    low = [ops.convert_to_tensor(s) for s in low_resolution_scores]
    reference = None
    for index, value in enumerate(high + low):
        kind, position = ("high", index) if index < len(high) else ("low", index - len(high))
        shape = _static_shape(value)
        if shape is None:
            continue
        if len(shape) != 2:
            raise ValueError(
                f"Argument `{kind}_resolution_scores` must hold rank-2 tensors (batch_size, "
                f"num_prototypes). Received: {kind}_resolution_scores[{position}].shape={shape}"
            )
        if reference is None:
            reference = shape
            continue
        pairs = zip(shape, reference, strict=True)
        if any(a is not None and b is not None and a != b for a, b in pairs):
            raise ValueError(
                "Every view's scores must have the same shape (batch_size, num_prototypes). "
                f"Received: {kind}_resolution_scores[{position}].shape={shape} and "
                f"high_resolution_scores[0].shape={reference}"
            )
    return high, low


def _cross_entropy(scores, codes, temperature):
    """`-mean_rows sum_k codes * log_softmax(scores / temperature)`."""
    log_probabilities = ops.log_softmax(scores / temperature, axis=1)
    return -ops.mean(ops.sum(codes * log_probabilities, axis=1))


def swav(
    high_resolution_scores: Sequence,
    low_resolution_scores: Sequence = (),
    temperature: float = 0.1,
    sinkhorn_iterations: int = 3,
    epsilon: float = 0.05,
    queue_scores: Sequence | None = None,
    queue_mask=None,
):
    """SwAV's loss: predict the Sinkhorn codes of one view from the scores of another.

    Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments" (https://arxiv.org/abs/2006.09882), Eq. 1-3 and multi-crop (section 3.2):
    for each high-resolution view `i`, the codes `q_i = sinkhorn(scores_i)` (no gradient)
    are predicted by every other view `v` through the cross-entropy
    `-mean_n sum_k q_i * log softmax(scores_v / temperature)`; the sum over `v` is divided
    by the number of views minus one, and the result averaged over the high-resolution views.
    Low-resolution (local) views only predict. This is lightly 1.6.0's `SwaVLoss(
    temperature, sinkhorn_iterations, sinkhorn_epsilon)(high, low, queue_outputs)` for the
    same inputs.

    Inside `strategy.run` of a strategy with more than one replica, every view's scores are
    gathered from all replicas (`distribute.all_gather`, differentiable): Sinkhorn spreads
    the global batch over the prototypes, as SwAV's code does, and the loss of the global
    batch is computed on every replica. Each replica returns that global loss; divide it by
    the number of replicas (`distribute.scale_for_replicas`) before taking gradients and the
    summed gradients equal the one-device gradients on the global batch.

    The computation is in float32 whatever the dtype of the scores.

    Args:
        high_resolution_scores: list of `(batch_size, num_prototypes)` scores, one per
            high-resolution (global) view: the similarities of its L2-normalised projections
            with the L2-normalised prototypes.
        low_resolution_scores: list of scores of the low-resolution (local) views, same shape.
        temperature: the softmax temperature of the predictions (finite, > 0; 0.1).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (>= 1; 3).
        epsilon: Sinkhorn's entropy weight (finite, > 0; 0.05).
        queue_scores: optional list, one per high-resolution view, of `(queue_length,
            num_prototypes)` scores of earlier batches' projections of that view (global
            already: they are not gathered). They join the batch in Sinkhorn, which then
            spreads more samples than a small batch holds; only the batch is predicted.
        queue_mask: optional `(queue_length,)` booleans: the queue rows that take part (the
            filled ones); all when None.

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for fewer than one high-resolution view or two views in all, scores not
            of rank 2 or of different shapes, queue scores not one per high-resolution view,
            or a bad `temperature`, `sinkhorn_iterations` or `epsilon`.
        TypeError: if the scores or `queue_scores` are not lists, or a number argument is not
            a number.

    Example:
        >>> scores = [keras.random.normal((8, 16), seed=seed) for seed in (1, 2)]
        >>> float(swav(scores, [], temperature=0.1)) > 0
        True
    """
    temperature = validation.check_temperature(temperature)
    sinkhorn_iterations, epsilon = check_sinkhorn_arguments(sinkhorn_iterations, epsilon)
    high, low = _check_score_lists(high_resolution_scores, low_resolution_scores)
    if queue_scores is not None:
        if isinstance(queue_scores, str) or not isinstance(queue_scores, Sequence):
            raise TypeError(
                "Argument `queue_scores` must be a list of (queue_length, num_prototypes) "
                "tensors, one per high-resolution view, or None. Received: queue_scores of "
                f"type {type(queue_scores).__name__}"
            )
        if len(queue_scores) != len(high):
            raise ValueError(
                "Argument `queue_scores` must hold one tensor per high-resolution view "
                f"({len(high)}). Received: {len(queue_scores)} tensors"
            )
    high = [distribute.all_gather(ops.cast(s, "float32")) for s in high]
    low = [distribute.all_gather(ops.cast(s, "float32")) for s in low]
    views = len(high) + len(low)
    loss = 0.0
    for index, target_scores in enumerate(high):
        target_scores = ops.stop_gradient(target_scores)
        mask = None
        if queue_scores is not None:
            batch_size = ops.shape(target_scores)[0]
            queued = ops.stop_gradient(ops.cast(queue_scores[index], "float32"))
            target_scores = ops.concatenate([target_scores, queued], axis=0)
            queued_mask = (
                ops.ones((ops.shape(queued)[0],), "bool")
                if queue_mask is None
                else ops.cast(queue_mask, "bool")
            )
            mask = ops.concatenate([ops.ones((batch_size,), "bool"), queued_mask], axis=0)
        codes = sinkhorn(target_scores, sinkhorn_iterations, epsilon, mask=mask)
        if queue_scores is not None:
            codes = codes[:batch_size]
        predictions = [s for view, s in enumerate(high) if view != index] + low
        total = sum(_cross_entropy(scores, codes, temperature) for scores in predictions)
        loss = loss + total / (views - 1)
    return loss / len(high)


@keras.saving.register_keras_serializable(package="keras_siamese")
class SwAVLoss(keras.losses.Loss):
    """SwAV's swapped-prediction loss as a `keras.losses.Loss`.

    `y_pred` holds every view's prototype scores stacked on a leading view axis,
    `(views, batch_size, num_prototypes)`, the `high_resolution_views` high-resolution ones
    first; `y_true` is ignored (pass `None`). See `swav` for the maths (Caron et al. 2020,
    https://arxiv.org/abs/2006.09882), the cross-replica Sinkhorn and the feature queue
    (available through the function).

    Args:
        high_resolution_views: how many of the views are high-resolution (>= 1).
        temperature: the softmax temperature (finite, > 0).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (>= 1).
        epsilon: Sinkhorn's entropy weight (finite, > 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default leaves it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a bad argument; at call time if `y_pred` is not of rank 3 or has
            fewer views than `high_resolution_views`, or for the errors of `swav`.
        TypeError: if an argument is not a number.

    Example:
        >>> loss_fn = SwAVLoss(high_resolution_views=2)
        >>> scores = keras.random.normal((2, 8, 16), seed=1)  # 2 views of 8 images
        >>> float(loss_fn(None, scores)) > 0
        True
    """

    def __init__(
        self,
        high_resolution_views: int = 2,
        temperature: float = 0.1,
        sinkhorn_iterations: int = 3,
        epsilon: float = 0.05,
        name: str = "swav",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        high_resolution_views = validation.check_integer(
            "high_resolution_views", high_resolution_views
        )
        temperature = validation.check_temperature(temperature)
        sinkhorn_iterations, epsilon = check_sinkhorn_arguments(sinkhorn_iterations, epsilon)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.high_resolution_views = high_resolution_views
        self.temperature = temperature
        self.sinkhorn_iterations = sinkhorn_iterations
        self.epsilon = epsilon

    def __call__(self, y_true, y_pred, sample_weight=None):
        # y_true is ignored; a placeholder keeps Keras' conversion of None from failing.
        if y_true is None:
            y_true = ops.zeros((), dtype=self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        shape = _static_shape(y_pred)
        if shape is None or len(shape) != 3 or shape[0] is None:
            raise ValueError(
                "Argument `y_pred` of SwAVLoss must have rank 3 with a known number of views, "
                f"(views, batch_size, num_prototypes). Received: y_pred.shape={shape}"
            )
        if shape[0] < self.high_resolution_views:
            raise ValueError(
                f"Argument `y_pred` of SwAVLoss must hold at least high_resolution_views="
                f"{self.high_resolution_views} views. Received: y_pred.shape={shape}"
            )
        views = [y_pred[index] for index in range(shape[0])]
        return swav(
            views[: self.high_resolution_views],
            views[self.high_resolution_views :],
            temperature=self.temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
            epsilon=self.epsilon,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "high_resolution_views": self.high_resolution_views,
                "temperature": self.temperature,
                "sinkhorn_iterations": self.sinkhorn_iterations,
                "epsilon": self.epsilon,
                "dtype": self._dtype_policy.name,
            }
        )
        return config
