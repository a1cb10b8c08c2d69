"""The distribution report `fit` prints: `DistributionReport`, `distribution_report`."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from keras_siamese.distribute.batch_norm import batch_norm_layers
from keras_siamese.distribute.workers import _worker_count


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
        sync_batch_norm: the model's `sync_batch_norm` setting (e.g. `'auto'`), or "".

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
    sync_batch_norm: str = ""

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
                f"{names(self.synchronized_batch_norm)}"
                + (f" (sync_batch_norm={self.sync_batch_norm})" if self.sync_batch_norm else ""),
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
            'keep the default sync_batch_norm="auto" (or pass True, or call '
            "distribute.convert_to_sync_batch_norm) for global BN"
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
        sync_batch_norm=repr(model.sync_batch_norm) if hasattr(model, "sync_batch_norm") else "",
    )
