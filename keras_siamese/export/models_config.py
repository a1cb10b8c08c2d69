"""`models.config` for TensorFlow Serving: one entry per exported model in a directory.

TensorFlow Serving serves several models from one `--model_config_file`, a text-format
`tensorflow.serving.ModelServerConfig`. `write_models_config` lists every model directory
of `models_dir` (a directory holding numeric version sub-directories with a `saved_model.pb`,
as `export_for_serving` writes) and writes that file, built with the `tensorflow-serving-api`
protos (see `keras_siamese.export.warmup` for installing them).
"""

from __future__ import annotations

import os
import posixpath

from keras_siamese import atomic_files
from keras_siamese.export import warmup

CONFIG_FILE = "models.config"


def _has_saved_model_version(directory: str) -> bool:
    for entry in os.scandir(directory):
        if entry.name.isdigit() and entry.is_dir():
            if os.path.isfile(os.path.join(entry.path, "saved_model.pb")):
                return True
    return False


def model_directories(models_dir: str) -> list[str]:
    """Names of the sub-directories of `models_dir` holding at least one SavedModel version."""
    return sorted(
        entry.name
        for entry in os.scandir(models_dir)
        if entry.is_dir()
        and not entry.name.startswith(".")
        and _has_saved_model_version(entry.path)
    )


def write_models_config(
    models_dir: str | os.PathLike,
    config_path: str | os.PathLike | None = None,
    base_path: str | None = None,
) -> str:
    """Writes a TensorFlow Serving `models.config` naming every exported model in `models_dir`.

    Each model directory `models_dir/<name>/` with at least one version `<name>/<n>/` holding
    a `saved_model.pb` becomes one entry: `name: "<name>"`, `base_path: "<base_path>/<name>"`,
    `model_platform: "tensorflow"` (TensorFlow Serving then serves its highest version).
    Directories without a version and hidden directories are not listed. The file is written
    atomically (temporary file, then rename), since TensorFlow Serving can poll it.

    Args:
        models_dir: the directory holding one export directory per model.
        config_path: where to write; `models_dir/models.config` by default.
        base_path: the path at which the server sees `models_dir` (for example `/models` when
            it is mounted there in the `tensorflow/serving` container); the absolute path of
            `models_dir` by default.

    Returns:
        The path of the written file.

    Raises:
        TypeError: if a path argument is not a path.
        ValueError: if `models_dir` is not a directory or holds no exported model.
        ImportError: if `tensorflow-serving-api` is not installed.

    Example:
        >>> export_for_serving(model, "/tmp/models/faces")
        >>> write_models_config("/tmp/models", base_path="/models")
        '/tmp/models/models.config'
    """
    for name, value in (("models_dir", models_dir), ("config_path", config_path)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(
                f"`{name}` must be a path (str or os.PathLike). Received: {name}={value!r}"
            )
    if base_path is not None and not isinstance(base_path, str):
        raise TypeError(f"`base_path` must be a str or None. Received: base_path={base_path!r}")
    models_dir = os.fspath(models_dir)
    if not os.path.isdir(models_dir):
        raise ValueError(
            "`models_dir` must be a directory of exported models. "
            f"Received: models_dir={models_dir!r}"
        )
    names = model_directories(models_dir)
    if not names:
        raise ValueError(
            "`models_dir` holds no exported model: expected sub-directories `<name>/<version>/` "
            f"with a saved_model.pb, as written by `export_for_serving`. "
            f"Received: models_dir={models_dir!r}"
        )
    _, _, model_server_config_pb2 = warmup.require_serving_api()
    from google.protobuf import text_format

    root = base_path if base_path is not None else os.path.abspath(models_dir)
    config = model_server_config_pb2.ModelServerConfig()
    for name in names:
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = posixpath.join(root, name)
        entry.model_platform = "tensorflow"

    config_path = (
        os.fspath(config_path) if config_path is not None else os.path.join(models_dir, CONFIG_FILE)
    )
    with atomic_files.atomic_write(config_path) as file:  # whole or absent, fsynced
        file.write(text_format.MessageToString(config))
    return config_path
