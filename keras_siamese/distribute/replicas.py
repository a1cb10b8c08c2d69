"""The cross-replica helpers: replica count and id, all_gather, loss scaling, per-replica seeds."""

from __future__ import annotations

import tensorflow as tf


def num_replicas() -> int:
    """Returns the number of replicas of the current strategy (1 outside any strategy).

    Returns:
        `num_replicas_in_sync` of `tf.distribute.get_strategy()`.

    Example:
        >>> num_replicas()
        1
    """
    return tf.distribute.get_strategy().num_replicas_in_sync


def in_replica_context() -> bool:
    """Returns True inside `strategy.run` of a strategy with more than one replica."""
    context = tf.distribute.get_replica_context()
    return context is not None and context.num_replicas_in_sync > 1


def replica_id() -> tf.Tensor:
    """Returns the id of the current replica as an int32 scalar (0 with one replica).

    Example:
        >>> int(replica_id())
        0
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def all_gather(value: tf.Tensor) -> tf.Tensor:
    """Concatenates `value` of every replica along axis 0, replica 0 first.

    Differentiable: the gradient reaching a replica's slice is the sum of the
    gradients that every replica's loss sends to it, so a loss computed on the
    gathered tensor trains exactly as on one device with the global batch.

    Args:
        value: a tensor whose first axis is the per-replica batch.

    Returns:
        The global tensor (`value` itself with one replica).

    Example:
        >>> all_gather(tf.ones((2, 3))).shape
        TensorShape([2, 3])
    """
    if not in_replica_context():
        return value
    return tf.distribute.get_replica_context().all_gather(value, axis=0)


def scale_for_replicas(loss: tf.Tensor) -> tf.Tensor:
    """Divides a per-replica mean loss by the number of replicas.

    The optimizer sums the gradients of all replicas, so each replica must
    contribute `1 / num_replicas` of its mean: this is what Keras' own
    `compute_loss` does, and a hand-written `train_step` must do the same or its
    gradients are `num_replicas` times too large.

    Args:
        loss: the mean loss over this replica's examples.

    Returns:
        `loss / num_replicas_in_sync`.

    Example:
        >>> float(scale_for_replicas(tf.constant(2.0)))
        2.0
    """
    replicas = num_replicas()
    if replicas == 1:
        return loss
    return loss / tf.cast(replicas, loss.dtype)


def replica_seed(seed: tf.Tensor) -> tf.Tensor:
    """Folds the replica id into a stateless seed so each replica draws its own randomness.

    Keras' seed generators hold one state for all replicas: without this every
    replica would crop and colour its images exactly like replica 0.

    Args:
        seed: an int32/int64 tensor of shape `(2,)`, a stateless RNG seed.

    Returns:
        A seed of shape `(2,)` and dtype int32, unchanged on replica 0's stream
        only if there is one replica.

    Example:
        >>> replica_seed(tf.constant([1, 2])).shape
        TensorShape([2])
    """
    seed = tf.cast(seed, tf.int32)
    if not in_replica_context():
        return seed
    return tf.random.experimental.stateless_fold_in(seed, replica_id())
