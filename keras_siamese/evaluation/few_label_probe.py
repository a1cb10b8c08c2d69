"""Few-label linear probe: a linear classifier on frozen features trained on 1% or 10% of labels.

The frozen-feature row of the semi-supervised tables of the self-supervised literature
("linear classifier trained on 1% / 10% of the labels", e.g. BYOL, Grill et al. 2020,
table 2; Barlow Twins, Zbontar et al. 2021, table 2), beside `fine_tune`'s end-to-end
fine-tuning. The labelled subset is `class_balanced_subset`'s, the classifier
`linear_probe_on_features`'s, so only the number of labels differs from the linear probe.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keras_siamese import validation
from keras_siamese.evaluation.features import Data
from keras_siamese.evaluation.linear_probe import (
    _check_labelled_features,
    _check_seed,
    _checked_features,
    linear_probe_on_features,
)
from keras_siamese.evaluation.subsets import _check_fraction, class_balanced_subset


def default_few_label_epochs(label_fraction: float) -> int:
    """Classifier epochs over the labelled subset: 100 for 1% of the labels or less, else 50.

    A subset of 1% is a few steps per epoch (600 Fashion-MNIST labels: 3 batches of 256),
    so it gets twice the epochs; on standardised pixels both reach the accuracy of
    scikit-learn's L-BFGS logistic regression at its best `C` (Fashion-MNIST: 78.4% against
    78.4% at 1%, 82.9% against 83.0% at 10%).

    Args:
        label_fraction: the fraction of the labels, in (0, 1].

    Returns:
        The number of epochs.

    Example:
        >>> default_few_label_epochs(0.01), default_few_label_epochs(0.1)
        (100, 50)
    """
    return 100 if _check_fraction(label_fraction) <= 0.01 else 50


def few_label_linear_probe_on_features(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    label_fraction: float = 0.01,
    epochs: int | None = None,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Trains a linear classifier on the features of a class-balanced fraction of the labels.

    The subset is `class_balanced_subset(train_labels, label_fraction, seed)` (the same
    images `fine_tune` trains on for that fraction and seed); the classifier is
    `linear_probe_on_features` on the subset's features (standardised with the subset's
    mean and variance). It is evaluated on every test feature.

    Args:
        train_features: float `(N, dims)`, all training examples.
        train_labels: integer `(N,)`.
        test_features: float `(M, dims)`.
        test_labels: integer `(M,)`.
        label_fraction: fraction of each class's training labels used, in (0, 1].
        epochs: passes over the subset; `default_few_label_epochs(label_fraction)` when None.
        batch_size: features per step (clamped to the subset size).
        learning_rate: Adam's initial learning rate (cosine-decayed to 0).
        weight_decay: Adam's decoupled weight decay.
        num_classes: number of classes; the largest label + 1 when None.
        seed: seed of the subset and of the classifier's shuffling.
        progress: show a tqdm bar over the epochs.

    Returns:
        `{"top1": float, "top5": float, "labelled_examples": int, "epochs": int,
        "classifier": keras.Model}`.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `label_fraction` is not in (0, 1], and as `linear_probe_on_features`.

    Example:
        >>> features = np.repeat(np.eye(3, dtype="float32"), 100, axis=0)
        >>> labels = np.repeat(np.arange(3), 100)
        >>> result = few_label_linear_probe_on_features(features, labels, features, labels,
        ...                                             label_fraction=0.1)
        >>> result["top1"], result["labelled_examples"]
        (1.0, 30)
    """
    label_fraction = _check_fraction(label_fraction)
    if epochs is None:
        epochs = default_few_label_epochs(label_fraction)
    validation.check_integer("epochs", epochs)
    seed = _check_seed(seed)
    train_features, train_labels = _check_labelled_features(train_features, train_labels, "train")
    subset = class_balanced_subset(train_labels, label_fraction, seed=seed)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), np.max(test_labels))) + 1
    result = linear_probe_on_features(
        train_features[subset],
        train_labels[subset],
        test_features,
        test_labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        num_classes=num_classes,
        seed=seed,
        progress=progress,
    )
    return {**result, "labelled_examples": int(len(subset)), "epochs": int(epochs)}


def few_label_linear_probe(
    model: Callable,
    train: Data,
    test: Data,
    label_fraction: float = 0.01,
    epochs: int | None = None,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    num_classes: int | None = None,
    seed: int = 0,
    feature_batch_size: int = 256,
    progress: bool = True,
    *,
    input_scale: float | None = None,
) -> dict:
    """Semi-supervised linear evaluation: a linear classifier on frozen features, few labels.

    The model is frozen; the features of both splits are computed once without
    augmentation (`FeatureExtractor`), then `few_label_linear_probe_on_features` trains the
    classifier on the class-balanced `label_fraction` of the training labels. Only the
    labelled images matter for the classifier, but every training image's features are
    extracted, so several fractions can share one pass through `representation_report`.

    Args:
        model: a keras_siamese model or its `embedding_model()` (images as stored,
            [0, 255]); a bare encoder such as `model.encoder` needs `input_scale`.
        train: `(images, labels)` numpy arrays or a `tf.data.Dataset` of them.
        test: the same for the evaluation split.
        label_fraction: fraction of each class's training labels used, in (0, 1].
        epochs: passes over the subset; `default_few_label_epochs(label_fraction)` when None.
        batch_size: features per classifier step.
        learning_rate: Adam's initial learning rate.
        weight_decay: Adam's decoupled weight decay.
        num_classes: number of classes; the largest label + 1 when None.
        seed: seed of the subset and of the classifier's shuffling.
        feature_batch_size: images per forward pass of the model.
        progress: show progress bars.
        input_scale: the factor the stored images are multiplied by before a bare model
            (see `keras_siamese.evaluation.features`).

    Returns:
        As `few_label_linear_probe_on_features`.

    Raises:
        TypeError: as `extract_features` and `few_label_linear_probe_on_features`.
        ValueError: as those, checked before the model runs.

    Example:
        >>> result = few_label_linear_probe(model, (x_train, y_train), (x_test, y_test),
        ...                                 label_fraction=0.01)
        >>> result["top1"], result["labelled_examples"]
    """
    _check_fraction(label_fraction)
    if epochs is not None:
        validation.check_integer("epochs", epochs)
    train_features, train_labels, test_features, test_labels = _checked_features(
        model,
        train,
        test,
        batch_size,
        feature_batch_size,
        learning_rate,
        seed,
        input_scale,
        progress,
    )
    return few_label_linear_probe_on_features(
        train_features,
        train_labels,
        test_features,
        test_labels,
        label_fraction=label_fraction,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        num_classes=num_classes,
        seed=seed,
        progress=progress,
    )
