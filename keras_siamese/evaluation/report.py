"""`representation_report`: kNN, linear probes and few-label fine-tuning of an encoder."""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from keras_siamese import validation
from keras_siamese.evaluation.features import Data, FeatureExtractor, check_data
from keras_siamese.evaluation.few_label_probe import few_label_linear_probe_on_features
from keras_siamese.evaluation.fine_tune import fine_tune
from keras_siamese.evaluation.knn import check_knn_arguments, knn_predict
from keras_siamese.evaluation.linear_probe import _check_seed, linear_probe_on_features
from keras_siamese.evaluation.subsets import _check_fraction


def fraction_name(fraction: float) -> str:
    """`0.01 -> "1%"`, `0.1 -> "10%"`, `0.005 -> "0.5%"`: the key of a label fraction."""
    return f"{100 * fraction:g}%"


def representation_report(
    encoder: keras.Model,
    train: Data,
    test: Data,
    k: int = 200,
    temperature: float = 0.1,
    label_fractions: Sequence[float] = (0.01, 0.1),
    linear_probe_options: dict | None = None,
    fine_tune_options: dict | None = None,
    batch_size: int = 256,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    input_scale: float | None = None,
    linear_label_fractions: Sequence[float] = (),
) -> dict:
    """Evaluates an encoder with the protocols of the self-supervised literature.

    The features of `train` and `test` are extracted once (`extract_features`) and used by
    both frozen-feature protocols: the weighted kNN of InstDisc/SimSiam (`train` is the
    memory, `test` the queries, see `knn_predict`) and the linear probe
    (`linear_probe_on_features`), and, for each fraction in `linear_label_fractions`, by the
    linear classifier trained on that class-balanced fraction of the labels
    (`few_label_linear_probe_on_features`). Then, for each fraction in `label_fractions`, a copy of
    the network is fine-tuned end to end on that class-balanced fraction of the training
    labels (`fine_tune`, SimCLR's semi-supervised protocol). Everything is evaluated on
    `test`. The result holds only numbers (models are dropped), so it can be written
    with `json.dump`.

    Args:
        encoder: a keras_siamese model (SimCLR, SimSiam, ...) or its `embedding_model()`,
            which take the images as stored ([0, 255]), or, with `input_scale`, a
            `keras.Model` from images to features `(batch, dims)` (e.g. `model.encoder`).
        train: `(images, labels)` numpy arrays or a dataset of them.
        test: the same for the evaluation split.
        k: kNN neighbours.
        temperature: kNN weight temperature.
        label_fractions: fractions of the training labels for fine-tuning; `()` skips it
            (e.g. for an encoder that is not a trainable network).
        linear_probe_options: keyword arguments of `linear_probe_on_features` (`epochs`,
            `batch_size`, `learning_rate`, `weight_decay`).
        fine_tune_options: keyword arguments of `fine_tune` (`epochs`, `batch_size`,
            `learning_rate`, `crop_area`, ...), used for every fraction.
        batch_size: images per forward pass when extracting features.
        num_classes: number of classes; the largest label + 1 when None.
        seed: seed of the linear probe and of the fine-tuning subsets.
        progress: show progress bars.
        input_scale: the factor the stored images are multiplied by before a plain model
            (`1 / 255` for an encoder taking [0, 1]); see `extract_features`.
        linear_label_fractions: fractions of the training labels for the few-label linear
            probe on the frozen features (e.g. `(0.01, 0.1)`); `()` skips it. It shares
            `linear_probe_options` except `epochs` (see `default_few_label_epochs`).

    Returns:
        A dict::

            {"knn": {"top1", "k", "temperature"},
             "linear_probe": {"top1", "top5"},
             "few_label_linear": {"1%": {"top1", "top5", "labelled_examples"}, ...},
             "fine_tune": {"1%": {"top1", "top5", "labelled_examples"}, "10%": {...}},
             "seconds": {"features", "knn", "linear_probe", "linear_1%", "fine_tune_1%", ...},
             "feature_dims": int}

        (`few_label_linear` only when `linear_label_fractions` is not empty.)

    Raises:
        TypeError: if an argument has the wrong type (see the protocols).
        ValueError: if `k`, `temperature`, `batch_size` or a label fraction is out of range
            (checked before the encoder runs), and as the protocols.

    Example:
        >>> report = representation_report(model, (x_train, y_train), (x_test, y_test),
        ...                                label_fractions=(0.01,))
        >>> report["linear_probe"]["top1"], report["fine_tune"]["1%"]["top1"]
    """
    check_knn_arguments(k, temperature)
    validation.check_integer("batch_size", batch_size)
    _check_seed(seed)
    label_fractions = _check_fractions("label_fractions", label_fractions)
    linear_label_fractions = _check_fractions("linear_label_fractions", linear_label_fractions)
    linear_probe_options, fine_tune_options = _check_options(
        linear_probe_options, fine_tune_options
    )
    check_data(train, "train")
    check_data(test, "test")
    extractor = FeatureExtractor(encoder, input_scale)

    seconds = {}
    started = time.perf_counter()
    train_features, train_labels = extractor(train, batch_size, progress)
    test_features, test_labels = extractor(test, batch_size, progress)
    seconds["features"] = time.perf_counter() - started
    features = (train_features, train_labels, test_features, test_labels)
    common = {"num_classes": num_classes, "seed": seed, "progress": progress}
    started = time.perf_counter()
    knn_top1 = _knn_top1(features, k, temperature, num_classes)
    seconds["knn"] = time.perf_counter() - started
    started = time.perf_counter()
    probe = linear_probe_on_features(*features, **common, **linear_probe_options)
    seconds["linear_probe"] = time.perf_counter() - started
    few_label = _few_label_linear(
        features, linear_label_fractions, linear_probe_options, common, seconds
    )
    fine_tuned = _fine_tuned(
        (encoder, train, test), label_fractions, fine_tune_options, common, input_scale, seconds
    )
    report = {
        "knn": {"top1": knn_top1, "k": k, "temperature": float(temperature)},
        "linear_probe": {"top1": probe["top1"], "top5": probe["top5"]},
    }
    if linear_label_fractions:
        report["few_label_linear"] = few_label
    return {
        **report,
        "fine_tune": fine_tuned,
        "seconds": seconds,
        "feature_dims": int(train_features.shape[1]),
    }


def _check_fractions(name: str, fractions: Sequence[float]) -> tuple[float, ...]:
    """Checks a sequence of label fractions, each in (0, 1]; returns them as a tuple."""
    if isinstance(fractions, (int, float)):
        raise TypeError(
            f"Argument `{name}` must be a sequence of fractions such as (0.01, 0.1). "
            f"Received: {name}={fractions!r}"
        )
    return tuple(_check_fraction(fraction) for fraction in fractions)


def _check_options(linear_probe_options: dict | None, fine_tune_options: dict | None):
    """Copies the protocols' options; refuses those `representation_report` sets itself."""
    linear_probe_options = dict(linear_probe_options or {})
    fine_tune_options = dict(fine_tune_options or {})
    for refused in ("seed", "num_classes", "progress", "input_scale"):
        if refused in linear_probe_options or refused in fine_tune_options:
            raise ValueError(
                f"`{refused}` is an argument of `representation_report` itself; remove it from "
                f"the options. Received: linear_probe_options={linear_probe_options}, "
                f"fine_tune_options={fine_tune_options}"
            )
    return linear_probe_options, fine_tune_options


def _knn_top1(features: tuple, k: int, temperature: float, num_classes: int | None) -> float:
    """Top-1 accuracy of the weighted kNN: the training features vote for the test ones."""
    train_features, train_labels, test_features, test_labels = features
    predictions = knn_predict(
        train_features,
        train_labels,
        test_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
    )
    return float(np.mean(predictions == test_labels))


def _few_label_linear(
    features: tuple, fractions: tuple, linear_probe_options: dict, common: dict, seconds: dict
) -> dict:
    """The few-label linear probe for each fraction; adds its time to `seconds`.

    It shares `linear_probe_options` except `epochs` (see `default_few_label_epochs`).
    """
    options = {key: value for key, value in linear_probe_options.items() if key != "epochs"}
    results = {}
    for fraction in fractions:
        started = time.perf_counter()
        result = few_label_linear_probe_on_features(
            *features, label_fraction=fraction, **common, **options
        )
        name = fraction_name(fraction)
        results[name] = {key: result[key] for key in ("top1", "top5", "labelled_examples")}
        seconds[f"linear_{name}"] = time.perf_counter() - started
    return results


def _fine_tuned(
    splits: tuple,
    fractions: tuple,
    fine_tune_options: dict,
    common: dict,
    input_scale: float | None,
    seconds: dict,
) -> dict:
    """`fine_tune` of `(encoder, train, test)` for each fraction; adds its time to `seconds`."""
    results = {}
    for fraction in fractions:
        started = time.perf_counter()
        result = fine_tune(
            *splits,
            label_fraction=fraction,
            input_scale=input_scale,
            **common,
            **fine_tune_options,
        )
        name = fraction_name(fraction)
        results[name] = {key: result[key] for key in ("top1", "top5", "labelled_examples")}
        seconds[f"fine_tune_{name}"] = time.perf_counter() - started
    return results
