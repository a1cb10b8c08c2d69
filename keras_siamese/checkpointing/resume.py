"""Resuming at the exact step: `fit` and `resumable_batches` (see the package docstring)."""

from __future__ import annotations

import keras

from keras_siamese.checkpointing.state import seed_states


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
    owner = not checkpoint._held
    if owner:  # a signal between or before the fits is caught as well
        checkpoint.hold_signals()
    try:
        return _fit_from_checkpoint(
            model, batches, epochs, steps_per_epoch, checkpoint, callbacks, kwargs
        )
    finally:
        if owner:
            checkpoint.release_signals()


def _fit_from_checkpoint(model, batches, epochs, steps_per_epoch, checkpoint, callbacks, kwargs):
    step = checkpoint.restore(model) if checkpoint.restored is None else checkpoint.step
    epoch, in_epoch = divmod(step, steps_per_epoch)
    callbacks = [*callbacks, checkpoint]
    history = None
    if epoch < epochs and in_epoch:
        if checkpoint.stop_if_signalled():
            return history
        checkpoint._seeds_before_fit = seed_states(model)
        history = model.fit(
            batches(step),
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch - in_epoch,
            callbacks=[*callbacks, _StopAfterEpoch()],
            **kwargs,
        )
        epoch += 1
    checkpoint._metrics_to_restore = None
    if epoch < epochs and not checkpoint.stop_if_signalled():
        checkpoint._seeds_before_fit = seed_states(model)
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
