"""Evaluating learned representations.

Modules (one protocol each), re-exported here:
    - `features`: `extract_features`, the one place that runs an encoder over a data set.
    - `knn`: `knn_predict` and `knn_accuracy` (the KNNMonitor callback uses the same code).
"""

# Private helpers shared with keras_siamese.callbacks.
from keras_siamese.evaluation.features import (  # noqa: F401
    Data,
    _check_batch_size,
    _check_data,
    _make_predict_function,
    extract_features,
)
from keras_siamese.evaluation.knn import (  # noqa: F401
    _check_knn_arguments,
    _knn_accuracy_with,
    knn_accuracy,
    knn_predict,
)

__all__ = ["Data", "extract_features", "knn_accuracy", "knn_predict"]
