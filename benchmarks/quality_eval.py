"""The protocols `quality.py` measures every network with, and its kNN curve during training.

`report` runs the frozen-feature protocols on one feature pass (weighted kNN, the linear
probe, the 1%/10%-label linear probes, scikit-learn's logistic regression as a cross-check)
and SimCLR's fine-tuning protocol; `KnnCurve` measures kNN accuracy on a subset after each
chunk of training steps. `data` is `quality.load_data`'s dictionary: `train`, `test`,
`curve_memory`, `curve_queries` as `(images, labels)`. Benchmark code, imported by
`quality.py` only.
"""

import json
import time

import keras
import numpy as np

import keras_siamese as ks
from keras_siamese import evaluation

IMAGE_SHAPE = (28, 28, 1)
LABEL_FRACTIONS = (0.01, 0.1)


def embedding(encoder):
    """[0, 255] images -> the encoder's representation (what the export serves)."""
    inputs = keras.Input(IMAGE_SHAPE, name="images")
    return keras.Model(inputs, encoder(keras.layers.Rescaling(1 / 255)(inputs)))


def pixels():
    """The raw-pixel baseline: [0, 255] images -> their 784 values in [0, 1]."""
    return keras.Sequential(
        [keras.Input(IMAGE_SHAPE), keras.layers.Rescaling(1 / 255), keras.layers.Flatten()],
        name="pixels",
    )


class KnnCurve(keras.callbacks.Callback):
    """kNN accuracy of the representation on a subset after each chunk of steps."""

    def __init__(self, network, data, steps_per_chunk, images_per_step):
        super().__init__()
        self.network, self.points, self.eval_seconds = network, [], 0.0
        self.chunk_seconds = []  # training time of each chunk (the first one traces)
        self.epochs_per_chunk = steps_per_chunk * images_per_step / len(data["train"][0])
        self.extractor = evaluation.FeatureExtractor(network)
        self.memory, self.queries = data["curve_memory"], data["curve_queries"]

    def measure(self, epoch):
        started = time.perf_counter()
        memory = self.extractor(self.memory, progress=False)
        queries = self.extractor(self.queries, progress=False)
        predictions = evaluation.knn_predict(*memory, queries[0])
        self.eval_seconds += time.perf_counter() - started
        self.points.append((round(epoch, 3), float(np.mean(predictions == queries[1]))))

    def on_epoch_begin(self, epoch, logs=None):
        self.chunk_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.chunk_seconds.append(time.perf_counter() - self.chunk_started)
        self.measure((epoch + 1) * self.epochs_per_chunk)


def frozen_protocols(features, budget, seed):
    """kNN, the linear probe and the few-label linear probes on `(train, test)` features."""
    (train_x, train_y), (test_x, test_y) = features
    predictions = evaluation.knn_predict(train_x, train_y, test_x, k=200, temperature=0.1)
    probe = evaluation.linear_probe_on_features(
        train_x, train_y, test_x, test_y, epochs=budget["probe_epochs"], seed=seed
    )
    result = {
        "knn": {"top1": float(np.mean(predictions == test_y)), "k": 200, "temperature": 0.1},
        "linear_probe": {"top1": probe["top1"], "top5": probe["top5"]},
        "few_label_linear": {},
        "fine_tune": {},
        "feature_dims": int(train_x.shape[1]),
    }
    for fraction in LABEL_FRACTIONS:
        few = evaluation.few_label_linear_probe_on_features(
            train_x, train_y, test_x, test_y, label_fraction=fraction, seed=seed
        )
        key = evaluation.report.fraction_name(fraction)
        result["few_label_linear"][key] = {
            k: few[k] for k in ("top1", "top5", "labelled_examples", "epochs")
        }
    return result


def report(network, label, data, budget, seed, fine_tune=True):
    """Every protocol on one network; the frozen-feature ones share one feature pass."""
    print(f"\n== evaluating {label}", flush=True)
    ks.distribute.set_mixed_precision("none")
    started = time.perf_counter()
    extractor = evaluation.FeatureExtractor(network)
    features = (
        extractor(data["train"], progress=False),
        extractor(data["test"], progress=False),
    )
    seconds = {"features": time.perf_counter() - started}
    result = frozen_protocols(features, budget, seed)
    seconds["frozen_protocols"] = time.perf_counter() - started - seconds["features"]
    result["sklearn"] = sklearn_probe(*features, budget["sklearn_iterations"])
    for fraction in LABEL_FRACTIONS if fine_tune else ():
        tuning_started = time.perf_counter()
        tuned = evaluation.fine_tune(
            network,
            data["train"],
            data["test"],
            label_fraction=fraction,
            epochs=budget["fine_tune_epochs"][fraction],
            seed=seed,
            progress=False,
        )
        key = evaluation.report.fraction_name(fraction)
        result["fine_tune"][key] = {k: v for k, v in tuned.items() if k != "model"}
        seconds[f"fine_tune_{key}"] = time.perf_counter() - tuning_started
    result["seconds"] = seconds
    result["eval_seconds"] = time.perf_counter() - started
    print(json.dumps(result), flush=True)
    return result


def sklearn_probe(train, test, iterations):
    """Cross-check: scikit-learn's L-BFGS logistic regression on the standardised features.

    C=0.1 (as the issue's pixel baseline), at most `iterations` L-BFGS iterations.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    (train_x, train_y), (test_x, test_y) = train, test
    started = time.perf_counter()
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(C=0.1, max_iter=iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(scaler.transform(train_x), train_y)
    return {
        "top1": float(classifier.score(scaler.transform(test_x), test_y)),
        "iterations": int(classifier.n_iter_.max()),
        "seconds": time.perf_counter() - started,
    }
