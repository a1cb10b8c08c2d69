"""`get_strategy`: a `tf.distribute.Strategy` by name."""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu", "cpu:N")


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
    # Listing logical devices would initialise TensorFlow and freeze the configuration, so
    # the configuration is read from the physical device first.
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu) or []
    if len(configured) < count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError as error:
            available = len(tf.config.list_logical_devices("CPU"))
            if available < count:
                raise ValueError(
                    f"Argument `name`={spec!r} needs {count} logical CPU devices, but "
                    f"TensorFlow is already initialised with {available}. Call get_strategy() "
                    f"before any other TensorFlow operation. Received: name={spec!r}"
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
