"""Reading a run's images wherever they are: a named dataset, a folder or TFRecord files.

`keras_siamese.cli.sources` says where (and checks it without TensorFlow); this module reads
it for the commands: `probe_source` before training, `training_data`, `labelled_sets` (kNN
monitor, `evaluate`), `gallery_images` and `calibration_examples` (`export`). Named datasets
go through `keras_siamese.cli.data`; folders through `datasets.from_directory`, TFRecords
through `datasets.from_tfrecords`. Every failure becomes one `absl.app.UsageError` naming the
flag at fault (`--data_dir=PATH: ...`), raised before anything is written.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf
from absl import app

from keras_siamese import datasets
from keras_siamese.cli import data, sources
from keras_siamese.datasets import image_headers


def probe_source(source: sources.Source, config: dict) -> data.DatasetInfo:
    """The `DatasetInfo` of a run's training images, read before training.

    For a folder: the files' common size (None if they differ), 1 channel if every file is
    grayscale, 4 if any has an alpha channel, else 3, and the classes of `--labels`. For
    TFRecords: the first record's shape, and the records counted (labels read, images not
    decoded).

    Raises:
        absl.app.UsageError: naming the flag and the file at fault.
    """
    if source.kind == sources.NAMED:
        return data.probe(source.location, config["train_split"])
    if source.kind == sources.FOLDER:
        return _probe_folder(source, config)
    return _probe_tfrecords(source, config)


def training_data(
    source: sources.Source, config: dict, image_shape, supervised: bool
) -> tf.data.Dataset:
    """The unbatched training images (`(image, label)` when `supervised`) at `image_shape`.

    Named datasets keep their first `--train_examples` and are shuffled by the method's
    batches. Folders reshuffle all their files every epoch, TFRecords their shards and records
    (`--shuffle_buffer`); an epoch is `resolved["train_examples"]` of them (a new random
    subset each epoch with `--train_examples`), so Keras knows its length even where files
    are skipped or records were never counted by TensorFlow.
    """
    limit = config["train_examples"]
    if source.kind == sources.NAMED:
        return data.load(source.location, config["train_split"], image_shape, supervised, limit)
    if source.kind == sources.FOLDER:
        labels = folder_labels(source.location, config["labels"]) if supervised else None
        dataset = _read_folder(
            source.location, image_shape, config, "data_dir", labels=labels, shuffle=True
        )
    else:
        dataset = _read_tfrecords(source, config, image_shape, supervised, shuffle=True)
    return dataset.repeat().take(config["resolved"]["train_examples"])


def labelled_sets(
    source: sources.Source,
    config: dict,
    image_shape,
    memory_limit: int = 0,
    query_limit: int = 0,
    ordered: bool = True,
) -> tuple[tf.data.Dataset, tf.data.Dataset, list[str]]:
    """The labelled memory (training images) and queries of kNN, probes and retrieval.

    Named datasets: the first examples of `--train_split` and `--test_split`. Folders: the
    training folder's class sub-folders and `--eval_data_dir`, read with the training
    folder's class names (so indices agree, and a folder with other classes is refused).
    `ordered=True` gives the same examples in the same order at every pass (a limit keeps
    examples spread evenly over the sorted files, so every class keeps its share; all files
    are read); `ordered=False` (the training monitor) draws a new random subset at each pass
    and reads only it.

    Returns:
        `(memory, queries, class_names)`: unbatched `(uint8 image, int64 label)` datasets.

    Raises:
        absl.app.UsageError: for a run without labelled queries or a folder whose classes
            differ.
    """
    if source.kind == sources.NAMED:
        resolved = config["resolved"]
        if resolved.get("num_classes") is None:
            raise app.UsageError(
                f"{source.describe()} has no class labels, which kNN, the linear probe and "
                f"retrieval all need. Received: {source.describe()}"
            )
        memory = data.load(source.location, config["train_split"], image_shape, True, memory_limit)
        queries = data.load(source.location, config["test_split"], image_shape, True, query_limit)
        names = resolved.get("class_names") or [str(i) for i in range(resolved["num_classes"])]
        return memory, queries, list(names)
    if source.kind == sources.TFRECORD:
        raise app.UsageError(
            "Evaluation needs labelled queries: a named dataset's --test_split or a folder "
            f"run's --eval_data_dir; this run read {source.describe()}, which has neither. "
            "Write the queries as a folder and train with --data_dir, or evaluate with "
            f"keras_siamese.evaluation. Received: {source.describe()}"
        )
    if source.eval_dir is None:
        raise app.UsageError(
            "Evaluation needs labelled queries: a run on --data_dir reads them from "
            f"--eval_data_dir (a folder with the same class sub-folders); this run read "
            f"{source.describe()} without one. Received: --eval_data_dir=''"
        )
    memory = _read_folder(
        source.location, image_shape, config, "data_dir", labels="inferred", shuffle=not ordered
    )
    queries = _read_folder(
        source.eval_dir,
        image_shape,
        config,
        "eval_data_dir",
        labels="inferred",
        shuffle=not ordered,
        class_names=memory.class_names,
    )
    class_names = list(memory.class_names)
    memory, queries = (
        _spread(dataset, limit) if ordered else (dataset.take(limit) if limit else dataset)
        for dataset, limit in ((memory, memory_limit), (queries, query_limit))
    )
    return memory, queries, class_names


def gallery_images(
    source: sources.Source, config: dict, image_shape, gallery_dir: str = "", limit: int = 0
) -> tuple[tf.data.Dataset, np.ndarray]:
    """The images of a `search` gallery, with their ids.

    A folder (`gallery_dir`, else the training folder of a `--data_dir` run) gives every image
    at any depth, ids being their paths relative to the folder; other sources give their first
    training examples, ids being their positions (TFRecords: records counted shard after
    shard, in sorted file-name order).

    Returns:
        `(dataset, ids)`: `(uint8 image, int64 position)` pairs in the order of `ids`.
    """
    if gallery_dir or source.kind == sources.FOLDER:
        folder, flag = (source.location, "data_dir")
        if gallery_dir:
            folder, flag = gallery_dir, "gallery_dir"
        folder = os.path.abspath(folder)
        images = _read_folder(folder, image_shape, config, flag, labels=None, shuffle=False)
        ids = np.asarray([os.path.relpath(path, folder) for path in images.file_paths])
    elif source.kind == sources.TFRECORD:
        # One shard after the other (a read of the pattern interleaves them), so positions
        # count records in sorted shard order.
        shards = [
            _read_tfrecords(sources.Source(sources.TFRECORD, file), config, image_shape, False)
            for file in _tfrecord_files(source)
            if any(True for _ in tf.data.TFRecordDataset(file).take(1))
        ]
        images = functools.reduce(tf.data.Dataset.concatenate, shards)
        ids = None
    else:
        images = data.load(source.location, config["train_split"], image_shape, False, limit)
        ids = None
    if limit:
        images = images.take(limit)
    if ids is None:
        ids = np.arange(data.count(images))
    pairs = images.enumerate().map(lambda position, image: (image, position))
    return pairs, ids[:limit] if limit else ids


def calibration_examples(
    source: sources.Source, config: dict, image_shape, limit: int
) -> tf.data.Dataset:
    """`limit` labelled examples of the queries, for the pairs that calibrate `verify`."""
    if source.kind == sources.FOLDER and source.eval_dir is not None:
        examples = _read_folder(
            source.eval_dir, image_shape, config, "eval_data_dir", labels="inferred", shuffle=False
        )
        return _spread(examples, limit)
    if source.kind != sources.NAMED:
        raise app.UsageError(
            "--calibration_pairs draws labelled pairs from the run's queries "
            f"(--eval_data_dir); this run read {source.describe()} without them. "
            f"Received: --calibration_pairs={limit}"
        )
    return data.load(source.location, config["test_split"], image_shape, True, limit)


def folder_labels(path: str, choice: str) -> str | None:
    """`--labels` for `from_directory`: "inferred", None, or for "auto" what the folder shows.

    Auto reads the sub-folders as classes when there are at least two and no image lies
    directly in the folder.
    """
    if choice != "auto":
        return None if choice == "none" else "inferred"
    entries = [name for name in os.listdir(path) if not name.startswith(".")]
    folders = [name for name in entries if os.path.isdir(os.path.join(path, name))]
    loose = [name for name in entries if name.lower().endswith(image_headers.EXTENSIONS)]
    return "inferred" if len(folders) >= 2 and not loose else None


def max_pixels(config: dict) -> int | None:
    """`--max_pixels` of a flag dict or recorded run (0: no limit; runs recorded before the
    flag existed: the readers' default, 4096 x 4096)."""
    value = config.get("max_pixels", datasets.pixel_limit.DEFAULT_MAX_PIXELS)
    return value or None


def _read_folder(
    path: str,
    image_shape,
    config: dict,
    flag: str,
    labels: str | None,
    shuffle: bool,
    class_names=None,
) -> tf.data.Dataset:
    try:
        return datasets.from_directory(
            path,
            tuple(image_shape[:2]),
            image_shape[2],
            labels=labels,
            shuffle=shuffle,
            seed=config["seed"],
            on_error=config.get("on_error", "raise"),
            class_names=class_names,
            max_pixels=max_pixels(config),
        )
    except (ValueError, TypeError) as error:
        raise data.usage_error(error, f"--{flag}={path}") from error


def _spread(dataset: tf.data.Dataset, limit: int) -> tf.data.Dataset:
    """`limit` elements spread evenly over an ordered folder dataset (all of it if 0)."""
    total = len(dataset.file_paths)
    if not limit or limit >= total:
        return dataset
    keep = np.zeros(total, bool)
    keep[np.linspace(0, total - 1, limit).round().astype(int)] = True
    keep = tf.constant(keep)
    return (
        dataset.enumerate()
        .filter(lambda position, example: tf.gather(keep, position))
        .map(lambda position, example: example)
    )


def _probe_folder(source: sources.Source, config: dict) -> data.DatasetInfo:
    labels = folder_labels(source.location, config["labels"])
    try:
        files = datasets.list_image_files(
            source.location,
            labels=labels,
            on_error=config["on_error"],
            max_pixels=max_pixels(config),
        )
    except (ValueError, TypeError) as error:
        raise data.usage_error(error, source.describe()) from error
    sizes = {(header.height, header.width) for header in files.headers}
    stored = {header.channels for header in files.headers}
    channels = 1 if stored == {1} else 4 if stored & {2, 4} else 3
    height, width = sizes.pop() if len(sizes) == 1 else (None, None)
    names = files.class_names
    return data.DatasetInfo(
        name=source.location,
        image_shape=(height, width, channels),
        num_classes=None if names is None else len(names),
        class_names=None if names is None else list(names),
        num_examples=len(files.file_paths),
    )


def _tfrecord_files(source: sources.Source) -> list[str]:
    files = sorted(set(tf.io.gfile.glob(source.location)))
    return [file for file in files if not tf.io.gfile.isdir(file)]


def _read_tfrecords(
    source: sources.Source, config: dict, image_shape, supervised: bool, shuffle: bool = False
) -> tf.data.Dataset:
    label_key = config.get("tfrecord_label_key") or None
    try:
        return datasets.from_tfrecords(
            source.location,
            None if image_shape is None else tuple(image_shape[:2]),
            image_key=config.get("tfrecord_image_key", "image"),
            label_key=label_key if supervised else None,
            channels=None if image_shape is None else image_shape[2],
            shuffle=shuffle,
            seed=config["seed"],
            on_error=config.get("on_error", "raise"),
            shuffle_buffer_size=config.get("shuffle_buffer", 1024),
            max_pixels=max_pixels(config),
        )
    except (ValueError, TypeError) as error:
        raise data.usage_error(error, source.describe()) from error


def _probe_tfrecords(source: sources.Source, config: dict) -> data.DatasetInfo:
    label_key = config["tfrecord_label_key"] or None
    images = _read_tfrecords(source, config, None, supervised=False, shuffle=False)
    records = tf.data.TFRecordDataset(_tfrecord_files(source))
    num_classes = None
    try:
        if label_key is None:
            total = data.count(records)
        else:
            spec = {label_key: tf.io.FixedLenFeature([], tf.int64)}
            labels = records.map(lambda record: tf.io.parse_single_example(record, spec)[label_key])
            total, top = labels.reduce(
                (np.int64(0), np.int64(-1)),
                lambda state, label: (state[0] + 1, tf.maximum(state[1], label)),
            )
            total, num_classes = int(total), int(top) + 1
    except tf.errors.OpError as error:
        raise app.UsageError(
            f"{source.describe()}: a record cannot be read ({error.message.splitlines()[0]})"
        ) from error
    if label_key is not None:
        _check_tfrecord_labels(source, label_key, total, num_classes)
    return data.DatasetInfo(
        name=source.location,
        image_shape=tuple(images.element_spec.shape),
        num_classes=num_classes,
        class_names=None if num_classes is None else [str(i) for i in range(num_classes)],
        num_examples=total,
    )


def _check_tfrecord_labels(source, label_key: str, total: int, num_classes: int) -> None:
    if total and num_classes < 2:
        raise app.UsageError(
            f"{source.describe()}: the labels of --tfrecord_label_key={label_key} must be class "
            f"indices 0, 1, ... of at least two classes; the largest is {num_classes - 1}. "
            f"Received: --tfrecord_label_key={label_key}"
        )
