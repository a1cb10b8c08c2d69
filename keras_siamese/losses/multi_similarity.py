"""The multi-similarity loss: `multi_similarity`, `MultiSimilarityLoss` (and `masked_logsumexp`,
the masked row-wise log-sum-exp that the circle and supervised contrastive losses share)."""

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

if TYPE_CHECKING:
    import numpy as np


def masked_logsumexp(logits: tf.Tensor, mask: tf.Tensor, add_one: bool = False) -> tf.Tensor:
    """Row-wise `log(sum_{j: mask_ij} exp(logits_ij))`, plus `exp(0)` inside the log with
    `add_one`; 0 for a row that keeps nothing (pytorch-metric-learning's `lmu.logsumexp`).

    Stable (the row maximum is subtracted) and free of NaN gradients for empty rows.

    Args:
        logits: float32 `(rows, columns)`.
        mask: bool `(rows, columns)`, the entries that count.
        add_one: also count a zero logit, `log(1 + sum exp(...))`.

    Returns:
        float32 `(rows,)`.

    Example:
        >>> float(masked_logsumexp(tf.zeros((1, 3)), tf.constant([[True, True, False]]))[0])
        0.6931...
    """
    kept = tf.reduce_any(mask, axis=1)
    row_max = tf.reduce_max(tf.where(mask, logits, tf.float32.min), axis=1)
    if add_one:
        row_max = tf.maximum(row_max, 0.0)
    row_max = tf.stop_gradient(tf.where(kept, row_max, tf.zeros_like(row_max)))
    shifted = tf.where(mask, logits - row_max[:, None], tf.zeros_like(logits))
    total = tf.reduce_sum(tf.where(mask, tf.exp(shifted), tf.zeros_like(logits)), axis=1)
    if add_one:
        total += tf.exp(-row_max)
    total = tf.where(kept, total, tf.ones_like(total))
    return tf.where(kept, row_max + tf.math.log(total), tf.zeros_like(total))


def _check_multi_similarity(alpha, beta, base) -> tuple[float, float, float]:
    alpha = validation.check_number("alpha", alpha, 0.0, include_minimum=False)
    beta = validation.check_number("beta", beta, 0.0, include_minimum=False)
    base = validation.check_number("base", base, -1.0, 1.0)
    return alpha, beta, base


def multi_similarity(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    miner: Miner | None = None,
    memory: tuple | None = None,
) -> tf.Tensor:
    """The multi-similarity loss of a labelled batch.

    From Wang, Han, Huang, Dong & Scott 2019, "Multi-Similarity Loss with General Pair
    Weighting for Deep Metric Learning" (https://arxiv.org/abs/1904.06627), Eq. 7, with
    the defaults of the paper and of pytorch-metric-learning (PML): for an anchor `i` with
    cosine similarities `S_ij`,

        L_i = 1/alpha * log(1 + sum_{p in P_i} exp(-alpha (S_ip - base)))
            + 1/beta  * log(1 + sum_{n in N_i} exp( beta (S_in - base)))

    and the loss is the mean of `L_i` over every anchor of the batch (PML's `MeanReducer`:
    an anchor without positives or negatives adds 0 for the missing sum and still counts).
    `P_i` and `N_i` are all the positives and negatives of `i` in the batch (its other
    examples; `pair_batch`), or those `miner` keeps (`MultiSimilarityMiner`, the paper's
    pair mining). As in PML, a batch with at most one positive and at most one negative pair
    costs 0. The maths runs in float32. Under `tf.distribute` the references are the global
    batch and the value is this replica's share of the one-device mean (`global_mean`).

    Args:
        embeddings: `(batch, dims)` embeddings (L2-normalised here).
        labels: `(batch,)` integer class labels.
        alpha: the scale of the positive pairs (> 0).
        beta: the scale of the negative pairs (> 0).
        base: the similarity margin `lambda` both sums are centred on (in [-1, 1]).
        miner: None (every pair) or a callable `PairBatch -> PairBatch`.
        memory: None or `(memory_embeddings, memory_labels)`, extra references of a
            cross-batch memory (rows labelled -1 are ignored).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for `embeddings` not of rank 2, `labels` not `(batch,)` integers,
            mismatched batch sizes, or a hyperparameter out of its range.
        TypeError: for a hyperparameter that is not a number or a `miner` that is not callable.

    Example:
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(multi_similarity(embeddings, [0, 0, 1, 1])) > 0
        True
    """
    alpha, beta, base = _check_multi_similarity(alpha, beta, base)
    pairs = mined_pairs(embeddings, labels, check_miner(miner), memory)
    similarities = pairs.similarities
    positive_term = masked_logsumexp(-alpha * (similarities - base), pairs.positive, True)
    negative_term = masked_logsumexp(beta * (similarities - base), pairs.negative, True)
    per_anchor = positive_term / alpha + negative_term / beta
    anchors = tf.cast(tf.shape(similarities)[0], tf.float32)
    loss = global_mean(tf.reduce_sum(per_anchor), anchors)
    return tf.where(scores_pairs(*global_pair_counts(pairs)), loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="keras_siamese")
class MultiSimilarityLoss(PairLoss):
    """The multi-similarity loss (Wang et al. 2019) as a `PairLoss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is `multi_similarity` of the batch (PML's
    `MultiSimilarityLoss` defaults: alpha 2, beta 50, base 0.5, the mean over anchors).
    `compute(embeddings, labels, memory=...)` also takes a cross-batch memory.

    Args:
        alpha: the scale of the positive pairs (> 0).
        beta: the scale of the negative pairs (> 0).
        base: the similarity margin both sums are centred on (in [-1, 1]).
        miner: None or a pair miner such as `MultiSimilarityMiner()` (saved in the config).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default keeps it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a hyperparameter out of its range.
        TypeError: for a hyperparameter that is not a number or a `miner` not callable.

    Example:
        >>> loss_fn = MultiSimilarityLoss()
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(loss_fn(tf.constant([0, 0, 1, 1]), embeddings)) > 0
        True
    """

    pair_function = staticmethod(multi_similarity)

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        miner: Miner | None = None,
        name: str = "multi_similarity_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"alpha": alpha, "beta": beta, "base": base}
        super().__init__(hyperparameters, miner, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(alpha, beta, base) -> dict:
        alpha, beta, base = _check_multi_similarity(alpha, beta, base)
        return {"alpha": alpha, "beta": beta, "base": base}
