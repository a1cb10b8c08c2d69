"""Multi-worker helpers: the chief, per-worker directories, two Keras 3 `fit` workarounds."""

from __future__ import annotations

import os

import tensorflow as tf


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Returns True on the worker that writes checkpoints, exports and logs (True on one machine).

    Example:
        >>> is_chief()
        True
    """
    strategy = strategy or tf.distribute.get_strategy()
    return bool(strategy.extended.should_checkpoint)


def worker_directory(directory: str, strategy: tf.distribute.Strategy | None = None) -> str:
    """Returns `directory` on one machine, `directory/<task_type>_<task_id>` for each worker.

    Keras 3's `BackupAndRestore` writes its backup to a fixed file name: two workers sharing a
    file system would overwrite each other's backup mid-write. Each worker backs up to (and
    restores from) its own sub-directory; their contents are identical since the workers hold
    the same variables.

    Args:
        directory: the directory of a single-machine run.
        strategy: the strategy (the current one when None).

    Returns:
        The directory for this worker.

    Example:
        >>> worker_directory("runs/backup")
        'runs/backup'
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None or not resolver.cluster_spec().as_dict():
        return directory
    return os.path.join(directory, f"{task_type}_{resolver.task_id}")


# Dtypes that cross-worker collectives (CollectiveReduceV2) accept.
_COLLECTIVE_DTYPES = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def _collective_dtype(tensor: tf.Tensor) -> tf.Tensor:
    if tensor.dtype in _COLLECTIVE_DTYPES or not tensor.dtype.is_integer:
        return tensor
    return tf.cast(tensor, tf.int64 if tensor.dtype.size >= 4 else tf.int32)


def collective_safe(x, strategy: tf.distribute.Strategy | None = None):
    """Casts a dataset's uint8 (and other small integer) tensors to int32 for multi-worker `fit`.

    Under a strategy, Keras 3 averages the first batch of `fit`/`evaluate` across the
    replicas to build the model symbolically; with `MultiWorkerMirroredStrategy` that is a
    cross-worker collective, which refuses uint8 ("Value for attr 'T' of uint8 is not in
    the list of allowed values"), so uint8 images would stop every multi-worker run. The
    models accept any integer images in [0, 255], so an int32 copy trains identically.

    Args:
        x: what `fit` was given; only a `tf.data.Dataset` under a multi-worker strategy is
            changed.
        strategy: the model's strategy (the current one when None).

    Returns:
        `x`, or the dataset mapped to collective-friendly dtypes.

    Example:
        >>> dataset = collective_safe(dataset, strategy)
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(x, tf.data.Dataset) or not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        return x
    specs = [spec for spec in tf.nest.flatten(x.element_spec) if isinstance(spec, tf.TensorSpec)]
    if all(spec.dtype in _COLLECTIVE_DTYPES or not spec.dtype.is_integer for spec in specs):
        return x

    def cast(*element):
        element = element[0] if len(element) == 1 else element
        return tf.nest.map_structure(_collective_dtype, element)

    return x.map(cast, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def step_logs(logs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Shapes a train/test step's scalar logs so Keras can reduce them across workers.

    Keras 3 (3.15) reduces each step's logs of a multi-worker `fit` with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). Shaped `(1,)`,
    they reduce to the scalar mean over the replicas. Elsewhere the logs are unchanged.

    Args:
        logs: the `{metric_name: value}` a `train_step`/`test_step` returns.

    Returns:
        The logs, with scalars reshaped to `(1,)` under a multi-worker strategy.

    Example:
        >>> step_logs({"loss": tf.constant(1.0)})["loss"].shape
        TensorShape([])
    """
    if _worker_count(tf.distribute.get_strategy()) <= 1:
        return logs
    return {
        name: tf.reshape(value, (1,)) if value.shape.rank == 0 else value
        for name, value in logs.items()
    }


def _worker_count(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(task, ())) for task in ("chief", "worker")))
