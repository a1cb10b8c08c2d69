"""The supervised contrastive loss: `supervised_contrastive`, `SupervisedContrastiveLoss`."""

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


def supervised_contrastive(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    temperature: float = 0.1,
    miner: Miner | None = None,
    memory: tuple | None = None,
) -> tf.Tensor:
    """The supervised contrastive loss of a labelled batch.

    From Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu & Krishnan 2020,
    "Supervised Contrastive Learning" (https://arxiv.org/abs/2004.11362), Eq. 2 (the
    `L_out` form), as pytorch-metric-learning's `SupConLoss` computes it on cosine
    similarities `s`: for an anchor `i` with positives `P_i` and negatives `N_i`,

        L_i = -1/|P_i| * sum_{p in P_i} log( exp(s_ip / T)
                                             / sum_{a in P_i + N_i} exp(s_ia / T) )

    with PML's default `T = 0.1`. An anchor without positives scores 0 (one with positives
    but no negatives still scores when it has two positives or more), and the loss is the
    mean over the anchors whose value is above 0 (PML's `AvgNonZeroReducer`; 0 when there
    is none). As in PML the loss is 0 for a batch without any positive pair or without any
    negative pair, or with at most one of each. `P_i` and `N_i` are all the pairs of the
    batch (`pair_batch`), or those `miner` keeps. The maths runs in float32. Under
    `tf.distribute` the references are the global batch and the value is this replica's
    share of the one-device mean (`global_mean`).

    Args:
        embeddings: `(batch, dims)` embeddings (L2-normalised here).
        labels: `(batch,)` integer class labels.
        temperature: the temperature `T` (> 0).
        miner: None (every pair) or a callable `PairBatch -> PairBatch`.
        memory: None or `(memory_embeddings, memory_labels)`, extra references of a
            cross-batch memory (rows labelled -1 are ignored).

    Returns:
        The scalar float32 loss.

    Raises:
        ValueError: for `embeddings` not of rank 2, `labels` not `(batch,)` integers,
            mismatched batch sizes, or a `temperature` <= 0.
        TypeError: for a `temperature` that is not a number or a `miner` not callable.

    Example:
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(supervised_contrastive(embeddings, [0, 0, 1, 1])) > 0
        True
    """
    temperature = validation.check_temperature(temperature)
    pairs = mined_pairs(embeddings, labels, check_miner(miner), memory)
    logits = pairs.similarities / temperature
    log_denominator = masked_logsumexp(logits, pairs.positive | pairs.negative)
    log_probabilities = logits - log_denominator[:, None]
    positive_sum = tf.reduce_sum(
        tf.where(pairs.positive, log_probabilities, tf.zeros_like(logits)), axis=1
    )
    positives = tf.reduce_sum(tf.cast(pairs.positive, tf.float32), axis=1)
    per_anchor = -tf.math.divide_no_nan(positive_sum, positives)
    nonzero = per_anchor > 0.0
    per_anchor = tf.where(nonzero, per_anchor, tf.zeros_like(per_anchor))
    loss = global_mean(tf.reduce_sum(per_anchor), tf.reduce_sum(tf.cast(nonzero, tf.float32)))
    positive_pairs, negative_pairs = global_pair_counts(pairs)
    scored = scores_pairs(positive_pairs, negative_pairs) & (positive_pairs > 0.0)
    return tf.where(scored & (negative_pairs > 0.0), loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="keras_siamese")
class SupervisedContrastiveLoss(PairLoss):
    """The supervised contrastive loss (Khosla et al. 2020) as a `PairLoss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is `supervised_contrastive` of the batch (PML's `SupConLoss`
    defaults: temperature 0.1, the mean over the anchors with a loss above 0).
    `compute(embeddings, labels, memory=...)` also takes a cross-batch memory.

    Args:
        temperature: the temperature (> 0).
        miner: None or a pair miner such as `MultiSimilarityMiner()` (saved in the config).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; the default keeps it.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a `temperature` <= 0, NaN or infinite.
        TypeError: for a `temperature` that is not a number or a `miner` not callable.

    Example:
        >>> loss_fn = SupervisedContrastiveLoss(temperature=0.1)
        >>> embeddings = tf.constant([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
        >>> float(loss_fn(tf.constant([0, 0, 1, 1]), embeddings)) > 0
        True
    """

    pair_function = staticmethod(supervised_contrastive)

    def __init__(
        self,
        temperature: float = 0.1,
        miner: Miner | None = None,
        name: str = "supervised_contrastive_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        hyperparameters = {"temperature": temperature}
        super().__init__(hyperparameters, miner, name=name, reduction=reduction, dtype=dtype)

    @staticmethod
    def check_hyperparameters(temperature) -> dict:
        return {"temperature": validation.check_temperature(temperature)}
