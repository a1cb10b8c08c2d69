"""Linear probe: a softmax classifier trained on the frozen features of an encoder.

`linear_probe` runs the encoder once over both splits (`extract_features`, no augmentation)
and hands the cached features to `linear_probe_on_features`, which standardises them and
trains one `Dense` layer with Adam inside one `tf.function` per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.evaluation.features import Data, FeatureExtractor, check_data, progress_hook


def _check_learning_rate(learning_rate: float) -> float:
    return validation.check_number("learning_rate", learning_rate, 0.0, include_minimum=False)


def _check_seed(seed: int) -> int:
    return validation.check_integer("seed", seed, 0)


def _check_labelled_features(
    features: np.ndarray, labels: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(
            f"Argument `{name}_features` must be a non-empty rank-2 array (examples, dims). "
            f"Received: {name}_features.shape={features.shape}"
        )
    if labels.shape != (len(features),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Argument `{name}_labels` must be integers of shape (N,) matching "
            f"`{name}_features`. Received: {name}_labels.shape={labels.shape}, "
            f"dtype={labels.dtype}, {name}_features.shape={features.shape}"
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(
            f"Argument `{name}_features` contains NaN or infinite values (a diverged encoder?)."
        )
    return features, labels.astype(np.int64)


def _checked_features(
    model, train, test, batch_size, feature_batch_size, learning_rate, seed, input_scale, progress
):
    """The probes' shared first half: every argument checked before the model runs, then the
    frozen features of `train` and `test` as `(train_x, train_y, test_x, test_y)`."""
    validation.check_integer("batch_size", batch_size)
    validation.check_integer("feature_batch_size", feature_batch_size)
    _check_learning_rate(learning_rate)
    _check_seed(seed)
    check_data(train, "train")
    check_data(test, "test")
    extractor = FeatureExtractor(model, input_scale)
    train_features, train_labels = extractor(train, feature_batch_size, progress)
    test_features, test_labels = extractor(test, feature_batch_size, progress)
    return train_features, train_labels, test_features, test_labels


def top_k_accuracies(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict:
    """Top-k accuracies of class scores: the fraction of labels among the k highest scores.

    `k` larger than the number of classes is clamped to it (top-5 of 3 classes is 1.0).
    Ties are broken towards the lower class index.

    Args:
        logits: scores `(N, classes)`.
        labels: integer labels `(N,)`.
        ks: the values of k.

    Returns:
        `{"top1": float, "top5": float, ...}`, one key per k.

    Example:
        >>> top_k_accuracies(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), ks=(1, 2))
        {'top1': 0.5, 'top2': 1.0}
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    order = np.argsort(-logits, axis=1, kind="stable")
    ranks = np.argmax(order == labels[:, None], axis=1)
    return {f"top{k}": float(np.mean(ranks < min(k, logits.shape[1]))) for k in ks}


def _standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and variance; constant dimensions get variance 1 (not 1/epsilon)."""
    mean = features.mean(axis=0, dtype=np.float64)
    variance = features.var(axis=0, dtype=np.float64)
    constant = variance <= 1e-12 * max(float(variance.max()), 1e-30)
    return mean.astype(np.float32), np.where(constant, 1.0, variance).astype(np.float32)


def _epoch_progress(epochs: int, progress: bool, description: str):
    if not progress:
        return range(epochs)
    from tqdm.auto import tqdm

    return tqdm(range(epochs), desc=description, unit="epoch", leave=False)


def _check_label_range(train_features, train_labels, test_features, test_labels, num_classes):
    """Checks that both splits share the feature size and labels in range; returns
    `num_classes` (the largest label + 1 when None)."""
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            "Arguments `train_features` and `test_features` must have the same feature size. "
            f"Received: train_features.shape={train_features.shape}, "
            f"test_features.shape={test_features.shape}"
        )
    largest = int(max(train_labels.max(), test_labels.max()))
    if num_classes is None:
        num_classes = largest + 1
    validation.check_integer("num_classes", num_classes)
    if min(train_labels.min(), test_labels.min()) < 0 or largest >= num_classes:
        raise ValueError(
            "Arguments `train_labels` and `test_labels` must lie in [0, num_classes). "
            f"Received: labels up to {largest}, num_classes={num_classes}"
        )
    return num_classes


def _probe_classifier(train_features: np.ndarray, num_classes: int) -> keras.Sequential:
    """Standardisation (the training features' statistics) then a zero-initialised `Dense`."""
    mean, variance = _standardisation(train_features)
    # float32 whatever the global policy: the protocol must not change with the encoder's
    # training precision.
    return keras.Sequential(
        [
            keras.Input((train_features.shape[1],), name="features"),
            keras.layers.Normalization(
                mean=mean, variance=variance, name="standardise", dtype="float32"
            ),
            keras.layers.Dense(
                num_classes, kernel_initializer="zeros", name="logits", dtype="float32"
            ),
        ],
        name="linear_probe",
    )


def _train_classifier(
    classifier: keras.Sequential,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    progress,
) -> None:
    """Adam with cosine decay; each epoch one `tf.function` over a `(seed, epoch)` permutation."""
    count = len(train_features)
    batch_size = min(batch_size, count)
    steps = -(-count // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    optimizer = keras.optimizers.Adam(schedule, weight_decay=weight_decay or None)
    variables = classifier.trainable_variables
    optimizer.build(variables)
    features = tf.constant(train_features)
    labels = tf.constant(train_labels)

    @tf.function
    def train_epoch(epoch_seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(count), epoch_seed)
        for step in tf.range(steps):
            batch = order[step * batch_size : (step + 1) * batch_size]
            with tf.GradientTape() as tape:
                logits = classifier(tf.gather(features, batch), training=True)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(
                        tf.gather(labels, batch), logits, from_logits=True
                    )
                )
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    report = progress_hook(progress)
    for epoch in _epoch_progress(epochs, report is None and progress, "linear probe"):
        train_epoch(tf.constant([seed, epoch], tf.int64))
        if report is not None:
            report(1)


def linear_probe_on_features(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    epochs: int = 50,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    num_classes: int | None = None,
    seed: int = 0,
    progress=False,
) -> dict:
    """Trains a linear softmax classifier on cached features and returns its test accuracy.

    The features are standardised with the mean and variance of the training features
    (a `keras.layers.Normalization` inside the returned classifier, so it takes raw
    features), then one `Dense(num_classes)` layer, initialised at zero, is trained with
    Adam (learning rate decayed by a cosine to 0) on the softmax cross-entropy. Each epoch
    is one `tf.function` looping over a permutation of the training set drawn from
    `(seed, epoch)`, so a run is deterministic and has no per-batch Python overhead.

    Args:
        train_features: float `(N, dims)`.
        train_labels: integer `(N,)` in `[0, num_classes)`.
        test_features: float `(M, dims)`.
        test_labels: integer `(M,)`.
        epochs: passes over the training features.
        batch_size: features per Adam step.
        learning_rate: Adam's initial learning rate.
        weight_decay: Adam's decoupled weight decay (0 for none).
        num_classes: number of classes; the largest label + 1 when None.
        seed: the seed of the shuffling.
        progress: True shows a tqdm bar over the epochs, False nothing; or an object with
            `update(count)` (`keras_siamese.cli.progress_lines.Progress`, a tqdm bar) or a
            callable `progress(count)`, told 1 after each epoch (and never closed here).

    Returns:
        `{"top1": float, "top5": float, "classifier": keras.Model}`; the classifier maps
        raw features `(batch, dims)` to logits `(batch, num_classes)`.

    Raises:
        TypeError: if an integer or numeric argument has the wrong type, or `progress` is
            neither a switch, a progress object nor a callable.
        ValueError: for empty or non-finite features, labels that do not match them or fall
            outside `[0, num_classes)`, different feature sizes, or a non-positive
            `epochs`, `batch_size` or `learning_rate`.

    Example:
        >>> features = np.eye(3, dtype="float32")
        >>> result = linear_probe_on_features(features, np.arange(3), features, np.arange(3))
        >>> result["top1"]
        1.0
    """
    validation.check_integer("epochs", epochs)
    validation.check_integer("batch_size", batch_size)
    learning_rate = _check_learning_rate(learning_rate)
    weight_decay = validation.check_number("weight_decay", weight_decay, 0.0)
    seed = _check_seed(seed)
    progress_hook(progress)
    train_features, train_labels = _check_labelled_features(train_features, train_labels, "train")
    test_features, test_labels = _check_labelled_features(test_features, test_labels, "test")
    num_classes = _check_label_range(
        train_features, train_labels, test_features, test_labels, num_classes
    )
    classifier = _probe_classifier(train_features, num_classes)
    _train_classifier(
        classifier,
        train_features,
        train_labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        seed=seed,
        progress=progress,
    )
    logits = classifier.predict_on_batch(test_features)
    return {**top_k_accuracies(logits, test_labels), "classifier": classifier}


def linear_probe(
    model: Callable,
    train: Data,
    test: Data,
    epochs: int = 50,
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
    """Linear evaluation: a linear classifier on the frozen features of a model.

    The protocol of the self-supervised literature (e.g. SimCLR, Chen et al. 2020,
    section B.6; SimSiam, Chen & He 2021, section 4): the encoder is frozen and a linear
    classifier is trained on its representation. Here the features of both splits are
    computed once, without augmentation, by `extract_features` (`training=False`, with a
    progress bar), then `linear_probe_on_features` standardises them and trains the
    classifier. Cheap enough to run after every pretraining.

    Args:
        model: a keras_siamese model (SimCLR, SimSiam, ...) or its `embedding_model()`,
            which take the images as stored ([0, 255]); a bare encoder such as
            `model.encoder` needs `input_scale` (see `keras_siamese.evaluation.features`).
        train: `(images, labels)` numpy arrays or a `tf.data.Dataset` of them.
        test: the same for the evaluation split.
        epochs: passes of the classifier over the training features.
        batch_size: features per classifier step.
        learning_rate: Adam's initial learning rate (cosine-decayed to 0).
        weight_decay: Adam's decoupled weight decay.
        num_classes: number of classes; the largest label + 1 when None.
        seed: the seed of the classifier's shuffling.
        feature_batch_size: images per forward pass of the encoder.
        progress: show progress bars (features, then epochs).
        input_scale: the factor the stored images are multiplied by before a bare model
            (`1 / 255` for an encoder taking [0, 1], `1.0` for a model taking them as stored).

    Returns:
        `{"top1": float, "top5": float, "classifier": keras.Model}`; the classifier maps
        features (not images) to logits.

    Raises:
        TypeError: as `extract_features` and `linear_probe_on_features`.
        ValueError: as `extract_features` and `linear_probe_on_features` (arguments are
            checked before the encoder runs).

    Example:
        >>> encoder = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
        >>> images = np.stack([np.eye(2), 1 - np.eye(2)])[..., None] * 255
        >>> data = (images, np.array([0, 1]))
        >>> result = linear_probe(encoder, data, data, progress=False, input_scale=1 / 255)
        >>> result["top1"]
        1.0
    """
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
    return linear_probe_on_features(
        train_features,
        train_labels,
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
