"""Strategies and the cross-replica helpers: the only `tf.distribute` code of the package.

Every other module asks this one for "how many replicas", "which replica am I",
"gather this across replicas" and "scale this loss", so a training step reads the
same on one CPU and on a TPU pod slice. The package also converts BatchNorm layers to
cross-replica ("global") BatchNorm, sets mixed precision, gives each worker its own
backup directory, works around two Keras 3 multi-worker `fit` failures
(`collective_safe`, `step_logs`), and writes the distribution report that `fit` prints.

Modules, re-exported here:
    - `replicas`: `num_replicas`, `in_replica_context`, `replica_id`, `all_gather`,
      `scale_for_replicas`, `replica_seed`.
    - `strategies`: `get_strategy`.
    - `precision`: `set_mixed_precision`, `fastest_precision`, `precision_candidates`,
      `time_train_step`.
    - `workers`: `is_chief`, `worker_directory`, `collective_safe`, `step_logs`.
    - `batch_norm`: `batch_norm_layers`, `convert_to_sync_batch_norm`,
      `resolve_sync_batch_norm`.
    - `report`: `global_batch_size`, `DistributionReport`, `distribution_report`.
"""

from keras_siamese.distribute.batch_norm import (
    batch_norm_layers,
    convert_to_sync_batch_norm,
    resolve_sync_batch_norm,
)
from keras_siamese.distribute.precision import (
    MIXED_PRECISION_NAMES,
    fastest_precision,
    precision_candidates,
    set_mixed_precision,
    time_train_step,
)
from keras_siamese.distribute.replicas import (
    all_gather,
    in_replica_context,
    num_replicas,
    replica_id,
    replica_seed,
    scale_for_replicas,
)
from keras_siamese.distribute.report import (
    DistributionReport,
    distribution_report,
    global_batch_size,
)
from keras_siamese.distribute.strategies import STRATEGY_NAMES, get_strategy

# Private helper, tested directly.
from keras_siamese.distribute.workers import (  # noqa: F401
    _collective_dtype,
    collective_safe,
    is_chief,
    step_logs,
    worker_directory,
)

__all__ = [
    "MIXED_PRECISION_NAMES",
    "STRATEGY_NAMES",
    "DistributionReport",
    "all_gather",
    "batch_norm_layers",
    "collective_safe",
    "convert_to_sync_batch_norm",
    "distribution_report",
    "fastest_precision",
    "get_strategy",
    "global_batch_size",
    "in_replica_context",
    "is_chief",
    "num_replicas",
    "precision_candidates",
    "replica_id",
    "replica_seed",
    "resolve_sync_batch_norm",
    "scale_for_replicas",
    "set_mixed_precision",
    "step_logs",
    "time_train_step",
    "worker_directory",
]
