"""Training callbacks that watch the representation while a model trains.

Callbacks are not part of a saved `.keras` model (Keras never serialises them), so unlike
the layers, losses and models of this package they are not registered with
`keras.saving.register_keras_serializable` and have no `get_config`.
"""

from __future__ import annotations

import math
import os
import warnings

import keras

from keras_siamese import evaluation, validation


class KNNMonitor(keras.callbacks.Callback):
    """Logs the weighted kNN accuracy of the model being trained at the end of epochs.

    The training monitor of SimSiam (Chen & He, 2021) and lightly, after InstDisc
    (Wu et al., 2018): at the end of every `every`-th epoch (and always after the last one,
    read from `self.params["epochs"]`), the model being fit embeds `memory_data` and
    `query_data` with `self.model(images, training=False)` (the models of this package
    return their representation from `call`), and each query is classified by a vote of
    its `k` most similar memory examples weighted by `exp(similarity / temperature)` (see
    `keras_siamese.evaluation.knn_predict`). Memory features are extracted afresh at each
    evaluation, as the encoder has changed since the last one.

    The accuracy is written into the epoch `logs` under `log_name`, so it reaches `History`
    (`history.history["val_knn_accuracy"]`), the progress bar and every callback called
    after this one. Keras calls callbacks in list order with one shared `logs` dict, so
    **put `KNNMonitor` before `ModelCheckpoint`, `EarlyStopping`, `TensorBoard` or
    `CSVLogger`** in the `callbacks` list when they should see it (e.g.
    `ModelCheckpoint(monitor="val_knn_accuracy", mode="max")`). `History` and the progress
    bar are appended by Keras after all user callbacks and always see it. On epochs that are
    skipped the key is absent from `logs`.

    Args:
        memory_data: `(images, labels)` numpy arrays or a `tf.data.Dataset` of them
            (batched or not): the labelled bank, e.g. a subset of the training set.
        query_data: the same for the examples to classify, e.g. the test set.
        k: neighbours per query; clamped to the memory size.
        temperature: the weight temperature, > 0.
        every: evaluate every `every` epochs (plus the last epoch).
        batch_size: examples per forward pass when extracting features.
        log_name: the key written into `logs`.
        verbose: 0 silent, 1 prints one line per evaluation, 2 also shows feature
            extraction progress bars.
        input_scale: for a model that is not a keras_siamese model and does not start with
            a `Rescaling` layer: the factor the stored images are multiplied by before the
            model (`1 / 255` for an encoder taking [0, 1], `1.0` for a model taking them as
            stored); see `keras_siamese.evaluation.FeatureExtractor`. None otherwise.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `k < 1`, `temperature <= 0`, `every < 1`, `batch_size < 1`,
            `log_name` is empty or `verbose` is not 0, 1 or 2; at evaluation time, as
            `keras_siamese.evaluation.knn_accuracy` (e.g. a model output that is not rank 2).

    Example:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> points = (np.eye(2, dtype="float32"), np.array([0, 1]))
        >>> monitor = KNNMonitor(points, points, k=1, verbose=0, input_scale=1.0)
        >>> history = model.fit(points[0], points[0], epochs=1, callbacks=[monitor], verbose=0)
        >>> "val_knn_accuracy" in history.history
        True
    """

    def __init__(
        self,
        memory_data: evaluation.Data,
        query_data: evaluation.Data,
        k: int = 200,
        temperature: float = 0.1,
        every: int = 1,
        batch_size: int = 256,
        log_name: str = "val_knn_accuracy",
        verbose: int = 1,
        input_scale: float | None = None,
    ):
        evaluation.check_knn_arguments(k, temperature)
        validation.check_integer("batch_size", batch_size)
        evaluation.check_data(memory_data, "memory_data")
        evaluation.check_data(query_data, "query_data")
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"Argument `every` must be an int. Received: every={every!r}")
        if every < 1:
            raise ValueError(f"Argument `every` must be >= 1 (epochs). Received: every={every}")
        if not isinstance(log_name, str) or not log_name:
            raise ValueError(
                f"Argument `log_name` must be a non-empty string. Received: log_name={log_name!r}"
            )
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"Argument `verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
        super().__init__()
        self.memory_data = memory_data
        self.query_data = query_data
        self.k = k
        self.temperature = temperature
        self.every = every
        self.batch_size = batch_size
        self.log_name = log_name
        self.verbose = verbose
        self.input_scale = input_scale
        self._extractor = None

    def _should_evaluate(self, epoch: int) -> bool:
        is_last = epoch + 1 == (self.params or {}).get("epochs")
        return is_last or (epoch + 1) % self.every == 0

    def _feature_extractor(self):
        # One traced function per model: it follows the weights as they train, so it is
        # traced once for the whole fit instead of once per evaluation.
        if self._extractor is None or self._extractor.model is not self.model:
            self._extractor = evaluation.FeatureExtractor(self.model, self.input_scale)
        return self._extractor

    def evaluate(self) -> float:
        """Returns the kNN accuracy of `self.model` with its current weights.

        Called by `on_epoch_end`; call it directly for a reading outside `fit` (after
        `monitor.set_model(model)`).

        Returns:
            The top-1 accuracy on `query_data`, in [0, 1].
        """
        return evaluation.knn_accuracy(
            self._feature_extractor(),
            self.memory_data,
            self.query_data,
            k=self.k,
            temperature=self.temperature,
            batch_size=self.batch_size,
            num_classes=None,
            chunk_size=1024,
            progress=self.verbose >= 2,
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self._should_evaluate(epoch):
            return
        accuracy = self.evaluate()
        if logs is not None:
            logs[self.log_name] = accuracy
        if self.verbose:
            print(
                f"\nEpoch {epoch + 1}: {self.log_name} = {accuracy:.4f} "
                f"(k={self.k}, temperature={self.temperature})"
            )


class CollapseMonitor(keras.callbacks.Callback):
    """Warns, and optionally stops training, when the representation collapses.

    Chen & He (2021, section 4.1) watch the per-dimension std of the L2-normalised
    output times sqrt(d): about 1 when the outputs spread over the sphere, 0 when every
    image maps to the same vector (a collapsed solution whose loss is optimal and whose
    features are useless). Each keras_siamese model declares the metric that shows it in
    its `collapse_metric` attribute (`SimSiam`: `output_std`, `SimCLR`: `representation_std`),
    and the monitor watches that one unless `metric` says otherwise. When the logged value
    stays under `threshold` for `patience` consecutive epochs, this callback warns once
    (`UserWarning`, with the usual causes), records the epoch in `collapsed_epoch` and,
    with `stop_training=True`, stops `fit`.
    A value back over the threshold resets the count (and re-arms the warning).

    Args:
        threshold: the value under which an epoch counts as collapsed, > 0. Healthy
            SimSiam runs stay around 0.6-1 (dimension-dependent); 0.1 leaves a margin.
        patience: consecutive collapsed epochs before acting, >= 1.
        stop_training: also set `model.stop_training = True`.
        metric: the log key to watch; None watches the model's `collapse_metric`.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `threshold <= 0`, `patience < 1` or `metric` is empty.

    Example:
        >>> monitor = CollapseMonitor(threshold=0.1, patience=2, stop_training=True)
        >>> monitor.on_epoch_end(0, {"output_std": 0.02})
        >>> monitor.collapsed_epoch is None
        True
    """

    def __init__(
        self,
        threshold: float = 0.1,
        patience: int = 2,
        stop_training: bool = False,
        metric: str | None = None,
    ):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(
                f"Argument `threshold` must be a number. Received: threshold={threshold!r}"
            )
        if not threshold > 0:
            raise ValueError(f"Argument `threshold` must be > 0. Received: threshold={threshold}")
        if isinstance(patience, bool) or not isinstance(patience, int):
            raise TypeError(f"Argument `patience` must be an int. Received: patience={patience!r}")
        if patience < 1:
            raise ValueError(
                f"Argument `patience` must be >= 1 (epochs). Received: patience={patience}"
            )
        if not isinstance(stop_training, bool):
            raise TypeError(
                "Argument `stop_training` must be a bool. "
                f"Received: stop_training={stop_training!r}"
            )
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ValueError(
                "Argument `metric` must be a non-empty string (a key of the epoch logs) or "
                f"None. Received: metric={metric!r}"
            )
        super().__init__()
        self.threshold = float(threshold)
        self.patience = patience
        self.stop_training = stop_training
        self.metric = metric
        self.collapsed_epochs = 0
        self.collapsed_epoch = None
        self._warned_missing = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.collapsed_epochs = 0
        self.collapsed_epoch = None
        if self.metric is None:
            watched = getattr(self.model, "collapse_metric", None) if self.model else None
            if watched is None:
                raise ValueError(
                    "CollapseMonitor needs a metric to watch: the model declares no "
                    "`collapse_metric` (keras_siamese's self-supervised models do). Pass `metric=` "
                    "a key of the epoch logs. Received: metric=None for a model of type "
                    f"{type(self.model).__name__}"
                )
            self._watched_name = watched
        else:
            self._watched_name = self.metric

    def _watched(self, logs: dict) -> str | None:
        name = getattr(self, "_watched_name", None) or self.metric
        if name is None:
            return None
        if name not in logs:
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(
                    f"CollapseMonitor watches {name!r}, which is not in the epoch logs: "
                    f"{sorted(logs)}. Pass `metric=` one of the logged keys.",
                    stacklevel=2,
                )
            return None
        return name

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        name = self._watched(logs or {})
        if name is None:
            return
        value = float(logs[name])
        if math.isfinite(value) and value >= self.threshold:
            self.collapsed_epochs = 0
            return
        self.collapsed_epochs += 1
        if self.collapsed_epochs != self.patience:
            return
        self.collapsed_epoch = epoch
        action = " Training stops." if self.stop_training else ""
        warnings.warn(
            f"Epoch {epoch + 1}: the representation has collapsed: {name} = {value:.4f} has "
            f"stayed under {self.threshold} for {self.patience} epoch(s) (about 1 is healthy, "
            f"0 means every image gets the same output).{action} Usual causes and fixes: a "
            "learning rate too high for the batch (lower it or warm it up), too much weight "
            "decay, a missing stop-gradient or predictor (SimSiam), or augmentations too "
            "weak to make the two views differ.",
            stacklevel=2,
        )
        if self.stop_training and self.model is not None:
            self.model.stop_training = True


class AtomicCSVLogger(keras.callbacks.Callback):
    """Logs one CSV row per epoch, rewriting the whole file atomically at every epoch end.

    `keras.callbacks.CSVLogger` appends in place: a kill mid-write leaves half a row, and a
    resumed run appends an epoch a second time. This one rewrites the file under a temporary
    name and renames it (`keras_siamese.atomic_files`), so the file is always whole, and an
    epoch logged again (a run resumed before that epoch's checkpoint) replaces its row and
    every later one. Columns: `epoch`, then the metrics in the order they first appear;
    a metric missing from an epoch (e.g. a kNN accuracy measured every few epochs) is empty.
    Under a `tf.distribute` strategy only the chief writes.

    Args:
        filename: the CSV file (its directory must exist or be creatable).

    Example:
        >>> logger = AtomicCSVLogger("run/history.csv")  # in model.fit(callbacks=[...])
    """

    def __init__(self, filename: str):
        super().__init__()
        if not isinstance(filename, str) or not filename:
            raise ValueError(
                f"`filename` must be a non-empty path. Received: filename={filename!r}"
            )
        self.filename = filename

    def _rows(self) -> list[dict]:
        import csv
        import os

        if not os.path.isfile(self.filename):
            return []
        with open(self.filename, newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import csv
        import os

        from keras_siamese import atomic_files

        strategy = getattr(self.model, "distribute_strategy", None)
        if strategy is not None and not strategy.extended.should_checkpoint:
            return
        kept = []
        for row in self._rows():
            try:
                if int(row["epoch"]) < epoch:
                    kept.append(row)
            except (KeyError, TypeError, ValueError):
                continue  # not a row of ours
        row = {"epoch": epoch, **{name: _csv_value(value) for name, value in (logs or {}).items()}}
        names = list(dict.fromkeys(name for line in (*kept, row) for name in line))
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        with atomic_files.atomic_write(self.filename) as file:
            writer = csv.DictWriter(file, fieldnames=names, restval="")
            writer.writeheader()
            writer.writerows([*kept, row])


def _csv_value(value) -> str:
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model at every epoch end to a temporary name, then renames it.

    `keras.callbacks.ModelCheckpoint` writes the `.keras` file in place: a kill mid-write
    leaves a truncated file where the last good model was. Here the file is always a complete
    model, the previous epoch's or this one's. Only the chief writes under a strategy.

    Args:
        filepath: the `.keras` file.

    Example:
        >>> saver = AtomicModelCheckpoint("run/model.keras")  # in model.fit(callbacks=[...])
    """

    def __init__(self, filepath: str):
        super().__init__()
        if not isinstance(filepath, str) or not filepath.endswith(".keras"):
            raise ValueError(
                f"`filepath` must be a path ending in .keras. Received: filepath={filepath!r}"
            )
        self.filepath = filepath

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        strategy = getattr(self.model, "distribute_strategy", None)
        if strategy is not None and not strategy.extended.should_checkpoint:
            return
        save_model(self.model, self.filepath)


def save_model(model, filepath: str) -> None:
    """`model.save(filepath)` through a temporary name and a rename: whole or absent.

    The file's directory is created if missing.
    """
    from keras_siamese import atomic_files

    os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
    with atomic_files.atomic_path(filepath) as temporary:
        model.save(temporary)
