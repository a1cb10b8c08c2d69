"""`StepCheckpoint`: the callback (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import warnings

import keras

from keras_siamese import atomic_files
from keras_siamese.checkpointing.state import (
    assign_metrics,
    check_arguments,
    global_seed_generator,
    is_chief,
    metric_values,
    sha256,
)

_NAME = re.compile(r"^ckpt-(\d{9})\.json$")
SIGNALS = ("SIGTERM", "SIGINT")


class CheckpointError(ValueError):
    """A checkpoint directory that holds checkpoints, none of them usable."""


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
        check_arguments(every_steps, every_minutes, keep)
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
        self._held = False  # `checkpointing.fit` holds the handlers across its fit calls

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
        if sha256(weights) != metadata.get("sha256"):
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
        strategy = getattr(model, "distribute_strategy", None)
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        try:
            with scope:  # slots and restored values mirrored on every replica
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                model.load_weights(weights)
        except (OSError, ValueError, KeyError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{weights} cannot be loaded ({first})") from None
        generator = global_seed_generator()
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
        if not is_chief(self.model):
            return None
        os.makedirs(self.directory, exist_ok=True)
        weights, meta = self._paths(self.step)
        with atomic_files.atomic_path(weights) as temporary:
            self.model.save_weights(temporary)
        generator = global_seed_generator()
        metadata = {
            "step": self.step,
            "sha256": sha256(weights),
            "metrics": metric_values(self.model),
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

    def hold_signals(self) -> None:
        """Catches the signals from now until `release_signals` (across several fits)."""
        self.stopped_by = None
        self._received = None
        self._install()
        self._held = True

    def release_signals(self) -> None:
        self._held = False
        self._uninstall()

    def stop_if_signalled(self) -> bool:
        """Between fits: saves and stops if a signal came; returns whether it did."""
        if self._received and self.stopped_by is None:
            self._stop_or_save()
        return self.stopped_by is not None

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
        self._last_save = time.monotonic()
        if not self._held:
            self.stopped_by = None
            self._received = None
            self._install()

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1
        if self._metrics_to_restore is not None:
            assign_metrics(self.model, self._metrics_to_restore)
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
            if self.model is not None:
                self.model.stop_training = True
            if self.verbose:
                print(f"{self._received}: checkpointed step {self.step} in {self.directory}.")

    def on_train_end(self, logs=None):
        if not self._held:
            self._uninstall()
        if self.save_at_end:
            self.save()
