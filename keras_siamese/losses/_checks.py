"""Shape checks shared by the losses (argument values go through `keras_siamese.validation`)."""

from __future__ import annotations


def _static_shape(value) -> tuple | None:
    """Returns the static shape of a tensor as a tuple, or None when the rank is unknown."""
    try:
        return tuple(value.shape)
    except (TypeError, ValueError):
        return None


def _check_same_shape_pair(a, b, names: tuple[str, str], dims: str, meaning: str):
    """Checks two rank-2 tensors of one shape; returns their static shapes (or None)."""
    shapes = _static_shape(a), _static_shape(b)
    for name, shape in zip(names, shapes, strict=True):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"Argument `{name}` must have rank 2, shape (batch_size, {dims}). "
                f"Received: {name}.shape={shape}"
            )
    if shapes[0] is not None and shapes[1] is not None:
        pairs = zip(shapes[0], shapes[1], strict=True)
        if not all(x is None or y is None or x == y for x, y in pairs):
            raise ValueError(
                f"Arguments `{names[0]}` and `{names[1]}` must have the same shape ({meaning}). "
                f"Received: {names[0]}.shape={shapes[0]}, {names[1]}.shape={shapes[1]}"
            )
    return shapes
