"""The pairs a pair loss scores: all of a batch's pairs, or those a miner keeps.

A miner takes the `PairBatch` of a labelled batch (`pair_batch`) and narrows its positive
and negative masks; the pair losses (`multi_similarity`, `circle`, `supervised_contrastive`,
`batch_contrastive`) accept one as `miner=`. Here live the multi-similarity miner
(`multi_similarity_miner`, `MultiSimilarityMiner`) and the steps every pair loss shares:
`mined_pairs` (checks, pairs, miner), `global_pair_counts` and `scores_pairs` (the rule of
pytorch-metric-learning's `GenericPairLoss`: a batch with at most one positive and at most one
negative pair costs 0). The loss classes' plumbing (the miner in their configs, `compute`)
is `keras_siamese.losses.pair_loss.PairLoss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _static_shape
from keras_siamese.losses.pair_batch import PairBatch, check_embeddings_and_labels, pair_batch

if TYPE_CHECKING:
    import numpy as np

Miner = Callable[[PairBatch], PairBatch]


def multi_similarity_miner(pairs: PairBatch, epsilon: float = 0.1) -> PairBatch:
    """Keeps the informative pairs of the multi-similarity rule (Wang et al. 2019).

    From Wang, Han, Huang, Dong & Scott 2019, "Multi-Similarity Loss with General Pair
    Weighting for Deep Metric Learning" (https://arxiv.org/abs/1904.06627), Eq. 5 and 6,
    as pytorch-metric-learning's `MultiSimilarityMiner` applies them to cosine
    similarities `S`: for an anchor `i`, a positive `p` is kept when
    `S_ip - epsilon < max_n S_in` (over its negatives) and a negative `n` when
    `S_in + epsilon > min_p S_ip` (over its positives). Both inequalities are strict. An
    anchor without negatives keeps no positive, and one without positives keeps no
    negative. The masks are narrowed; the similarities are passed through unchanged.

    Args:
        pairs: the `PairBatch` of a batch (`pair_batch`).
        epsilon: the margin `epsilon` of the rule (>= 0; 0.1 in the paper and in PML).

    Returns:
        A `PairBatch` with the same similarities and the kept pairs' masks.

    Raises:
        TypeError: if `pairs` is not a `PairBatch` or `epsilon` not a number.
        ValueError: if `epsilon` is negative or not finite.

    Example:
        >>> pairs = pair_batch(tf.eye(4) + 0.5, tf.constant([0, 0, 1, 1]))
        >>> mined = multi_similarity_miner(pairs, epsilon=0.1)
        >>> int(tf.reduce_sum(tf.cast(mined.positive, tf.int32)))
        4
    """
    epsilon = validation.check_number("epsilon", epsilon, 0.0)
    if not isinstance(pairs, PairBatch):
        raise TypeError(
            "Argument `pairs` must be a `PairBatch` (see `pair_batch`). "
            f"Received: pairs of type {type(pairs).__name__}"
        )
    similarities = pairs.similarities
    infinity = tf.constant(float("inf"), similarities.dtype)
    # -inf for an anchor without negatives (no positive is kept), +inf without positives.
    hardest_negative = tf.reduce_max(tf.where(pairs.negative, similarities, -infinity), axis=1)
    easiest_positive = tf.reduce_min(tf.where(pairs.positive, similarities, infinity), axis=1)
    positive = pairs.positive & (similarities - epsilon < hardest_negative[:, None])
    negative = pairs.negative & (similarities + epsilon > easiest_positive[:, None])
    return pairs.replace(positive=positive, negative=negative)


@keras.saving.register_keras_serializable(package="keras_siamese")
class MultiSimilarityMiner:
    """The multi-similarity pair miner as an object a loss can hold and save.

    Calling it applies `multi_similarity_miner` (Wang et al. 2019; the rule of
    pytorch-metric-learning's `MultiSimilarityMiner` on cosine similarities) to a
    `PairBatch`. Pass it as `miner=` to a pair loss; the loss saves it in its config.

    Args:
        epsilon: the margin of the rule (>= 0; 0.1 in the paper and in PML).

    Raises:
        TypeError: if `epsilon` is not a number.
        ValueError: if `epsilon` is negative or not finite.

    Example:
        >>> miner = MultiSimilarityMiner(epsilon=0.1)
        >>> mined = miner(pair_batch(tf.eye(4) + 0.5, tf.constant([0, 0, 1, 1])))
        >>> mined.similarities.shape
        TensorShape([4, 4])
    """

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = validation.check_number("epsilon", epsilon, 0.0)

    def __call__(self, pairs: PairBatch) -> PairBatch:
        return multi_similarity_miner(pairs, epsilon=self.epsilon)

    def get_config(self) -> dict:
        return {"epsilon": self.epsilon}

    @classmethod
    def from_config(cls, config: dict) -> MultiSimilarityMiner:
        return cls(**config)

    def __repr__(self) -> str:
        return f"MultiSimilarityMiner(epsilon={self.epsilon})"


def check_miner(miner) -> Miner | None:
    """Checks a loss's `miner` argument: None or a callable `PairBatch -> PairBatch`.

    Raises:
        TypeError: for anything else.
    """
    if miner is not None and not callable(miner):
        raise TypeError(
            "Argument `miner` must be None or a callable taking and returning a `PairBatch` "
            f"(e.g. `MultiSimilarityMiner()`). Received: miner={miner!r}"
        )
    return miner


def _check_memory(memory, embeddings: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A memory is `(memory_embeddings, memory_labels)` of matching sizes and integer labels;
    returns it as tensors."""
    if not isinstance(memory, (tuple, list)) or len(memory) != 2:
        raise TypeError(
            "Argument `memory` must be None or a pair `(memory_embeddings, memory_labels)`. "
            f"Received: memory of type {type(memory).__name__}"
        )
    memory_embeddings, memory_labels = (tf.convert_to_tensor(part) for part in memory)
    shape_e, shape_l = _static_shape(memory_embeddings), _static_shape(memory_labels)
    dims = (_static_shape(embeddings) or (None, None))[-1]
    if shape_e is not None and (
        len(shape_e) != 2 or (None not in (shape_e[1], dims) and shape_e[1] != dims)
    ):
        raise ValueError(
            "The embeddings of `memory` must have shape (memory_size, dims) with the batch's "
            f"dims. Received: memory[0].shape={shape_e}, embeddings.shape={embeddings.shape}"
        )
    rows = None if shape_e is None else shape_e[0]
    if shape_l is not None and (
        len(shape_l) != 1 or (None not in (shape_l[0], rows) and shape_l[0] != rows)
    ):
        raise ValueError(
            "The labels of `memory` must have shape (memory_size,), one per memory row. "
            f"Received: memory[1].shape={shape_l}, memory[0].shape={shape_e}"
        )
    if memory_labels.dtype.is_floating:
        raise ValueError(
            "The labels of `memory` must be integer class ids (-1 for empty rows), not "
            f"floats. Received: memory[1].dtype={memory_labels.dtype.name}"
        )
    return memory_embeddings, memory_labels


def mined_pairs(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    miner: Miner | None = None,
    memory: tuple | None = None,
) -> PairBatch:
    """The pairs a pair loss scores: `pair_batch`, narrowed by `miner` when one is given.

    Args:
        embeddings: `(batch, dims)` embeddings.
        labels: `(batch,)` integer labels.
        miner: None or a callable `PairBatch -> PairBatch` (e.g. `MultiSimilarityMiner`).
        memory: None or `(memory_embeddings, memory_labels)`; see `pair_batch`.

    Returns:
        A `PairBatch`.

    Raises:
        ValueError: for the shape and dtype errors of `pair_batch` and of `memory`.
        TypeError: for a `memory` that is not a pair, a miner that is not callable, or one
            that does not return a `PairBatch`.

    Example:
        >>> pairs = mined_pairs(tf.eye(3), tf.constant([0, 0, 1]))
        >>> pairs.similarities.shape
        TensorShape([3, 3])
    """
    check_miner(miner)
    embeddings = tf.convert_to_tensor(embeddings)
    labels = tf.convert_to_tensor(labels)
    check_embeddings_and_labels(embeddings, labels)
    if memory is not None:
        memory = _check_memory(memory, embeddings)
    pairs = pair_batch(embeddings, labels, memory=memory)
    if miner is None:
        return pairs
    mined = miner(pairs)
    if not isinstance(mined, PairBatch):
        raise TypeError(
            "Argument `miner` must return a `PairBatch` (use `pairs.replace(positive=..., "
            f"negative=...)`). Received: a {type(mined).__name__} from miner={miner!r}"
        )
    return mined


def global_pair_counts(pairs: PairBatch) -> tuple[tf.Tensor, tf.Tensor]:
    """The float32 numbers of positive and negative pairs over all replicas (one gather)."""
    counts = tf.stack(
        [
            tf.reduce_sum(tf.cast(pairs.positive, tf.float32)),
            tf.reduce_sum(tf.cast(pairs.negative, tf.float32)),
        ]
    )
    if distribute.in_replica_context():
        counts = tf.reduce_sum(distribute.all_gather(counts[None, :]), axis=0)
    return counts[0], counts[1]


def scores_pairs(positive_pairs: tf.Tensor, negative_pairs: tf.Tensor) -> tf.Tensor:
    """PML's `GenericPairLoss` rule: a batch is scored unless it has at most one positive
    pair and at most one negative pair (then its loss is 0). A bool scalar."""
    return (positive_pairs > 1.0) | (negative_pairs > 1.0)
