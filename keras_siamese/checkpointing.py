"""Step-level checkpoints that survive kills, and a `fit` that resumes at the exact step.

`StepCheckpoint` is a Keras callback, after `tf.train.CheckpointManager` (it keeps the `keep`
newest complete checkpoints) and `tf.distribute.experimental.PreemptionCheckpointHandler`
(on SIGTERM or SIGINT it saves at the next step boundary and stops training). A checkpoint
is two files in its directory:

```
ckpt-000001200.weights.h5   model.save_weights(): weights, optimizer (its step counter and
                            slots), the augmenters' SeedGenerator states
ckpt-000001200.json         the step, the weights' SHA-256, the metrics' running state and
                            Keras' global seed generator state; written last, so it marks the
                            checkpoint complete
```

Both are written under a temporary name, flushed and renamed (`keras_siamese.atomic_files`),
so a kill at any moment leaves the previous checkpoints whole. A checkpoint is trusted only if
its JSON parses and the weights file has the recorded SHA-256 and loads; otherwise the
previous one is used (with a warning naming the damaged file). Under a `tf.distribute`
strategy only the chief writes (`strategy.extended.should_checkpoint`) and every worker
restores; a signal must reach every worker (schedulers send it to all of them).

`fit(model, batches, ...)` resumes exactly: it restores the newest valid checkpoint, asks
`batches(step)` for the training batches from that global step on (so the data order must be
a function of the seed and the step, e.g. `dataset.repeat().skip(step)` of a seeded
pipeline), finishes the interrupted epoch (its metrics continue from the checkpoint), then
runs the remaining epochs. A run interrupted and resumed this way ends with the same weights
as an uninterrupted one (tests/test_checkpointing.py: equal within 1e-6 on CPU).

Example:
    >>> checkpoint = StepCheckpoint("run/checkpoints", every_steps=500)
    >>> fit(model, lambda step: batches.repeat().skip(step), epochs=10,
    ...     steps_per_epoch=100, checkpoint=checkpoint)
    >>> checkpoint.stopped_by  # "SIGTERM" when a signal stopped it (a checkpoint was saved)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
import time
import warnings

import keras

from keras_siamese import atomic_files

_NAME = re.compile(r"^ckpt-(\d{9})\.json$")
SIGNALS = ("SIGTERM", "SIGINT")


class CheckpointError(ValueError):
    """A checkpoint directory that holds checkpoints, none of them usable."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_chief(model) -> bool:
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return True
    return bool(strategy.extended.should_checkpoint)


def _global_seed_generator():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a Keras without it keeps no global generator
        return None
    return global_state.get_global_attribute("global_seed_generator")


def _seed_states(model) -> list:
    """The states of the model's `SeedGenerator`s (Keras draws from them while `fit` sets up,
    before any step: `fit` puts them back, so every run draws the same stream)."""
    return [
        (variable, variable.numpy())
        for variable in model.variables
        if variable.name == "seed_generator_state"
    ]


def _metric_values(model) -> list[list]:
    values = []
    for metric in model.metrics:
        values.append([variable.numpy().tolist() for variable in metric.variables])
    return values


def _assign_metrics(model, values: list[list]) -> None:
    metrics = model.metrics
    if len(metrics) != len(values):
        return
    try:
        for metric, saved in zip(metrics, values, strict=True):
            for variable, value in zip(metric.variables, saved, strict=False):
                variable.assign(value)
    except (ValueError, NotImplementedError, RuntimeError) as error:  # e.g. sync-on-read sums
        warnings.warn(f"The metrics' running state was not restored ({error}).", stacklevel=2)


def _check_arguments(every_steps, every_minutes, keep) -> None:
    if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0:
        raise ValueError(
            f"`every_steps` must be an integer >= 0 (0: not by steps). "
            f"Received: every_steps={every_steps!r}"
        )
    if every_minutes is not None and (
        isinstance(every_minutes, bool)
        or not isinstance(every_minutes, (int, float))
        or every_minutes < 0
    ):
        raise ValueError(
            f"`every_minutes` must be a number >= 0 or None (0 or None: not by time). "
            f"Received: every_minutes={every_minutes!r}"
        )
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")


class StepCheckpoint(keras.callbacks.Callback):
    """Checkpoints every N steps or M minutes and on SIGTERM/SIGINT; restores the newest valid.

    See the module docstring for the files, their validation and `fit`, which resumes at the
    exact step. Used alone in `model.fit(callbacks=[...])` it restores in `on_train_begin`
    (if `restore()` was not called before) and resumes at the start of the checkpoint's epoch,
    as `keras.callbacks.BackupAndRestore` does; use `fit` to lose no step.

    A save that falls due at the last step of an epoch waits for `on_epoch_end`, so put this
    callback last: the checkpoint then follows the epoch's logs (e.g. a CSV row).

    Args:
        directory: where the checkpoints are written (created if needed).
        every_steps: save every this many steps (0: not by steps).
        every_minutes: save when this many minutes passed since the last save (0 or None:
            not by time). Default 10.
        keep: complete checkpoints kept (the newest ones); 2, so a damaged newest one falls
            back to the previous one.
        signals: names of the signals that save and stop at the next step boundary
            (installed in the main thread only, during `fit`; a second one of them kills
            as it would have without this callback). Empty: none.
        save_at_end: save when training ends (unless it ended by an error).
        verbose: 1 prints a line per signal and per restore; 0 is silent.

    Attributes:
        step: steps trained (restored, then counted).
        stopped_by: the name of the signal that stopped training, or None.

    Raises:
        ValueError: for a negative `every_steps` or `every_minutes`, or `keep < 1`.
    """

    def __init__(
        self,
        directory: str,
        every_steps: int = 0,
        every_minutes: float | None = 10.0,
        keep: int = 2,
        signals: tuple[str, ...] = SIGNALS,
        save_at_end: bool = True,
        verbose: int = 1,
    ):
        super().__init__()
        _check_arguments(every_steps, every_minutes, keep)
        unknown = [name for name in signals if not hasattr(signal, name)]
        if unknown:
            raise ValueError(f"`signals` must be signal names. Received: signals={signals!r}")
        self.directory = os.fspath(directory)
        self.every_steps = every_steps
        self.every_minutes = every_minutes or 0
        self.keep = keep
        self.signals = tuple(signals)
        self.save_at_end = save_at_end
        self.verbose = verbose
        self.step = 0
        self.stopped_by = None
        self.restored = None  # the restored checkpoint's metadata, {} when none
        self._saved_step = None
        self._last_save = time.monotonic()
        self._last_batch = -1
        self._pending = False
        self._received = None
        self._previous_handlers = {}
        self._metrics_to_restore = None
        self._seeds_before_fit = None

    # ------------------------------------------------------------------ files

    def _paths(self, step: int) -> tuple[str, str]:
        stem = os.path.join(self.directory, f"ckpt-{step:09d}")
        return f"{stem}.weights.h5", f"{stem}.json"

    def steps_on_disk(self) -> list[int]:
        """The steps of the checkpoints whose JSON exists, newest first (not validated)."""
        if not os.path.isdir(self.directory):
            return []
        found = (_NAME.match(name) for name in os.listdir(self.directory))
        return sorted((int(match.group(1)) for match in found if match), reverse=True)

    def _metadata(self, step: int) -> dict:
        """The JSON of checkpoint `step` after checking its weights file; raises
        CheckpointError naming the file and the fault."""
        weights, meta = self._paths(step)
        try:
            with open(meta, encoding="utf-8") as file:
                metadata = json.load(file)
            if not isinstance(metadata, dict) or metadata.get("step") != step:
                raise ValueError("not a checkpoint record of this step")
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{meta} is damaged ({error})") from None
        if not os.path.isfile(weights):
            raise CheckpointError(f"{weights} is missing")
        if _sha256(weights) != metadata.get("sha256"):
            raise CheckpointError(f"{weights} is damaged (its SHA-256 differs from {meta})")
        return metadata

    def latest(self) -> dict | None:
        """The metadata of the newest valid checkpoint (validated, not loaded), or None."""
        for step in self.steps_on_disk():
            try:
                return self._metadata(step)
            except CheckpointError:
                continue
        return None

    # ------------------------------------------------------------------ restore

    def restore(self, model=None) -> int:
        """Restores the newest valid checkpoint into `model`; returns its step (0: none).

        A damaged checkpoint is skipped with a warning naming it, for the previous one.

        Raises:
            CheckpointError: when checkpoints exist and none of them is usable, naming them
                and what to do.
        """
        model = model or self.model
        if model is not None and self.model is None:
            self.set_model(model)
        atomic_files.remove_stale(self.directory)
        faults = []
        for step in self.steps_on_disk():
            try:
                metadata = self._metadata(step)
                self._load(model, self._paths(step)[0], metadata)
            except CheckpointError as error:
                faults.append(str(error))
                warnings.warn(f"Checkpoint skipped: {error}; using the previous one.", stacklevel=2)
                continue
            self.step = self._saved_step = step
            self.restored = metadata
            self._metrics_to_restore = metadata.get("metrics")
            if self.verbose:
                print(f"Restored checkpoint {self._paths(step)[0]} (step {step}).")
            return step
        if faults:
            raise CheckpointError(
                f"No usable checkpoint in {self.directory}: {'; '.join(faults)}. Delete "
                f"{self.directory} to train again from step 0. Received: "
                f"directory={self.directory!r}"
            )
        self.restored = {}
        return 0

    def _load(self, model, weights: str, metadata: dict) -> None:
        if not model.built:
            raise ValueError(
                f"StepCheckpoint restores into a built model: build it (call it on a batch) "
                f"before fit or restore. Received: model.built={model.built}"
            )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(weights)
        except (OSError, ValueError, KeyError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{weights} cannot be loaded ({first})") from None
        generator = _global_seed_generator()
        state = metadata.get("global_seed_state")
        if generator is not None and state is not None:
            generator.state.assign(state)

    # ------------------------------------------------------------------ save

    def save(self) -> str | None:
        """Writes a checkpoint of the current step (the chief only); returns its weights path."""
        if self._saved_step == self.step and self.steps_on_disk()[:1] == [self.step]:
            return None  # already on disk
        self._last_save = time.monotonic()
        self._saved_step = self.step
        if not _is_chief(self.model):
            return None
        os.makedirs(self.directory, exist_ok=True)
        weights, meta = self._paths(self.step)
        with atomic_files.atomic_path(weights) as temporary:
            self.model.save_weights(temporary)
        generator = _global_seed_generator()
        metadata = {
            "step": self.step,
            "sha256": _sha256(weights),
            "metrics": _metric_values(self.model),
            "global_seed_state": None if generator is None else generator.state.numpy().tolist(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        with atomic_files.atomic_write(meta) as file:
            json.dump(metadata, file)
        self._prune()
        return weights

    def _prune(self) -> None:
        """Keeps the `keep` newest valid checkpoints; removes the others and orphans."""
        kept = []
        for step in self.steps_on_disk():
            if len(kept) < self.keep:
                try:
                    self._metadata(step)
                    kept.append(step)
                    continue
                except CheckpointError:
                    pass
            for path in self._paths(step)[::-1]:  # the JSON first: the checkpoint is gone
                if os.path.exists(path):
                    os.remove(path)
        for name in os.listdir(self.directory):
            if name.endswith(".weights.h5") and name.startswith("ckpt-"):
                step = int(name[5:14]) if name[5:14].isdigit() else None
                if step not in kept:
                    os.remove(os.path.join(self.directory, name))
        atomic_files.remove_stale(self.directory)

    # ------------------------------------------------------------------ signals

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self._received is not None:  # the second one: behave as without us
            signal.signal(signum, self._previous_handlers.get(name, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
            return
        self._received = name

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.signals:
            number = getattr(signal, name)
            self._previous_handlers[name] = signal.getsignal(number)
            signal.signal(number, self._handle)

    def _uninstall(self) -> None:
        for name, handler in self._previous_handlers.items():
            signal.signal(getattr(signal, name), handler)
        self._previous_handlers = {}

    # ------------------------------------------------------------------ callback

    def on_train_begin(self, logs=None):
        if self.restored is None:
            self.restore()
            steps = (self.params or {}).get("steps")
            if self.step and steps:
                self.model._initial_epoch = self.step // steps
                self.step = self.step // steps * steps
                self._metrics_to_restore = None
        for variable, state in self._seeds_before_fit or ():
            variable.assign(state)
        self._seeds_before_fit = None
        self.stopped_by = None
        self._received = None
        self._last_save = time.monotonic()
        self._install()

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1
        if self._metrics_to_restore is not None:
            _assign_metrics(self.model, self._metrics_to_restore)
            self._metrics_to_restore = None

    def _due(self) -> bool:
        if self.every_steps and self.step - (self._saved_step or 0) >= self.every_steps:
            return True
        return bool(self.every_minutes) and (
            time.monotonic() - self._last_save >= 60 * self.every_minutes
        )

    def on_train_batch_end(self, batch, logs=None):
        self.step += batch - self._last_batch
        self._last_batch = batch
        if self._received is not None:
            self.model.stop_training = True
        if not (self._due() or self._received):
            return
        steps = (self.params or {}).get("steps") or 0
        if steps and batch + 1 >= steps:
            self._pending = True  # the epoch's last step: save after its logs
        else:
            self._stop_or_save()

    def on_epoch_end(self, epoch, logs=None):
        if self._pending or self._received:
            self._stop_or_save()

    def _stop_or_save(self) -> None:
        self._pending = False
        self.save()
        if self._received and self.stopped_by is None:
            self.stopped_by = self._received
            self.model.stop_training = True
            if self.verbose:
                print(f"{self._received}: checkpointed step {self.step} in {self.directory}.")

    def on_train_end(self, logs=None):
        self._uninstall()
        if self.save_at_end:
            self.save()


def fit(model, batches, *, epochs: int, steps_per_epoch: int, checkpoint, callbacks=(), **kwargs):
    """`model.fit` that resumes at the exact step of `checkpoint`'s newest valid checkpoint.

    Args:
        model: a compiled, built model.
        batches: `batches(step)`, the training batches from global step `step` on (at least
            `epochs * steps_per_epoch - step` of them), the same sequence whatever `step`.
        epochs: epochs of the whole run.
        steps_per_epoch: steps of every epoch.
        checkpoint: the `StepCheckpoint` (it is added last to `callbacks`).
        callbacks: the other callbacks.
        **kwargs: passed to `model.fit` (e.g. `verbose`).

    Returns:
        The `History` of the last `model.fit` call, or None when the checkpoint had finished.
    """
    step = checkpoint.restore(model) if checkpoint.restored is None else checkpoint.step
    epoch, in_epoch = divmod(step, steps_per_epoch)
    callbacks = [*callbacks, checkpoint]
    history = None
    if epoch < epochs and in_epoch:
        checkpoint._seeds_before_fit = _seed_states(model)
        history = model.fit(
            batches(step),
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch - in_epoch,
            callbacks=[*callbacks, _StopAfterEpoch()],
            **kwargs,
        )
        if checkpoint.stopped_by:
            return history
        epoch += 1
    checkpoint._metrics_to_restore = None
    if epoch < epochs:
        checkpoint._seeds_before_fit = _seed_states(model)
        history = model.fit(
            batches(epoch * steps_per_epoch),
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            **kwargs,
        )
    return history


def resumable_batches(examples, batch_size: int, seed: int, step: int = 0):
    """Endless batches of in-memory `examples` whose order is a function of (seed, step) alone.

    Epoch `e` is `tf.random.experimental.stateless_shuffle` of the indices keyed by
    `(seed, e)`, cut into whole batches; the dataset starts at global step `step` (its first
    epoch skips `step % steps_per_epoch` index batches, cheap: no example is read). A seeded
    `Dataset.shuffle(reshuffle_each_iteration=True)` is not: its order depends on how many
    iterators were made from the dataset before (Keras makes one to build a model), so it
    cannot be replayed from a step.

    Args:
        examples: an array or tensor, or a tuple of them with equal first dimensions.
        batch_size: examples per batch (the remainder of each epoch is dropped).
        seed: the integer seed.
        step: the global step of the first batch.

    Returns:
        A `tf.data.Dataset` of batches (the structure of `examples`).
    """
    import tensorflow as tf

    tensors = tuple(tf.convert_to_tensor(part) for part in tf.nest.flatten(examples))
    count = int(tensors[0].shape[0])
    steps_per_epoch = count // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` must be at most the {count} examples. Received: batch_size={batch_size}"
        )
    first_epoch, skip = divmod(int(step), steps_per_epoch)

    def epoch_indices(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=key)
        batches = tf.data.Dataset.from_tensor_slices(order[: steps_per_epoch * batch_size])
        batches = batches.batch(batch_size, drop_remainder=True)
        return batches.skip(tf.where(epoch == first_epoch, tf.constant(skip, tf.int64), 0))

    def gather(indices):
        parts = [tf.gather(part, indices) for part in tensors]
        return tf.nest.pack_sequence_as(examples, parts)

    indices = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch_indices)
    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class _StopAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True
