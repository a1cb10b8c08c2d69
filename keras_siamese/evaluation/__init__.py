"""Evaluating learned representations.

Every protocol takes a keras_siamese model (or its `embedding_model()`) and data sets of
images as stored ([0, 255]); a bare encoder, which takes [0, 1], needs `input_scale=1 / 255`
(see `features`).

Modules (one protocol each), re-exported here:
    - `features`: `extract_features` and `FeatureExtractor`, the one place that runs a model
      over a data set; `check_data`.
    - `knn`: `knn_predict`, `knn_accuracy` and `check_knn_arguments` (the KNNMonitor
      callback uses the same code).
    - `linear_probe`: `linear_probe` (frozen features) and `linear_probe_on_features`.
    - `few_label_probe`: `few_label_linear_probe` (and `..._on_features`), the linear
      classifier on frozen features trained on 1% / 10% of the labels.
    - `fine_tune`: `fine_tune`, SimCLR's few-label fine-tuning protocol.
    - `subsets`: `class_balanced_subset`, the deterministic 1%/10% label subsets.
    - `report`: `representation_report`, all of the above as one dict.
    - `verification`: `verification_report` (ROC AUC, EER, accuracy of labelled pairs),
      `pair_scores`, `verification_metrics`, `roc_curve`, `check_scores`.
    - `retrieval`: `retrieval_report` (recall@k, precision@k, R-precision, mAP@R, and NMI
      and AMI of k-means on the gallery), `retrieval_metrics`, `nearest_neighbors`.
    - `clustering`: `clustering_metrics` (NMI and AMI of k-means clusters against the
      classes) and `kmeans`, in numpy.
    - `mutual_information`: `normalized_mutual_info` and `adjusted_mutual_info` of two
      labellings.
"""

from keras_siamese.evaluation.clustering import clustering_metrics, kmeans
from keras_siamese.evaluation.comparison import (
    compare_encoders,
    comparison_columns,
    format_table,
    raw_pixels,
)
from keras_siamese.evaluation.features import (
    Data,
    FeatureExtractor,
    check_data,
    extract_features,
)
from keras_siamese.evaluation.few_label_probe import (
    default_few_label_epochs,
    few_label_linear_probe,
    few_label_linear_probe_on_features,
)
from keras_siamese.evaluation.fine_tune import fine_tune
from keras_siamese.evaluation.knn import (
    check_knn_arguments,
    knn_accuracy,
    knn_predict,
)
from keras_siamese.evaluation.linear_probe import (
    linear_probe,
    linear_probe_on_features,
    top_k_accuracies,
)
from keras_siamese.evaluation.mutual_information import (
    adjusted_mutual_info,
    normalized_mutual_info,
)
from keras_siamese.evaluation.report import representation_report
from keras_siamese.evaluation.retrieval import (
    nearest_neighbors,
    retrieval_metrics,
    retrieval_report,
)
from keras_siamese.evaluation.subsets import class_balanced_subset
from keras_siamese.evaluation.verification import (
    check_scores,
    pair_scores,
    roc_curve,
    verification_metrics,
    verification_report,
)

__all__ = [
    "Data",
    "FeatureExtractor",
    "adjusted_mutual_info",
    "check_data",
    "check_knn_arguments",
    "check_scores",
    "class_balanced_subset",
    "clustering_metrics",
    "compare_encoders",
    "comparison_columns",
    "default_few_label_epochs",
    "extract_features",
    "few_label_linear_probe",
    "few_label_linear_probe_on_features",
    "fine_tune",
    "format_table",
    "kmeans",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "linear_probe_on_features",
    "representation_report",
    "top_k_accuracies",
    "nearest_neighbors",
    "normalized_mutual_info",
    "pair_scores",
    "raw_pixels",
    "retrieval_metrics",
    "retrieval_report",
    "roc_curve",
    "verification_metrics",
    "verification_report",
]
