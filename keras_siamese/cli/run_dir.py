"""The model directory of a command-line run: what `train` writes and `evaluate`/`export` read.

```
DIR/config.json        the resolved configuration (flags + what was derived from the data)
DIR/model.keras        the latest model, saved after every epoch and at the end
DIR/checkpoints/       step checkpoints (keras_siamese.checkpointing): the 2 newest complete
                       ones while training (every --checkpoint_every_steps/_minutes and on
                       SIGTERM/SIGINT), the final one once training has finished
DIR/history.csv        per-epoch metrics, one row per epoch (rewritten whole every epoch)
DIR/train_result.json  written once training has finished (the last epoch's metrics)
DIR/logs/              TensorBoard: train/ and validation/ events, Embedding Projector files
DIR/plots/             PNG figures (training_curves.png, written from history.csv)
DIR/eval.json          written by `evaluate`
```

Every file is written whole or not at all (`keras_siamese.atomic_files`: a temporary name,
flushed, renamed), so a kill at any moment leaves the previous complete file. Readers check
what they read: a damaged file gives one `error:` line naming it and what to do. Paths are
compared by meaning (resolved), and the run directory can be moved: nothing in it records
its own location.
"""

from __future__ import annotations

import json
import os
import zipfile

from absl import app

from keras_siamese import atomic_files

CONFIG = "config.json"
MODEL = "model.keras"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"  # Keras' BackupAndRestore of runs written before the step checkpoints
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
    with atomic_files.atomic_write(file_path) as file:
        json.dump(data, file, indent=2, default=str)
        file.write("\n")


def read_json(file_path: str) -> dict:
    """Reads a JSON object; a damaged file is a UsageError naming it."""
    try:
        with open(file_path, encoding="utf-8") as file:
            data = json.load(file)
    except (ValueError, UnicodeDecodeError) as error:
        raise app.UsageError(
            f"{file_path} is damaged (not JSON: {error}); it was not written by this version's "
            f"atomic writer. Delete it and re-run the command that writes it. "
            f"Received: {file_path}"
        ) from None
    if not isinstance(data, dict):
        raise app.UsageError(f"{file_path} is not a JSON object. Received: {type(data).__name__}")
    return data


def model_fault(model_path: str) -> str | None:
    """Why `model_path` is not a complete `.keras` file (None when it is one)."""
    if not os.path.isfile(model_path):
        return "it does not exist"
    try:
        with zipfile.ZipFile(model_path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f"not a complete .keras archive ({error})"
    if damaged is not None:
        return f"its member {damaged} is damaged"
    if not {"config.json", "model.weights.h5"} <= names:
        return "it lacks config.json or model.weights.h5"
    return None


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
    fault = model_fault(model_path)
    if fault is None:
        try:
            return keras.saving.load_model(model_path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            fault = f"it does not load ({str(error).splitlines()[0] if str(error) else error!r})"
    raise app.UsageError(
        f"{model_path} is damaged: {fault}. Re-run the same `train --model_dir={model_dir}` "
        f"command: it rewrites model.keras from the run's last checkpoint "
        f"({path(model_dir, CHECKPOINTS)}). Received: --model_dir={model_dir!r}"
    )


def read_history(model_dir: str) -> dict[str, list[float | None]]:
    """Reads `DIR/history.csv` as `{metric: per-epoch values}` (see `plots.read_history`)."""
    from keras_siamese import plots

    return plots.read_history(path(model_dir, HISTORY))
