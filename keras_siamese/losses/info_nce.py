"""InfoNCE, the contrastive loss of MoCo: `info_nce` and `InfoNCE`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _check_same_shape_pair, _static_shape

if TYPE_CHECKING:
    import numpy as np


def _check_info_nce_inputs(query, key, negatives) -> None:
    """Validates the static shapes of the queries, their keys and the negatives."""
    shape, _ = _check_same_shape_pair(
        query, key, ("query", "key"), "dims", "each query and its positive key"
    )
    if negatives is None:
        size = None if shape is None else shape[0]
        if size is not None and size < 2 and not distribute.in_replica_context():
            raise ValueError(
                "InfoNCE with in-batch keys needs at least 2 queries per batch: the other "
                "images' keys are the negatives. Use a larger batch or pass `negatives`. "
                f"Received: query.shape={shape}"
            )
        return
    negatives_shape = _static_shape(negatives)
    if negatives_shape is not None and len(negatives_shape) != 2:
        raise ValueError(
            "Argument `negatives` must have rank 2, shape (num_negatives, dims). "
            f"Received: negatives.shape={negatives_shape}"
        )
    if (
        negatives_shape is not None
        and shape is not None
        and None not in (negatives_shape[1], shape[1])
        and negatives_shape[1] != shape[1]
    ):
        raise ValueError(
            "Argument `negatives` must have the queries' size (dims) on its last axis. "
            f"Received: negatives.shape={negatives_shape}, query.shape={shape}"
        )


def info_nce(
    query: tf.Tensor | np.ndarray,
    key: tf.Tensor | np.ndarray,
    negatives: tf.Tensor | np.ndarray | None = None,
    temperature: float = 0.2,
    return_logits: bool = False,
) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """InfoNCE: classify each query's key among negatives, by cosine similarity / temperature.

    From He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation
    Learning" (https://arxiv.org/abs/1911.05722), Eq. 1:
    `L_q = -log(exp(q.k+ / T) / sum_i exp(q.k_i / T))`, averaged over the queries. Queries,
    keys and negatives are L2-normalised first.

    - With `negatives` (`(K, dims)`, MoCo v2's queue): the logits of each query are
      `[q.k, q.negatives] / T` and the positive is at index 0. This equals lightly 1.6.0's
      `NTXentLoss(temperature, memory_bank_size=K)` with that memory bank.
    - With `negatives=None` (MoCo v3, Chen et al. 2021, https://arxiv.org/abs/2104.02057,
      Algorithm 1): the keys of the batch are the candidates, logits `q k^T / T` with
      labels `0..n-1`; inside `strategy.run` of a multi-replica strategy the keys are
      gathered from every replica (`distribute.all_gather`, the global batch) and the
      labels offset by the rows of the replicas before. MoCo v3's `2T` factor is not
      applied here: the model multiplies by it.

    Gradients reach the queries, the keys and the negatives: pass `stop_gradient` keys
    (MoCo's momentum encoder does). Under a multi-replica strategy the value is the sum
    over the local queries divided by the global query count, times the number of
    replicas, so after `distribute.scale_for_replicas` the replicas sum to the
    one-device loss on the global batch (also for unequal shares). The computation is in
    float32 whatever the input dtype.

    Args:
        query: `(n, dims)` queries (e.g. the online projections or predictions).
        key: `(n, dims)` keys; row `i` is the positive of query `i`.
        negatives: `(K, dims)` negatives shared by all queries, or None for in-batch keys.
        temperature: the softmax temperature `T` (finite, > 0; MoCo v2: 0.2).
        return_logits: also return the logits and the labels (e.g. for an accuracy).

    Returns:
        The scalar float32 loss, or `(loss, logits, labels)` with `logits` of shape
        `(n, 1 + K)` (with negatives) or `(n, N)` (in-batch, `N` the global batch) and
        int32 `labels` of shape `(n,)`.

    Raises:
        ValueError: for a `query` or `key` that is not rank 2, shapes that differ, `negatives`
            of another rank or size, fewer than 2 in-batch queries, or a bad `temperature`.
        TypeError: if `temperature` is not a number.

    Example:
        >>> query = keras.random.normal((8, 16), seed=1)
        >>> queue = keras.random.normal((64, 16), seed=2)
        >>> float(info_nce(query, query, queue, temperature=0.2)) < 1.0
        True
    """
    temperature = validation.check_temperature(temperature)
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key)
    if negatives is not None:
        negatives = ops.convert_to_tensor(negatives)
    _check_info_nce_inputs(query, key, negatives)

    query = ops.normalize(ops.cast(query, "float32"), axis=-1)
    key = ops.normalize(ops.cast(key, "float32"), axis=-1)
    local_size = ops.shape(query)[0]
    replicated = distribute.in_replica_context()
    sizes = distribute.all_gather(ops.reshape(ops.cast(local_size, "int32"), (1,)))
    if negatives is not None:
        negatives = ops.normalize(ops.cast(negatives, "float32"), axis=-1)
        positive = ops.sum(query * key, axis=-1, keepdims=True)
        logits = ops.concatenate([positive, ops.matmul(query, ops.transpose(negatives))], axis=1)
        labels = ops.zeros((local_size,), dtype="int32")
    else:
        keys = distribute.all_gather(key)
        logits = ops.matmul(query, ops.transpose(keys))
        if replicated:
            before = ops.arange(ops.shape(sizes)[0], dtype="int32") < distribute.replica_id()
            offset = ops.sum(ops.where(before, sizes, ops.zeros_like(sizes)))
        else:
            offset = ops.convert_to_tensor(0, "int32")
        labels = offset + ops.arange(local_size, dtype="int32")
    logits = logits / temperature
    per_query = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    if replicated:
        # Each query weighs 1 / N of the global batch, whichever replica holds it.
        global_size = ops.cast(ops.sum(sizes), "float32")
        loss = ops.sum(per_query) / global_size * float(distribute.num_replicas())
    else:
        loss = ops.mean(per_query)
    if return_logits:
        return loss, logits, labels
    return loss


@keras.saving.register_keras_serializable(package="keras_siamese")
class InfoNCE(keras.losses.Loss):
    """InfoNCE with in-batch keys (MoCo v3's form) as a `keras.losses.Loss`.

    `y_true` holds the keys and `y_pred` the queries, both `(n, dims)`: each query's
    positive is the key of its row and the other keys (of the global batch under
    `tf.distribute`) are its negatives. For a queue of negatives (MoCo v2) call
    `info_nce(query, key, negatives=queue)`. See `info_nce` (He et al. 2020,
    https://arxiv.org/abs/1911.05722).

    Args:
        temperature: the softmax temperature (finite, > 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a bad `temperature`; at call time for the errors of `info_nce`.
        TypeError: if `temperature` is not a number.

    Example:
        >>> loss_fn = InfoNCE(temperature=0.2)
        >>> query = keras.random.normal((8, 16), seed=1)
        >>> float(loss_fn(query, query)) < float(loss_fn(-query, query))
        True
    """

    def __init__(
        self,
        temperature: float = 0.2,
        name: str = "info_nce",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        temperature = validation.check_temperature(temperature)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = temperature

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return info_nce(y_pred, y_true, temperature=self.temperature)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"temperature": self.temperature, "dtype": self._dtype_policy.name})
        return config
