"""The pairs of a labelled batch that the pair-based metric losses score: `pair_batch`.

Multi-similarity, circle, supervised contrastive and the in-batch contrastive loss all start
from one matrix: the cosine similarities between this replica's embeddings (the anchors) and
every embedding of the global batch (the references), plus optional rows of a cross-batch
memory, with a mask of the positive pairs (same label, not the anchor itself) and of the
negative pairs (another label). Under `tf.distribute` the references are gathered across
replicas (`distribute.all_gather`, differentiable), so every anchor meets the global batch as
on one device; `global_mean` then turns a per-replica sum into this replica's share of the
one-device mean (see `triplet_loss` for the convention).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_siamese import distribute, validation

# Label of an empty slot of a cross-batch memory: neither positive nor negative of anything.
EMPTY_LABEL = -1


@dataclasses.dataclass(frozen=True)
class PairBatch:
    """Similarities and pair masks of this replica's anchors against the references.

    Attributes:
        similarities: float32 `(anchors, references)` cosine similarities.
        positive: bool `(anchors, references)`: same label, not the anchor itself, not empty.
        negative: bool `(anchors, references)`: another label, not empty.
    """

    similarities: tf.Tensor
    positive: tf.Tensor
    negative: tf.Tensor

    def replace(self, **changes) -> PairBatch:
        """A copy with some fields changed (a miner narrows the masks this way)."""
        return dataclasses.replace(self, **changes)


def check_embeddings_and_labels(embeddings, labels) -> None:
    """Rank-2 embeddings and one integer label per row (static shapes only), not floats.

    The shapes are `validation.check_labels_per_row`'s (the triplet loss's too); the pair
    losses also refuse float labels.

    Raises:
        ValueError: naming the argument, its shape and the shape expected, or float labels.
    """
    validation.check_labels_per_row(embeddings, labels)
    if labels is not None and getattr(labels, "dtype", None) is not None:
        if tf.as_dtype(labels.dtype).is_floating:
            raise ValueError(
                "Argument `labels` must hold integer class ids, not floats. "
                f"Received: labels.dtype={tf.as_dtype(labels.dtype).name}"
            )


def _replica_offset(local_size: tf.Tensor) -> tf.Tensor:
    """Row of this replica's first embedding in the gathered global batch."""
    if not distribute.in_replica_context():
        return tf.constant(0, tf.int32)
    sizes = distribute.all_gather(tf.reshape(local_size, (1,)))
    before = tf.range(tf.shape(sizes)[0]) < distribute.replica_id()
    return tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))


def pair_batch(embeddings, labels, memory=None) -> PairBatch:
    """The cosine similarities and pair masks of a labelled batch.

    Args:
        embeddings: `(batch, dims)` embeddings of this replica (normalised here).
        labels: `(batch,)` integer labels (>= 0).
        memory: optional `(memory_embeddings, memory_labels)` of a cross-batch memory, extra
            references without gradient; rows labelled `EMPTY_LABEL` (-1) are ignored.

    Returns:
        A `PairBatch` of `(batch, global_batch + memory)` similarities and masks.

    Example:
        >>> pairs = pair_batch(tf.eye(3), tf.constant([0, 0, 1]))
        >>> pairs.positive.numpy().sum(), pairs.negative.numpy().sum()
        (2, 4)
    """
    check_embeddings_and_labels(embeddings, labels)
    anchors = tf.math.l2_normalize(tf.cast(embeddings, tf.float32), axis=-1)
    labels = tf.cast(labels, tf.int32)
    local_size = tf.shape(anchors)[0]
    references = distribute.all_gather(anchors)
    reference_labels = distribute.all_gather(labels)
    own_columns = _replica_offset(local_size) + tf.range(local_size)
    is_self = tf.equal(own_columns[:, None], tf.range(tf.shape(references)[0])[None, :])
    if memory is not None:
        memory_embeddings, memory_labels = memory
        memory_embeddings = tf.math.l2_normalize(tf.cast(memory_embeddings, tf.float32), axis=-1)
        references = tf.concat([references, tf.stop_gradient(memory_embeddings)], axis=0)
        reference_labels = tf.concat([reference_labels, tf.cast(memory_labels, tf.int32)], 0)
        no_self = tf.zeros((local_size, tf.shape(memory_labels)[0]), tf.bool)
        is_self = tf.concat([is_self, no_self], axis=1)
    similarities = tf.matmul(anchors, references, transpose_b=True)
    filled = tf.not_equal(reference_labels, EMPTY_LABEL)[None, :]
    same = tf.equal(labels[:, None], reference_labels[None, :])
    positive = same & tf.logical_not(is_self) & filled
    negative = tf.logical_not(same) & filled
    return PairBatch(similarities, positive, negative)


def global_sum(value: tf.Tensor) -> tf.Tensor:
    """Sums a per-replica scalar over the replicas (the value itself outside them)."""
    if not distribute.in_replica_context():
        return value
    return tf.reduce_sum(distribute.all_gather(tf.reshape(value, (1,))))


def global_mean(loss_sum: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """This replica's share of the one-device mean `sum of all / count of all`.

    Returns `local_sum / global_count * num_replicas` (0 when nothing is counted): after
    `distribute.scale_for_replicas` the replicas sum to the one-device mean, gradients included.

    Args:
        loss_sum: the float32 sum of this replica's terms.
        count: the float32 number of terms the mean divides by, on this replica.

    Returns:
        A float32 scalar.

    Example:
        >>> float(global_mean(tf.constant(3.0), tf.constant(2.0)))
        1.5
    """
    replicas = distribute.num_replicas() if distribute.in_replica_context() else 1
    total = global_sum(tf.cast(count, tf.float32))
    return tf.math.divide_no_nan(tf.cast(loss_sum, tf.float32), total) * float(replicas)
