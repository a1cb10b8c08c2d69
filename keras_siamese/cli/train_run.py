"""`train`'s training proper: callbacks, the step-addressed data, the resumable fit, the end.

A run checkpoints into DIR/checkpoints every `--checkpoint_every_steps` steps or
`--checkpoint_every_minutes` minutes (default 10) and on SIGTERM/SIGINT at the next step
boundary (`keras_siamese.checkpointing.StepCheckpoint`), and re-running the command resumes
at that exact step (`checkpointing.fit`). A run stopped by a signal exits with
`EXIT_CHECKPOINTED` (75, EX_TEMPFAIL: "try again"), after printing how to resume.

Exactness: the two-view methods on a named dataset draw their batches from
`checkpointing.resumable_batches` (each epoch a stateless permutation keyed by (--seed,
epoch)), and the augmenters' seed states are in the checkpoint: a resumed run ends with the
weights of an uninterrupted one. Folders, TFRecords, pairs and triplets resume at the exact
step and schedule with a fresh draw of the data order (their readers shuffle statefully).

Every file is written whole or not at all; `train_result.json` is written last, from the
complete history, after model.keras has been saved and checked.
"""

from __future__ import annotations

import os
import time

from absl import app

from keras_siamese.cli import method_batches, progress_lines, run_dir, sources
from keras_siamese.cli.run_config import RunConfig

EXIT_CHECKPOINTED = 75


def callbacks(config: RunConfig, model_dir: str, data_module) -> list:
    """KNNMonitor first (so later callbacks see `val_knn_accuracy`), then model and logs.

    The step checkpoint is added last by `fit` (it follows the epoch's row of history.csv).
    """
    import keras

    import keras_siamese as ks

    listed = []
    if config.knn_monitor:
        memory, queries, _ = data_module.labelled_sets(
            config.source,
            config.record(),
            list(config.image_shape),
            config.flags["knn_memory_examples"],
            config.flags["knn_query_examples"],
            ordered=False,
        )
        listed.append(
            ks.callbacks.KNNMonitor(
                memory, queries, k=config.flags["knn_k"], every=config.knn_every, verbose=1
            )
        )
    listed += config.method.build_monitors()
    listed += [
        ks.callbacks.AtomicModelCheckpoint(run_dir.path(model_dir, run_dir.MODEL)),
        ks.callbacks.AtomicCSVLogger(run_dir.path(model_dir, run_dir.HISTORY)),
        keras.callbacks.TensorBoard(
            run_dir.path(model_dir, run_dir.LOGS), update_freq=config.flags["log_every_steps"]
        ),
    ]
    return listed


def step_checkpoint(config: RunConfig, model_dir: str):
    """The run's `StepCheckpoint` in DIR/checkpoints, from the checkpoint flags."""
    from keras_siamese import checkpointing

    return checkpointing.StepCheckpoint(
        run_dir.path(model_dir, run_dir.CHECKPOINTS),
        every_steps=config.flags.get("checkpoint_every_steps", 0),
        every_minutes=config.flags.get("checkpoint_every_minutes", 10.0),
        verbose=progress_lines.fit_verbose(config.flags["verbose"]) > 0,
    )


def exact_order(config: RunConfig) -> bool:
    """Whether the data order is a function of (seed, step) (see the module docstring)."""
    return (
        config.method.build_batches is method_batches.images and config.source.kind == sources.NAMED
    )


def batches_from(config: RunConfig, data_module, images):
    """`batches(step)`: the training batches from global step `step` on, endless."""
    import numpy as np

    from keras_siamese import checkpointing

    if exact_order(config):
        arrays = np.concatenate(list(images.batch(4096).as_numpy_iterator()))
        return lambda step: checkpointing.resumable_batches(
            arrays, config.batch_size, config.seed, step
        )
    supervised = config.method.needs_labels
    shape = list(config.image_shape)

    def batches(step):
        examples = data_module.training_data(config.source, config.record(), shape, supervised)
        return config.method.build_batches(config, examples).repeat()

    return batches


def fit(config: RunConfig, model, strategy, data_module, images, listed, checkpoint) -> float:
    """Restores the newest checkpoint, trains to the end (or a signal); returns the seconds."""
    from keras_siamese import checkpointing

    started = time.perf_counter()
    checkpoint.hold_signals()  # from the restore on: a signal saves, never kills
    try:
        try:
            with strategy.scope():
                checkpoint.restore(model)
        except checkpointing.CheckpointError as error:
            raise app.UsageError(str(error)) from None
        checkpointing.fit(
            model,
            batches_from(config, data_module, images),
            epochs=config.recipe.epochs,
            steps_per_epoch=config.steps_per_epoch,
            checkpoint=checkpoint,
            callbacks=listed,
            verbose=progress_lines.fit_verbose(config.flags["verbose"]),  # auto: bar on a tty
            shuffle=False,  # The pipeline shuffles; Keras cannot shuffle a tf.data.Dataset.
        )
    finally:
        checkpoint.release_signals()
    return time.perf_counter() - started


def stopped_message(checkpoint, config: RunConfig, model_dir: str) -> str:
    return (
        f"Stopped by {checkpoint.stopped_by} at step {checkpoint.step} of "
        f"{config.total_steps}: checkpointed in {checkpoint.directory}. Re-run the same "
        f"command (train --model_dir={model_dir} ...) to resume at step {checkpoint.step}."
    )


def finish(config: RunConfig, model, model_dir: str, seconds: float, checkpoint) -> dict:
    """Saves model.keras (whole), checks it, writes train_result.json from the complete
    history, then keeps only the final checkpoint. Returns the result."""
    import keras_siamese as ks

    model_path = run_dir.path(model_dir, run_dir.MODEL)
    ks.callbacks.save_model(model, model_path)
    fault = run_dir.model_fault(model_path)
    if fault:
        raise app.UsageError(f"{model_path} could not be written whole: {fault}.")
    history = run_dir.read_history(model_dir)
    result = {
        "epochs": config.recipe.epochs,
        "steps": checkpoint.step,
        "seconds_this_run": round(seconds, 1),
        "final": {name: series[-1] for name, series in history.items() if series},
    }
    run_dir.write_json(run_dir.path(model_dir, run_dir.TRAIN_RESULT), result)
    checkpoint.keep = 1
    checkpoint._prune()  # the final checkpoint stays: it can rewrite model.keras
    return result


def finished(model_dir: str) -> bool:
    """Whether training has finished and its model is whole (else re-running repairs it).

    Raises:
        absl.app.UsageError: a finished run whose model.keras is damaged and which has no
            checkpoint left to rewrite it from.
    """
    result_path = run_dir.path(model_dir, run_dir.TRAIN_RESULT)
    if not os.path.isfile(result_path):
        return False
    model_path = run_dir.path(model_dir, run_dir.MODEL)
    fault = run_dir.model_fault(model_path)
    if fault is None:
        return True
    checkpoints = run_dir.path(model_dir, run_dir.CHECKPOINTS)
    if os.path.isdir(checkpoints) and any(n.endswith(".json") for n in os.listdir(checkpoints)):
        print(f"{model_path} is damaged ({fault}): rewriting it from {checkpoints}.")
        return False
    raise app.UsageError(
        f"{model_path} is damaged ({fault}) and {checkpoints} holds no checkpoint to rewrite "
        f"it from: train again with a new --model_dir. Received: --model_dir={model_dir}"
    )
