"""The circle loss of pair-wise labels: `circle`, `CircleLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.losses.multi_similarity import masked_logsumexp
from keras_siamese.losses.pair_batch import global_mean
from keras_siamese.losses.pair_loss import PairLoss
from keras_siamese.losses.pair_miner import (
    Miner,
    check_miner,
    global_pair_counts,
    mined_pairs,
    scores_pairs,
)

if TYPE_CHECKING:
    import numpy as np


def _check_circle(margin, gamma) -> tuple[float, float]:
    margin = validation.check_number("margin", margin, 0.0)
    gamma = validation.check_number("gamma", gamma, 0.0, include_minimum=False)
    return margin, gamma


def _circle_logits(similarities, positive, negative, margin, gamma):
    """The weighted logits of Eq. 4 on the positive and the negative pairs (0 elsewhere).

    The weights `alpha_p = [1 + m - s_p]_+` and `alpha_n = [s_n + m]_+` are constants of
    the gradient (`tf.stop_gradient`), as in the paper and PML (`.detach()`).
    """
    fixed = tf.stop_gradient(similarities)
    positive_logits = -gamma * tf.nn.relu(1.0 + margin - fixed) * (similarities - (1.0 - margin))
    negative_logits = gamma * tf.nn.relu(fixed + margin) * (similarities - margin)
    zeros = tf.zeros_like(similarities)
    return tf.where(positive, positive_logits, zeros), tf.where(negative, negative_logits, zeros)


def circle(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    margin: float = 0.4,
    gamma: float = 80.0,
    miner: Miner | None = None,
    memory: tuple | None = None,
) -> tf.Tensor:
    """The circle loss of a labelled batch (its pair-wise form).

    From Sun, Cheng, Zhang, Zhang, Zheng, Wang & Wei 2020, "Circle Loss: A Unified
    Perspective of Pair Similarity Optimization" (https://arxiv.org/abs/2002.10857), Eq. 4
    and 6, as pytorch-metric-learning (PML) computes it on cosine similarities `s`: for an
    anchor with positives `P` and negatives `N`,

        L = softplus( logsumexp_{p in P} (-gamma * [1 + m - s_p]_+ * (s_p - (1 - m)))
                    + logsumexp_{n in N} ( gamma * [s_n + m]_+     * (s_n - m)) )

    where the weights `[.]_+` receive no gradient. PML's defaults (the paper's values for
    fine-grained image retrieval): `m = 0.4`, `gamma = 80`. An anchor without a positive or
    without a negative scores 0, and the loss is the mean over the anchors whose value is
    above 0 (PML's `AvgNonZeroReducer`; 0 when there is none). `P` and `N` are all the
    anchor's positives and negatives in the batch (`pair_batch`), or those `miner` keeps; as
    in PML, a batch with at most one positive and at most one negative pair costs 0. The
    maths runs in float32. Under `tf.distribute` the references are the global batch and the
    value is this replica's share of the one-device mean (`global_mean`).

    Args:
        embeddings: `(batch, dims)` embeddings (L2-normalised here).
        labels: `(batch,)` integer class labels.
        margin: the relaxation `m` (>= 0; PML's `m`).
        gamma: the scale `gamma` (> 0).
        miner: None (every pair) or a callable `PairBatch -> PairBatch`.
        memory: None or `(memory_embeddings, memory_labels)`, extra references of a
            cross-batch memory (rows labelled -1 are ignored).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for `embeddings` not of rank 2, `labels` not `(batch,)` integers,
            mismatched batch sizes, a negative `margin` or a `gamma` <= 0.
        TypeError: for a hyperparameter that is not a number or a `miner` that is not callable.

    Example:
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(circle(embeddings, [0, 0, 1, 1])) > 0
        True
    """
    margin, gamma = _check_circle(margin, gamma)
    pairs = mined_pairs(embeddings, labels, check_miner(miner), memory)
    positive_logits, negative_logits = _circle_logits(
        pairs.similarities, pairs.positive, pairs.negative, margin, gamma
    )
    per_anchor = tf.nn.softplus(
        masked_logsumexp(positive_logits, pairs.positive)
        + masked_logsumexp(negative_logits, pairs.negative)
    )
    scored = tf.reduce_any(pairs.positive, axis=1) & tf.reduce_any(pairs.negative, axis=1)
    per_anchor = tf.where(scored, per_anchor, tf.zeros_like(per_anchor))
    nonzero = per_anchor > 0.0
    loss = global_mean(tf.reduce_sum(per_anchor), tf.reduce_sum(tf.cast(nonzero, tf.float32)))
    return tf.where(scores_pairs(*global_pair_counts(pairs)), loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="keras_siamese")
class CircleLoss(PairLoss):
    """The circle loss (Sun et al. 2020, pair-wise labels) as a `PairLoss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is `circle` of the batch (PML's `CircleLoss` defaults:
    `m = 0.4`, `gamma = 80`, the mean over the anchors with a loss above 0).
    `compute(embeddings, labels, memory=...)` also takes a cross-batch memory.

    Args:
        margin: the relaxation `m` (>= 0).
        gamma: the scale `gamma` (> 0).
        miner: None or a pair miner such as `MultiSimilarityMiner()` (saved in the config).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default keeps it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a negative `margin` or a `gamma` <= 0.
        TypeError: for a hyperparameter that is not a number or a `miner` not callable.

    Example:
        >>> loss_fn = CircleLoss(margin=0.25, gamma=128.0)
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(loss_fn(tf.constant([0, 0, 1, 1]), embeddings)) > 0
        True
    """

    pair_function = staticmethod(circle)

    def __init__(
        self,
        margin: float = 0.4,
        gamma: float = 80.0,
        miner: Miner | None = None,
        name: str = "circle_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"margin": margin, "gamma": gamma}
        super().__init__(hyperparameters, miner, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(margin, gamma) -> dict:
        margin, gamma = _check_circle(margin, gamma)
        return {"margin": margin, "gamma": gamma}
