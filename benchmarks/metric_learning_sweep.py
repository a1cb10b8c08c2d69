"""Sweeps the Siamese example's hyperparameters on one split, from one SimCLR pretraining.

Loads `examples/siamese_fashion_mnist.py` as a module (its flags, recipes, `pretrain`,
`train` and `evaluate`), pretrains once (or reuses the example's kept encoder), then trains
each variant (a JSON object: `loss` and the example's flags to change) on the seen classes
and appends one JSON line per variant to `--output` (after a raw-pixel line measured the same
way; the file is rewritten whole each time): ROC AUC, recall@1, mAP@R, R-precision,
NMI on the unseen classes and the training seconds. The recipes' measured values came from
these lines (benchmarks/results/metric_learning_sweep.jsonl); the table of record is
benchmarks/metric_learning.py's, which runs the example itself.

    python benchmarks/metric_learning_sweep.py 7,8,9 \\
        '[{"loss": "triplet", "learning_rate": 0.001, "embedding_dim": 0, "seed": 1}]' out.jsonl
"""

import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "siamese_fashion_mnist.py")

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese import atomic_files  # noqa: E402


def load_example():
    spec = importlib.util.spec_from_file_location("siamese_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_data(unseen_classes):
    """The example's data: seen classes of the train split (relabelled), unseen of the test."""
    seen_classes = [label for label in range(10) if label not in unseen_classes]
    load = ks.datasets.load_arrays
    seen, _ = ks.sampling.split_classes(load("fashion_mnist", "train"), seen_classes)
    _, unseen = ks.sampling.split_classes(load("fashion_mnist", "test"), seen_classes)
    order = np.random.default_rng(0).permutation(len(seen[1]))
    return (seen[0][order], np.searchsorted(seen_classes, seen[1][order])), unseen


KEYS = {"roc_auc": "auc", "recall@1": "r1", "map@r": "mapr", "r_precision": "rp", "nmi": "nmi"}


def append_line(output: str, row: dict) -> None:
    """Adds `row` to the JSON lines of `output`, rewriting the file whole (temp, rename)."""
    before = open(output).read() if os.path.isfile(output) else ""
    with atomic_files.atomic_write(output) as file:
        file.write(before + json.dumps(row) + "\n")
    print("ROW", json.dumps(row), flush=True)


def main(split: str, variants: list[dict], output: str) -> None:
    example, values = load_example(), flags.FLAGS
    model_dir = os.path.join("runs", "metric_learning_sweep", split.replace(",", ""))
    values(["sweep", f"--unseen_classes={split}", f"--model_dir={model_dir}"])
    seen, unseen = split_data(sorted(int(value) for value in split.split(",")))
    pairs = ks.sampling.make_pairs(unseen, 0.5, seed=1).batch(500).cache()
    pixels = ks.evaluation.raw_pixels(example.IMAGE_SHAPE)  # the baseline, measured alike
    results, _ = example.evaluate(pixels, pairs, unseen, distance="cosine")
    append_line(
        output, {"loss": "raw pixels", **{k: round(results[n], 4) for n, k in KEYS.items()}}
    )
    encoder, pretrain_seconds = example.pretrain(seen)
    for variant in variants:
        changes = {name: value for name, value in variant.items() if name != "loss"}
        for name, value in changes.items():
            values[name].value = value
        started = time.perf_counter()
        model = example.train(variant["loss"], seen, encoder)
        seconds = time.perf_counter() - started
        results, _ = example.evaluate(model, pairs, unseen)
        row = {**variant, **{short: round(results[key], 4) for key, short in KEYS.items()}}
        append_line(output, {**row, "sec": round(seconds), "pre": round(pretrain_seconds)})
        for name in changes:
            values[name].value = values[name].default


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
