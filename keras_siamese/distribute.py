"""Strategies and the cross-replica helpers: the only `tf.distribute` code of the package.

Every other module asks this one for "how many replicas", "which replica am I",
"gather this across replicas" and "scale this loss", so a training step reads the
same on one CPU and on a TPU pod slice.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu", "cpu:N")


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


def _cpu_strategy(spec: str) -> tf.distribute.Strategy:
    try:
        count = int(spec.split(":", 1)[1])
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(
            "Argument `name` of the form 'cpu:N' needs a positive integer N. "
            f"Received: name={spec!r}"
        )
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < count:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError as error:
            raise ValueError(
                f"Argument `name`={spec!r} needs {count} logical CPU devices, but TensorFlow "
                f"is already initialised with {len(devices)}. Call get_strategy() before "
                "any other TensorFlow operation."
            ) from error
        devices = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:count]])


def _tpu_strategy() -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _tf_config_has_cluster() -> bool:
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON. Received: TF_CONFIG={os.environ['TF_CONFIG']!r}"
        ) from error
    return bool(config.get("cluster"))


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns a `tf.distribute.Strategy` by name.

    Names:
        - `"auto"`: a TPU if a TPU resolver finds one, else `MultiWorkerMirroredStrategy`
          if `TF_CONFIG` names a cluster, else `MirroredStrategy` over all GPUs when
          there are any, else the default strategy.
        - `"default"`: the default (no-op) strategy, one device.
        - `"mirrored"`: `MirroredStrategy` over all local GPUs (or the CPU).
        - `"multi_worker"`: `MultiWorkerMirroredStrategy` from `TF_CONFIG`.
        - `"tpu"`: `TPUStrategy`.
        - `"cpu:N"`: `MirroredStrategy` over N logical CPU devices (tests, CPU boxes).
          Must be called before TensorFlow initialises its devices.

    Args:
        name: one of the names above.

    Returns:
        The strategy. Build and compile the model under `strategy.scope()`.

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> strategy = get_strategy("default")
        >>> strategy.num_replicas_in_sync
        1
    """
    if not isinstance(name, str):
        raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name.startswith("cpu:"):
        return _cpu_strategy(name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy()
    if name == "auto":
        try:
            return _tpu_strategy()
        except (ValueError, RuntimeError, tf.errors.OpError):
            pass
        if _tf_config_has_cluster():
            return tf.distribute.MultiWorkerMirroredStrategy()
        if len(tf.config.list_physical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    raise ValueError(
        f"Argument `name` must be one of {', '.join(STRATEGY_NAMES)}. Received: name={name!r}"
    )
