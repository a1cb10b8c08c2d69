"""Shape checks shared by the losses (argument values go through `keras_siamese.validation`)."""

from __future__ import annotations

from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.validation import static_shape as _static_shape


def _check_same_shape_pair(a, b, names: tuple[str, str], dims: str, meaning: str):
    """Checks two rank-2 tensors of one shape; returns their static shapes (or None)."""
    shapes = tuple(
        validation.check_rank_2(name, value, f"(batch_size, {dims})")
        for name, value in zip(names, (a, b), strict=True)
    )
    if shapes[0] is not None and shapes[1] is not None:
        pairs = zip(shapes[0], shapes[1], strict=True)
        if not all(x is None or y is None or x == y for x, y in pairs):
            raise ValueError(
                f"Arguments `{names[0]}` and `{names[1]}` must have the same shape ({meaning}). "
                f"Received: {names[0]}.shape={shapes[0]}, {names[1]}.shape={shapes[1]}"
            )
    return shapes


def _check_pair_of_batches(z_a, z_b, loss_name: str, meaning: str):
    """Rank-2 tensors of one shape, with at least 2 rows outside a multi-replica step."""
    shapes = _check_same_shape_pair(z_a, z_b, ("z_a", "z_b"), "projection_dims", meaning)
    batch_size = next((s[0] for s in shapes if s is not None and s[0] is not None), None)
    if batch_size is not None and batch_size < 2 and not distribute.in_replica_context():
        raise ValueError(
            f"{loss_name} needs at least 2 examples per batch: its statistics are computed "
            f"over the batch. Received: z_a.shape={shapes[0]}, z_b.shape={shapes[1]}"
        )


def _split_stacked_views(y_pred, class_name: str):
    """Splits `(2 * batch, d)` into the two views, checking rank and an even row count."""
    shape = _static_shape(y_pred)
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"Argument `y_pred` of {class_name} must have rank 2, the two views stacked as "
            f"(2 * batch_size, projection_dims). Received: y_pred.shape={shape}"
        )
    if shape is not None and shape[0] is not None and shape[0] % 2:
        raise ValueError(
            f"Argument `y_pred` of {class_name} must have an even number of rows: the first "
            f"half holds the first views, the second half the second views. "
            f"Received: y_pred.shape={shape}"
        )
    z_a, z_b = ops.split(y_pred, 2, axis=0)
    return z_a, z_b
