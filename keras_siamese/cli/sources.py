"""Where a run reads its images: a named dataset, a folder of image files, or TFRecord files.

- `--dataset=NAME`: Fashion-MNIST (local IDX files) or a prepared TFDS dataset, with
  `--train_split` and `--test_split`.
- `--data_dir=PATH`: a folder of PNG, JPEG, BMP or GIF files, one sub-folder per class or any
  layout unlabelled (`--labels`); `--eval_data_dir=PATH`, a labelled folder with the same class
  sub-folders, holds the queries of the kNN monitor and of `evaluate`.
- `--dataset=tfrecord:PATTERN`: TFRecord shards of `tf.train.Example`s with an encoded image
  (`--tfrecord_image_key`) and optionally an int64 label (`--tfrecord_label_key`).

`train` stores its flags in config.json, so `evaluate` and `export` rebuild the same `Source`
from it. The checks here (a folder that does not exist, a pattern that matches no file,
contradicting flags) need no TensorFlow: they answer before it is imported. Reading the data
is `keras_siamese.cli.data`'s part.
"""

from __future__ import annotations

import dataclasses
import glob
import os

from absl import app

NAMED = "named"
FOLDER = "folder"
TFRECORD = "tfrecord"
TFRECORD_PREFIX = "tfrecord:"
LABELS = ("auto", "inferred", "none")


@dataclasses.dataclass(frozen=True)
class Source:
    """The training images of a run and, for folders, the labelled folder of its queries.

    Attributes:
        kind: `NAMED`, `FOLDER` or `TFRECORD`.
        location: the dataset name, the folder (absolute), or the file pattern.
        eval_dir: the labelled query folder (absolute) of a `FOLDER` run, or None.
    """

    kind: str
    location: str
    eval_dir: str | None = None

    def describe(self) -> str:
        """The flag that names the images, as the user would type it."""
        if self.kind == FOLDER:
            return f"--data_dir={self.location}"
        if self.kind == TFRECORD:
            return f"--dataset={TFRECORD_PREFIX}{self.location}"
        return f"--dataset={self.location}"

    def title(self) -> str:
        """A short name for plot titles: the dataset, the folder's name or the pattern."""
        if self.kind == FOLDER:
            return os.path.basename(os.path.normpath(self.location))
        return self.location


def _existing_folder(flag: str, path: str) -> str:
    absolute = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(absolute):
        what = "is a file" if os.path.isfile(absolute) else "does not exist"
        raise app.UsageError(
            f"--{flag} must be an existing folder of images, but {absolute} {what}. "
            f"Received: --{flag}={path}"
        )
    return absolute


def _check_pattern(dataset: str) -> str:
    pattern = dataset[len(TFRECORD_PREFIX) :].strip()
    if not pattern:
        raise app.UsageError(
            "--dataset=tfrecord:PATTERN needs a file pattern after 'tfrecord:', e.g. "
            f"--dataset=tfrecord:data/train-*.tfrecord. Received: --dataset={dataset}"
        )
    if "://" in pattern:  # gs://, s3://, ...: only TensorFlow's file system can list it.
        return pattern
    pattern = os.path.abspath(os.path.expanduser(pattern))
    if not [path for path in glob.glob(pattern) if os.path.isfile(path)]:
        raise app.UsageError(
            f"--dataset=tfrecord:{pattern} matches no file. Received: --dataset={dataset}"
        )
    return pattern


def from_config(config: dict, dataset_given: bool = False) -> Source:
    """The `Source` of `train`'s flags (or of a run's config.json), checked without TensorFlow.

    Args:
        config: the flag values: `dataset`, `data_dir`, `eval_data_dir`, `labels`,
            `tfrecord_label_key` (missing keys, as in the config of an older run, count as
            unset).
        dataset_given: whether `--dataset` was on the command line (it then contradicts
            `--data_dir`).

    Returns:
        The checked `Source`.

    Raises:
        absl.app.UsageError: for a folder that does not exist, a TFRecord pattern matching no
            file, `--data_dir` with `--dataset`, or `--eval_data_dir`/`--labels` without
            `--data_dir`.

    Example:
        >>> from_config({"dataset": "fashion_mnist", "data_dir": ""}).describe()
        '--dataset=fashion_mnist'
    """
    data_dir = config.get("data_dir") or ""
    eval_data_dir = config.get("eval_data_dir") or ""
    dataset = config.get("dataset") or ""
    if data_dir:
        if dataset_given:
            raise app.UsageError(
                "--data_dir and --dataset both name the training images: pass one of them. "
                f"Received: --data_dir={data_dir}, --dataset={dataset}"
            )
        location = _existing_folder("data_dir", data_dir)
        eval_dir = _existing_folder("eval_data_dir", eval_data_dir) if eval_data_dir else None
        if eval_dir == location:
            raise app.UsageError(
                "--eval_data_dir must be another folder than --data_dir: its images are the "
                "queries classified against the training images. "
                f"Received: --eval_data_dir={eval_data_dir}"
            )
        return Source(FOLDER, location, eval_dir)
    if eval_data_dir:
        raise app.UsageError(
            "--eval_data_dir holds the queries of a --data_dir run; named datasets use "
            f"--test_split. Received: --eval_data_dir={eval_data_dir} with --dataset={dataset}"
        )
    if config.get("labels", "auto") != "auto":
        raise app.UsageError(
            "--labels says how to read the folder of --data_dir; pass --data_dir too. "
            f"Received: --labels={config['labels']}"
        )
    if dataset.startswith(TFRECORD_PREFIX):
        return Source(TFRECORD, _check_pattern(dataset))
    if config.get("tfrecord_label_key"):
        raise app.UsageError(
            "--tfrecord_label_key names the label feature of --dataset=tfrecord:PATTERN. "
            f"Received: --tfrecord_label_key={config['tfrecord_label_key']} with "
            f"--dataset={dataset}"
        )
    return Source(NAMED, dataset)


def from_run(config: dict, eval_data_dir: str = "") -> Source:
    """The `Source` of a trained run (its config.json), with `evaluate`'s `--eval_data_dir`.

    A run stores its source with absolute paths under `resolved`, so `evaluate` and `export`
    find the folders from any working directory; older runs without it are read from their
    flags.

    Raises:
        absl.app.UsageError: if a folder of the run, or `eval_data_dir`, no longer exists.
    """
    stored = config.get("resolved", {}).get("source")
    if stored is None:
        source = from_config(config)
    else:
        source = Source(**stored)
        if source.kind == FOLDER:
            _existing_folder("data_dir", source.location)
            if source.eval_dir is not None:
                _existing_folder("eval_data_dir", source.eval_dir)
    if eval_data_dir:
        if source.kind != FOLDER:
            raise app.UsageError(
                "--eval_data_dir holds the queries of a run trained on a folder (--data_dir); "
                f"this run read {source.describe()}. Received: --eval_data_dir={eval_data_dir}"
            )
        source = dataclasses.replace(
            source, eval_dir=_existing_folder("eval_data_dir", eval_data_dir)
        )
    return source
