"""The model directory of a command-line run: what `train` writes and `evaluate`/`export` read.

```
DIR/config.json        the resolved configuration (flags + what was derived from the data)
DIR/model.keras        the latest model, saved after every epoch (ModelCheckpoint)
DIR/backup/            BackupAndRestore state while training; deleted when training ends
DIR/history.csv        per-epoch metrics (CSVLogger, appended to on resume)
DIR/train_result.json  written once training has finished
DIR/logs/              TensorBoard: train/ and validation/ events, Embedding Projector files
DIR/plots/             PNG figures (training_curves.png, written from history.csv)
DIR/eval.json          written by `evaluate`
```
"""

from __future__ import annotations

import json
import os

from absl import app

CONFIG = "config.json"
MODEL = "model.keras"
BACKUP = "backup"
HISTORY = "history.csv"
TRAIN_RESULT = "train_result.json"
LOGS = "logs"
PLOTS = "plots"
CURVES = os.path.join(PLOTS, "training_curves.png")
EVAL = "eval.json"


def path(model_dir: str, *names: str) -> str:
    """Returns `model_dir/names...`."""
    return os.path.join(model_dir, *names)


def write_json(file_path: str, data: dict) -> None:
    """Writes `data` as indented JSON, atomically (a reader never sees half a file)."""
    temporary = f"{file_path}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=str)
        file.write("\n")
    os.replace(temporary, file_path)


def read_json(file_path: str) -> dict:
    with open(file_path, encoding="utf-8") as file:
        return json.load(file)


def require_model_dir(model_dir: str) -> str:
    if not model_dir:
        raise app.UsageError(
            "--model_dir is required: the directory of the run (config.json, model.keras, "
            "logs/, plots/). Received: --model_dir=''"
        )
    return model_dir


def read_config(model_dir: str) -> dict:
    """Returns `DIR/config.json`, or raises UsageError when `DIR` holds no trained run."""
    config_path = path(require_model_dir(model_dir), CONFIG)
    if not os.path.isfile(config_path):
        raise app.UsageError(
            f"{config_path} does not exist: --model_dir must be a directory written by "
            f"`train --model_dir={model_dir}`. Received: --model_dir={model_dir!r}"
        )
    return read_json(config_path)


def load_model(model_dir: str):
    """Loads `DIR/model.keras` (our models reload without `custom_objects`)."""
    import keras

    # The package loads at the first public name (PEP 562), registering its classes.
    from keras_siamese import SimCLR  # noqa: F401

    model_path = path(model_dir, MODEL)
    if not os.path.isfile(model_path):
        raise app.UsageError(
            f"{model_path} does not exist: training has not finished a first epoch in "
            f"--model_dir. Run `train --model_dir={model_dir}` (it resumes). "
            f"Received: --model_dir={model_dir!r}"
        )
    return keras.saving.load_model(model_path)


def read_history(model_dir: str) -> dict[str, list[float | None]]:
    """Reads `DIR/history.csv` as `{metric: per-epoch values}` (see `plots.read_history`)."""
    from keras_siamese import plots

    return plots.read_history(path(model_dir, HISTORY))
