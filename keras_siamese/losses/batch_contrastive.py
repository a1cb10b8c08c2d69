"""The contrastive loss on every pair of a labelled batch: `batch_contrastive`,
`BatchContrastiveLoss` (the loss of given pairs is `contrastive.contrastive_margin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.losses.pair_batch import global_mean
from keras_siamese.losses.pair_loss import PairLoss
from keras_siamese.losses.pair_miner import (
    Miner,
    check_miner,
    global_pair_counts,
    mined_pairs,
    scores_pairs,
)
from keras_siamese.similarity import _safe_sqrt

if TYPE_CHECKING:
    import numpy as np


def _check_margins(positive_margin, negative_margin) -> tuple[float, float]:
    positive_margin = validation.check_number("positive_margin", positive_margin, 0.0)
    negative_margin = validation.check_number("negative_margin", negative_margin, 0.0)
    return positive_margin, negative_margin


def _mean_of_nonzero(losses: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """PML's `AvgNonZeroReducer` on the pairs of `mask`: the mean of the losses above 0."""
    nonzero = mask & (losses > 0.0)
    total = tf.reduce_sum(tf.where(nonzero, losses, tf.zeros_like(losses)))
    return global_mean(total, tf.reduce_sum(tf.cast(nonzero, tf.float32)))


def batch_contrastive(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    positive_margin: float = 0.0,
    negative_margin: float = 1.0,
    miner: Miner | None = None,
    memory: tuple | None = None,
) -> tf.Tensor:
    """The contrastive loss of all the pairs of a labelled batch (a P x K batch).

    From Hadsell, Chopra & LeCun 2006, "Dimensionality Reduction by Learning an Invariant
    Mapping", in the form of pytorch-metric-learning's `ContrastiveLoss` with its defaults:
    the Euclidean distance `d` of the L2-normalised embeddings (`sqrt(2 - 2 s)` from their
    cosine similarity `s`, with a square root whose gradient at 0 is 0), a positive pair
    costs `[d - positive_margin]_+` and a negative pair `[negative_margin - d]_+` (not
    squared). The loss is the mean of the positive pairs' costs above 0 plus the mean of
    the negative pairs' costs above 0 (PML's `AvgNonZeroReducer`, once for each kind; a
    kind without any cost above 0 adds 0). Every ordered pair counts (`(i, j)` and
    `(j, i)`), as in PML. The pairs are all those of the batch (`pair_batch`), or those
    `miner` keeps; as in PML a batch with at most one positive and at most one negative pair
    costs 0. The maths runs in float32. Under `tf.distribute` the references are the global
    batch and the value is this replica's share of the one-device loss (`global_mean`).

    Args:
        embeddings: `(batch, dims)` embeddings (L2-normalised here).
        labels: `(batch,)` integer class labels.
        positive_margin: the distance under which a positive pair costs nothing (>= 0).
        negative_margin: the distance beyond which a negative pair costs nothing (>= 0;
            distances of unit vectors lie in [0, 2]).
        miner: None (every pair) or a callable `PairBatch -> PairBatch`.
        memory: None or `(memory_embeddings, memory_labels)`, extra references of a
            cross-batch memory (rows labelled -1 are ignored).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for `embeddings` not of rank 2, `labels` not `(batch,)` integers,
            mismatched batch sizes, or a negative margin.
        TypeError: for a margin that is not a number or a `miner` not callable.

    Example:
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(batch_contrastive(embeddings, [0, 0, 1, 1])) > 0
        True
    """
    positive_margin, negative_margin = _check_margins(positive_margin, negative_margin)
    pairs = mined_pairs(embeddings, labels, check_miner(miner), memory)
    distances = _safe_sqrt(2.0 - 2.0 * pairs.similarities)
    positive_loss = _mean_of_nonzero(tf.nn.relu(distances - positive_margin), pairs.positive)
    negative_loss = _mean_of_nonzero(tf.nn.relu(negative_margin - distances), pairs.negative)
    loss = positive_loss + negative_loss
    return tf.where(scores_pairs(*global_pair_counts(pairs)), loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="keras_siamese")
class BatchContrastiveLoss(PairLoss):
    """The contrastive loss on every pair of a labelled batch, as a `PairLoss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is `batch_contrastive` of the batch (PML's `ContrastiveLoss`
    defaults: margins 0 and 1 on the Euclidean distance of unit vectors, the positive and
    the negative pairs each averaged over their costs above 0, then summed).
    `compute(embeddings, labels, memory=...)` also takes a cross-batch memory.

    Args:
        positive_margin: the distance under which a positive pair costs nothing (>= 0).
        negative_margin: the distance beyond which a negative pair costs nothing (>= 0).
        miner: None or a pair miner such as `MultiSimilarityMiner()` (saved in the config).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default keeps it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a negative margin.
        TypeError: for a margin that is not a number or a `miner` not callable.

    Example:
        >>> loss_fn = BatchContrastiveLoss(negative_margin=0.8)
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(loss_fn(tf.constant([0, 0, 1, 1]), embeddings)) > 0
        True
    """

    pair_function = staticmethod(batch_contrastive)

    def __init__(
        self,
        positive_margin: float = 0.0,
        negative_margin: float = 1.0,
        miner: Miner | None = None,
        name: str = "batch_contrastive_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"positive_margin": positive_margin, "negative_margin": negative_margin}
        super().__init__(hyperparameters, miner, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(positive_margin, negative_margin) -> dict:
        positive_margin, negative_margin = _check_margins(positive_margin, negative_margin)
        return {"positive_margin": positive_margin, "negative_margin": negative_margin}
