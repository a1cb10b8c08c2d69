"""`evaluate`: the evaluation protocols on a trained run, written to DIR/eval.json, and plots.

The encoder's features of the training split (the labelled memory) and of the test split are
computed once; the weighted kNN classifier (`keras_siamese.evaluation.knn_predict`), the
linear probe (`linear_probe_on_features`) and leave-one-out retrieval on the test split
(`retrieval_metrics`: recall@k, mAP@R) all run on them. Pictures go to DIR/plots/
(training curves, retrieval grid, t-SNE map) and the Embedding Projector files to DIR/logs/.
Progress (the features of each set, the probe's epochs) is a bar on a terminal and a line per
10% in a log file or a pipe (`progress_lines.Progress`).

A run on a named dataset is evaluated on its --train_split (memory) and --test_split
(queries); a run on a folder on the class sub-folders of its --data_dir (memory) and of
--eval_data_dir (queries, the run's own unless given here), matched by class name.
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

import keras_siamese as ks
from keras_siamese.cli import flag_checks, progress_lines, run_dir, sources

USAGE = "evaluate --model_dir=DIR [--eval_data_dir=DIR] [flags]"
SUMMARY = "Evaluate a run (kNN, linear probe, retrieval); write eval.json and plots."


def define_flags(values: flags.FlagValues) -> None:
    """Defines the flags of `evaluate` in `values`."""
    define = {"flag_values": values}
    flags.DEFINE_string("model_dir", "", "Run directory written by `train` (required).", **define)
    flags.DEFINE_string(
        "eval_data_dir",
        "",
        "For a run on --data_dir: the labelled folder of queries, with the class sub-folders "
        "of the training folder (empty: the run's --eval_data_dir).",
        **define,
    )
    flags.DEFINE_integer(
        "memory_examples",
        0,
        "Training examples used as the labelled memory / probe training "
        "set (0: the whole train split; folders: spread over all classes).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer(
        "test_examples",
        0,
        "Test examples evaluated (0: the whole test split; folders: spread over all classes).",
        lower_bound=0,
        **define,
    )
    flags.DEFINE_integer("knn_k", 200, "Neighbours of the kNN classifier.", lower_bound=1, **define)
    flags.DEFINE_float(
        "knn_temperature", 0.1, "Temperature of the kNN vote weights.", lower_bound=1e-6, **define
    )
    flags.DEFINE_bool("linear_probe", True, "Train and test a linear probe.", **define)
    flags.DEFINE_integer(
        "linear_probe_epochs", 50, "Epochs of the linear probe.", lower_bound=1, **define
    )
    flags.DEFINE_bool(
        "retrieval", True, "Leave-one-out retrieval on the test split (recall@k, mAP@R).", **define
    )
    flags.DEFINE_integer("batch_size", 256, "Images per forward pass.", lower_bound=1, **define)
    flags.DEFINE_bool("plots", True, "Write the plots and the projector files.", **define)
    flags.DEFINE_integer(
        "plot_points",
        3000,
        "Test examples in the t-SNE map and the projector.",
        lower_bound=8,
        **define,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the probe and the t-SNE map.", lower_bound=0, **define)
    flags.DEFINE_bool(
        "progress",
        True,
        "Show progress: a bar on a terminal, a line per 10% in a log file or a pipe.",
        **define,
    )


def _plain(value):
    """A numpy scalar as the Python int or float JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


def _gather_images(dataset, indices: np.ndarray) -> dict[int, np.ndarray]:
    """Returns `{index: image}` for the given positions of an unbatched (image, label) dataset."""
    import tensorflow as tf

    wanted = tf.constant(np.unique(indices), tf.int64)
    picked = dataset.enumerate().filter(lambda index, example: tf.reduce_any(index == wanted))
    return {int(index): example[0] for index, example in picked.as_numpy_iterator()}


def _one_query_per_class(labels: np.ndarray, count: int) -> np.ndarray:
    """Positions of `count` queries, the first example of each class first."""
    _, first = np.unique(labels, return_index=True)
    rest = np.setdiff1d(np.arange(len(labels)), first)
    return np.concatenate([np.sort(first), rest])[:count]


def _retrieval_grid_data(
    memory, memory_features, memory_labels, test_images, test_features, test_labels, distance
):
    """8 test queries (one per class first) and their 8 nearest memory neighbours."""
    queries = _one_query_per_class(test_labels, 8)
    neighbours = ks.evaluation.nearest_neighbors(
        test_features[queries], memory_features, k=min(8, len(memory_features)), distance=distance
    )
    images = _gather_images(memory, neighbours.ravel())
    neighbour_images = np.stack([[images[int(index)] for index in row] for row in neighbours])
    return test_images[queries], test_labels[queries], neighbour_images, memory_labels[neighbours]


def _retrieval(test_features, test_labels, distance: str) -> dict | None:
    """Leave-one-out retrieval on the test split (None with too few queries)."""
    retrieval_ks = tuple(k for k in (1, 5, 10) if k < len(test_labels))
    if not retrieval_ks:
        return None
    retrieval = ks.evaluation.retrieval_metrics(
        test_features,
        test_labels,
        test_features,
        test_labels,
        ks=retrieval_ks,
        distance=distance,
        exclude_self=True,
    )
    return {**{name: _plain(value) for name, value in retrieval.items()}, "distance": distance}


def _features(model, dataset, name: str, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """`(features, labels)` of an unbatched dataset, its progress called `name`."""
    count = int(dataset.cardinality())  # examples: the dataset is unbatched
    total = count if count >= 0 else None
    progress = progress_lines.Progress(total, name, options["progress"])
    try:
        return ks.evaluation.extract_features(
            model, dataset, batch_size=options["batch_size"], progress=progress
        )
    finally:
        progress.close()


def _linear_probe(features, options: dict, num_classes: int) -> dict:
    """The linear probe on `(memory_features, memory_labels, test_features, test_labels)`."""
    epochs = options["linear_probe_epochs"]
    progress = progress_lines.Progress(epochs, "linear probe", options["progress"], unit="epoch")
    try:
        probe = ks.evaluation.linear_probe_on_features(
            *features,
            epochs=epochs,
            num_classes=num_classes,
            seed=options["seed"],
            progress=progress,
        )
    finally:
        progress.close()
    results = {name: _plain(value) for name, value in probe.items() if name != "classifier"}
    return {**results, "epochs": options["linear_probe_epochs"]}


def _plots(model_dir, title, memory, features, test, options, class_names, distance) -> list:
    """The training curves, retrieval grid, t-SNE map and projector files; their paths."""
    from keras_siamese import plots
    from keras_siamese.cli import data

    memory_features, memory_labels, test_features, test_labels = features
    plots_dir = run_dir.path(model_dir, run_dir.PLOTS)
    points = min(options["plot_points"], len(test_labels))
    test_images, _ = data.to_arrays(test.take(points))
    test_features, test_labels = test_features[:points], test_labels[:points]
    history = run_dir.path(model_dir, run_dir.HISTORY)
    written = [plots.write_curves(history, run_dir.path(model_dir, run_dir.CURVES), title=title)]
    grid = _retrieval_grid_data(
        memory, memory_features, memory_labels, test_images, test_features, test_labels, distance
    )
    grid_path = run_dir.path(plots_dir, "retrieval_grid.png")
    written.append(plots.retrieval_grid(*grid, grid_path, class_names=class_names))
    if points >= 5:
        map_path = run_dir.path(plots_dir, "embedding_map.png")
        written.append(
            plots.embedding_map(
                test_features,
                test_labels,
                map_path,
                class_names=class_names,
                max_points=points,
                seed=options["seed"],
            )
        )
    logs = run_dir.path(model_dir, run_dir.LOGS)
    written.append(
        plots.projector_files(
            test_features, test_labels, test_images, logs, class_names=class_names
        )
    )
    return [path for path in written if path]


def _knn(features, options: dict, num_classes: int) -> dict:
    memory_features, memory_labels, test_features, test_labels = features
    predictions = ks.evaluation.knn_predict(
        memory_features,
        memory_labels,
        test_features,
        k=options["knn_k"],
        temperature=options["knn_temperature"],
        num_classes=num_classes,
    )
    top1 = float(np.mean(predictions == test_labels))
    return {"top1": top1, "k": options["knn_k"], "temperature": options["knn_temperature"]}


def _read_run(options: dict):
    """The run's config.json and `Source`, refusing a run without labels."""
    model_dir = run_dir.require_model_dir(options["model_dir"])
    flag_checks.positive("knn_temperature", options["knn_temperature"])
    config = run_dir.read_config(model_dir)
    source = sources.from_run(config, options["eval_data_dir"])
    if source.kind == sources.NAMED and config["resolved"].get("num_classes") is None:
        raise app.UsageError(
            f"Dataset {config['dataset']!r} of the run has no class labels, which kNN, the "
            f"linear probe and retrieval all need. Received: --model_dir={model_dir}"
        )
    return model_dir, config, source


def run(values: flags.FlagValues) -> int:
    """Runs `evaluate` with parsed flags; returns the exit code."""
    options = {name: values[name].value for name in values}
    model_dir, config, source = _read_run(options)
    from keras_siamese.cli import source_data

    memory, test, class_names = source_data.labelled_sets(
        source,
        config,
        config["resolved"]["image_shape"],
        options["memory_examples"],
        options["test_examples"],
    )
    model = run_dir.load_model(model_dir)
    started = time.perf_counter()
    memory_features, memory_labels = _features(model, memory, "memory features", options)
    test_features, test_labels = _features(model, test, "test features", options)
    features = (memory_features, memory_labels, test_features, test_labels)
    results = {
        "method": config["method"],
        "data": source.describe(),
        "queries": source.eval_dir or config["test_split"],
        "memory_examples": len(memory_labels),
        "test_examples": len(test_labels),
        "knn": _knn(features, options, len(class_names)),
    }
    print(f"kNN top-1 (k={options['knn_k']}): {results['knn']['top1']:.4f}")
    distance = getattr(model, "distance", "cosine")  # A SiameseNetwork's own distance.
    retrieval = _retrieval(test_features, test_labels, distance) if options["retrieval"] else None
    if retrieval is not None:
        results["retrieval"] = retrieval
        print(f"Retrieval (leave-one-out on the test split): {json.dumps(retrieval)}")
    if options["linear_probe"]:
        results["linear_probe"] = _linear_probe(features, options, len(class_names))
        print(f"Linear probe: {json.dumps(results['linear_probe'])}")
    if options["plots"]:
        title = f"{config['method']} on {source.title()}"
        results["plots"] = _plots(
            model_dir, title, memory, features, test, options, class_names, distance
        )
        print("Plots and projector files:\n  " + "\n  ".join(results["plots"]))
    results["seconds"] = round(time.perf_counter() - started, 1)
    run_dir.write_json(run_dir.path(model_dir, run_dir.EVAL), results)
    print(f"Wrote {run_dir.path(model_dir, run_dir.EVAL)}")
    return 0
