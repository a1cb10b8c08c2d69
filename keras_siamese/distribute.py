"""Strategies and the cross-replica helpers: the only `tf.distribute` code of the package.

Every other module asks this one for "how many replicas", "which replica am I",
"gather this across replicas" and "scale this loss", so a training step reads the
same on one CPU and on a TPU pod slice. The module also converts BatchNorm layers to
cross-replica ("global") BatchNorm, sets mixed precision, gives each worker its own
backup directory, works around two Keras 3 multi-worker `fit` failures
(`collective_safe`, `step_logs`), and writes the distribution report that `fit` prints.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu", "cpu:N")
MIXED_PRECISION_NAMES = ("none", "bfloat16", "float16")


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


# ----------------------------------------------------------------- workers and precision


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


def set_mixed_precision(name: str | None) -> str:
    """Sets Keras' global dtype policy: `"bfloat16"`, `"float16"` or `"none"` (float32).

    Layers then compute in the low precision with float32 variables; keras_siamese's losses,
    similarities and metrics cast to float32. With `"float16"`, `compile` wraps the optimizer
    in a `keras.optimizers.LossScaleOptimizer` and the training steps scale the loss with
    `optimizer.scale_loss`. bfloat16 needs no loss scaling (TPUs, recent CPUs and GPUs).
    Call it before building the model.

    Args:
        name: `"bfloat16"`, `"float16"`, or `"none"`/`None` for float32.

    Returns:
        The policy name set: `"mixed_bfloat16"`, `"mixed_float16"` or `"float32"`.

    Raises:
        ValueError: for another name.

    Example:
        >>> set_mixed_precision("bfloat16")
        'mixed_bfloat16'
        >>> set_mixed_precision("none")
        'float32'
    """
    if name in (None, "none", "float32"):
        policy = "float32"
    elif name in ("bfloat16", "float16"):
        policy = f"mixed_{name}"
    else:
        raise ValueError(
            f"Argument `name` must be one of {', '.join(MIXED_PRECISION_NAMES)}. "
            f"Received: name={name!r}"
        )
    keras.mixed_precision.set_global_policy(policy)
    return policy


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


# ----------------------------------------------------------------- global BatchNorm


def _named_layers(layer: keras.layers.Layer, prefix: str = ""):
    """Yields `(path, layer)` for every layer nested in `layer`, depth first."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, f"{path}/")


def batch_norm_layers(model: keras.layers.Layer) -> dict[str, keras.layers.BatchNormalization]:
    """Returns the BatchNormalization layers nested in `model`, keyed by their path.

    Example:
        >>> sorted(batch_norm_layers(model))
        ['encoder/stem_bn', 'projector/hidden0_batch_norm']
    """
    return {
        path: layer
        for path, layer in _named_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def convert_to_sync_batch_norm(model: keras.layers.Layer) -> keras.layers.Layer:
    """Makes every BatchNormalization layer of `model` synchronise its statistics across replicas.

    SimCLR (Chen et al. 2020, section 2.2): "In distributed training with data parallelism,
    the BN mean and variance are typically aggregated locally per device. In our contrastive
    learning, as positive pairs are computed in the same device, the model can exploit the
    local information leakage to improve prediction accuracy without improving
    representations. We address this issue by aggregating BN mean and variance over all
    devices during the training." With `synchronized=True` the batch statistics are
    all-reduced over the replicas, so a step normalises exactly as one device would on the
    global batch.

    The layers are changed in place (the flag is read at call time and saved in their
    config, so a `.keras` file keeps it); convert before the first `fit`, whose traced step
    would otherwise keep the old behaviour. Outside a strategy the layers behave as before.

    Args:
        model: a Keras layer or model (nested models and layers are searched).

    Returns:
        `model` itself.

    Raises:
        TypeError: if `model` is not a Keras layer.

    Example:
        >>> encoder = convert_to_sync_batch_norm(keras_siamese.encoders.resnet(10, width=8))
        >>> all(layer.synchronized for layer in batch_norm_layers(encoder).values())
        True
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Argument `model` must be a Keras layer or model. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    for layer in batch_norm_layers(model).values():
        layer.synchronized = True
    return model


# ----------------------------------------------------------------- the distribution report


def global_batch_size(x, batch_size: int | None = None) -> int | None:
    """Returns the global batch size `fit(x, batch_size=...)` will use, or None if not static.

    Args:
        x: a batched `tf.data.Dataset` (its static batch dimension) or arrays.
        batch_size: `fit`'s `batch_size` for arrays (Keras' default 32 when None).

    Returns:
        The number of images per step over all replicas, or None when unknown (a dataset
        batched without `drop_remainder=True`).

    Example:
        >>> global_batch_size(tf.data.Dataset.range(10).batch(4, drop_remainder=True))
        4
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        while isinstance(spec, (tuple, list)) and spec:
            spec = spec[0]
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank in (None, 0):
            return None
        return spec.shape[0]
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    if not hasattr(x, "shape") or not x.shape:
        return None
    return min(int(x.shape[0]), int(batch_size or 32))


@dataclasses.dataclass(frozen=True)
class DistributionReport:
    """What one training step of a model does across replicas, printed at the start of `fit`.

    Read it when a multi-device run trains worse than one device: it says how many
    negatives each anchor really sees, which BatchNorm layers normalise over the global
    batch and which over one replica's share, and whether the loss gathers across replicas.

    Attributes:
        model: the model's class name.
        strategy: the strategy's class name.
        replicas: `num_replicas_in_sync`.
        workers: machines taking part (1 unless multi-worker).
        global_batch_size: images per step over all replicas (None when not static).
        has_negatives: whether the method contrasts anchors with negatives.
        negatives_per_anchor: negatives each anchor is contrasted with (None without
            negatives or when the batch size is unknown).
        cross_replica_loss: how the loss combines the replicas' examples.
        synchronized_batch_norm: paths of the BatchNorm layers with global statistics.
        local_batch_norm: paths of the BatchNorm layers with per-replica statistics.
        dtype_policy: the model's dtype policy (`float32`, `mixed_bfloat16`, ...).
        warnings: what makes this run differ from one device on the global batch.

    Example:
        >>> print(model.distribution_report())
    """

    model: str
    strategy: str
    replicas: int
    workers: int
    global_batch_size: int | None
    has_negatives: bool
    negatives_per_anchor: int | None
    cross_replica_loss: str
    synchronized_batch_norm: tuple[str, ...]
    local_batch_norm: tuple[str, ...]
    dtype_policy: str
    warnings: tuple[str, ...]

    @property
    def per_replica_batch_size(self) -> int | None:
        """Images per replica and step (None when the global batch size is unknown)."""
        if self.global_batch_size is None:
            return None
        return self.global_batch_size // self.replicas

    def __str__(self) -> str:
        def names(paths):
            shown = ", ".join(paths[:4])
            return shown + (f", ... ({len(paths) - 4} more)" if len(paths) > 4 else "")

        batch = "unknown (not static)"
        if self.global_batch_size is not None:
            batch = (
                f"{self.global_batch_size} global = {self.per_replica_batch_size} per replica"
                f" x {self.replicas}"
            )
        negatives = "none (the method has no negatives)"
        if self.has_negatives:
            negatives = f"{self.negatives_per_anchor} per anchor"
            if self.negatives_per_anchor is None:
                negatives = "unknown (the batch size is unknown)"
        precision = self.dtype_policy
        if self.dtype_policy != "float32":
            precision += " (losses, similarities and metrics in float32)"
        rows = [
            (
                "strategy",
                f"{self.strategy}: {self.replicas} replica(s) on {self.workers} worker(s)",
            ),
            ("batch", batch),
            ("negatives", negatives),
            ("loss", f"{self.cross_replica_loss}; per-replica mean / {self.replicas}"),
            (
                "global BN",
                f"{len(self.synchronized_batch_norm)} layer(s) "
                f"{names(self.synchronized_batch_norm)}",
            ),
            (
                "per-replica BN",
                f"{len(self.local_batch_norm)} layer(s) {names(self.local_batch_norm)}",
            ),
            ("precision", precision),
        ] + [("WARNING", warning) for warning in self.warnings]
        lines = [f"Distribution report for {self.model}"]
        lines += [f"  {label:<15} {value}".rstrip() for label, value in rows]
        return "\n".join(lines)


_PUBLIC_STRATEGIES = ("TPUStrategy", "MultiWorkerMirroredStrategy", "MirroredStrategy")


def _strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)."""
    for name in _PUBLIC_STRATEGIES:
        if isinstance(strategy, getattr(tf.distribute, name)):
            return name
    name = type(strategy).__name__
    return "default strategy (one device)" if name.startswith("_Default") else name


def _worker_count(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(task, ())) for task in ("chief", "worker")))


def distribution_report(
    model: keras.Model,
    global_batch_size: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> DistributionReport:
    """Describes how `model` trains under `strategy` with a global batch of `global_batch_size`.

    Models describe their loss with two optional members: `cross_replica_loss` (a
    sentence, e.g. SimCLR's "NT-Xent negatives all_gathered from every replica") and
    `negatives_per_anchor(global_batch_size)` (an int, or None without negatives).

    Args:
        model: the model (its BatchNorm layers are listed).
        global_batch_size: images per step over all replicas, if known.
        strategy: the model's strategy (`model.distribute_strategy` when None).

    Returns:
        A `DistributionReport`; `str(report)` is the printed block.

    Example:
        >>> report = distribution_report(model, global_batch_size=256)
        >>> report.replicas, report.negatives_per_anchor
        (1, 510)
    """
    strategy = strategy or getattr(model, "distribute_strategy", None)
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    layers = batch_norm_layers(model)
    synchronized = tuple(path for path, layer in layers.items() if layer.synchronized)
    local = tuple(path for path, layer in layers.items() if not layer.synchronized)
    has_negatives = hasattr(model, "negatives_per_anchor")
    negatives = None
    if global_batch_size is not None and has_negatives:
        negatives = model.negatives_per_anchor(global_batch_size)
    warnings = []
    if global_batch_size is None:
        warnings.append(
            "the global batch size is unknown (not static): batch the dataset with "
            "drop_remainder=True (TPU/XLA need static shapes; a last partial batch gives "
            "the replicas unequal batches)"
        )
    elif global_batch_size % replicas:
        warnings.append(
            f"the global batch of {global_batch_size} does not split evenly over "
            f"{replicas} replicas"
        )
    if replicas > 1 and local:
        share = (
            "a replica's share"
            if global_batch_size is None
            else (f"{global_batch_size // replicas} images, not {global_batch_size}")
        )
        warnings.append(
            f"{len(local)} BatchNorm layer(s) normalise over {share}: the step differs from "
            "one device and a contrastive model can cheat on per-replica statistics; pass "
            "sync_batch_norm=True (or distribute.convert_to_sync_batch_norm) for global BN"
        )
    return DistributionReport(
        model=type(model).__name__,
        strategy=_strategy_name(strategy),
        replicas=replicas,
        workers=_worker_count(strategy),
        global_batch_size=global_batch_size,
        has_negatives=has_negatives,
        negatives_per_anchor=negatives,
        cross_replica_loss=getattr(model, "cross_replica_loss", "")
        or "per-example loss, nothing gathered across replicas",
        synchronized_batch_norm=synchronized,
        local_batch_norm=local,
        dtype_policy=getattr(model, "dtype_policy", keras.mixed_precision.global_policy()).name,
        warnings=tuple(warnings),
    )
