"""The train step's guard against NaN and Inf: checked inputs, views, loss and gradients.

`RepresentationModel.train_step` checks, for every batch from any source (numpy arrays or a
`tf.data` pipeline), that its float tensors are finite before the forward pass, that the
prepared batch (the augmented views, the parsed pairs) is finite before the encoder sees it,
and that the loss and every gradient are finite before the optimizer applies them. A failed
check stops `fit` with an error naming the step (the optimizer's iteration, counted from 0)
and what was not finite, e.g. "the input batch of step 12 holds NaN or Inf". Integer
(uint8) images cannot be NaN and are not checked.

The checks are `tf.debugging.Assert` ops that every later op of the step depends on, so a
failed one runs neither the forward pass (no BatchNorm statistic moves) nor the update. A
NaN produced inside the forward pass from finite inputs is caught by the loss or gradient
check, before any trainable weight or optimizer slot changes (BatchNorm moving statistics
of that forward pass may already hold it). Why the gradients are checked, not only the
loss: a `tf.where` that masks a NaN (triplet mining) gives a finite loss and NaN gradients.

XLA (`jit_compile=True`, TPUs) drops `Assert` ops, so under XLA a non-finite step applies
zero gradients instead and logs a NaN loss, which `keras.callbacks.TerminateOnNaN` stops on.
"""

from __future__ import annotations

import tensorflow as tf

from keras_siamese.augment.base import in_xla_context

_FIX = (
    "Find the batch (e.g. `np.isnan(images).any()` on that step's data) or lower the learning "
    "rate if the loss diverged; images must be finite values in [0, 255]."
)


def _float_tensors(structure) -> list[tf.Tensor]:
    tensors = []
    for item in tf.nest.flatten(structure):
        if isinstance(item, tf.IndexedSlices):
            item = item.values
        if isinstance(item, tf.Tensor) and item.dtype.is_floating:
            tensors.append(item)
    return tensors


def all_finite(tensors) -> tf.Tensor:
    """A scalar bool: whether every float tensor of a structure is free of NaN and Inf."""
    flags = [tf.reduce_all(tf.math.is_finite(tensor)) for tensor in _float_tensors(tensors)]
    if not flags:
        return tf.constant(True)
    return tf.reduce_all(tf.stack(flags)) if len(flags) > 1 else flags[0]


def _assert(finite, step, what: str):
    message = f"Non-finite values stop training: the {what} of step"
    return tf.debugging.Assert(
        finite, [message, step, f"(optimizer.iterations): NaN or Inf found. {_FIX}"], summarize=1
    )


def _depending_on(structure, checks):
    """`structure` with every tensor made to wait for `checks` (Python values kept)."""
    checks = [check for check in checks if check is not None]  # None: eager, already run
    if not checks:
        return structure
    with tf.control_dependencies(checks):
        return tf.nest.map_structure(
            lambda item: tf.identity(item) if isinstance(item, tf.Tensor) else item, structure
        )


def checked(structure, step, what: str):
    """`structure` (a batch) after a check that its float tensors are finite.

    Args:
        structure: a nest of tensors (and Python values, passed through).
        step: the optimizer's iteration, named in the error.
        what: what the tensors are, for the error ("input batch", "augmented views").

    Returns:
        `structure`, its tensors depending on the check (unchanged under XLA).

    Raises:
        tf.errors.InvalidArgumentError: when run, if a float tensor holds NaN or Inf.
    """
    if in_xla_context() or not _float_tensors(structure):
        return structure
    return _depending_on(structure, [_assert(all_finite(structure), step, what)])


def checked_update(loss, gradients, step, loss_scaled: bool = False):
    """`(loss, gradients)` after checks that both are finite (see the module docstring).

    With `loss_scaled` (a `keras.optimizers.LossScaleOptimizer`, mixed_float16) the
    gradients of the scaled loss overflow by design at too large a scale: that optimizer skips
    such a step and lowers the scale, so only the (unscaled) loss is checked.

    Returns:
        `(loss, gradients)`: under XLA, zero gradients and a NaN loss for a non-finite step.

    Raises:
        tf.errors.InvalidArgumentError: when run, for a NaN/Inf loss or gradient.
    """
    loss_finite = tf.reduce_all(tf.math.is_finite(loss))
    gradients_finite = tf.constant(True) if loss_scaled else all_finite(gradients)
    if in_xla_context():
        finite = tf.logical_and(loss_finite, gradients_finite)
        gradients = [
            None if gradient is None else tf.where(finite, gradient, tf.zeros_like(gradient))
            for gradient in gradients
        ]
        return tf.where(finite, loss, tf.constant(float("nan"), loss.dtype)), gradients
    checks = [
        _assert(loss_finite, step, "loss"),
        # Named only when the loss is finite: a NaN loss makes NaN gradients too.
        _assert(gradients_finite | ~loss_finite, step, "gradients (the loss is finite)"),
    ]
    return _depending_on((loss, list(gradients)), checks)
