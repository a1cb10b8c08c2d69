"""`check_views`: what a model checks on the views of its first batch, with the fix to apply.

Any augmenter may be passed to a model (ours, keras-cv's, Keras core's, a user's): the encoder
needs float views of its input shape with values in [0, 1]. A Keras core pipeline without
`Rescaling(1 / 255)` produces [0, 255] and would train silently on another input range than the
exported model serves; this check turns that into a `ValueError` naming the augmenter.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Resampling and colour arithmetic may leave a rounding error outside [0, 1].
RANGE_TOLERANCE = 1e-3


def _name(augmenter) -> str:
    return f"{type(augmenter).__name__} {getattr(augmenter, 'name', '')!r}".strip()


def check_views(views, augmenter, input_shape: tuple | None = None) -> None:
    """Raises ValueError unless `views` are float, of `input_shape`, with values in [0, 1].

    Shapes and dtypes are checked on any tensor (symbolic too); values only when they are
    concrete (numpy arrays, eager tensors).

    Args:
        views: one batch of views, or a list of them (a `MultiCrop`'s output).
        augmenter: the layer that produced them (named in the message).
        input_shape: the encoder's `(height, width, channels)`; None entries (an encoder built
            with `input_shape=(None, None, C)`) accept any size. None skips the shape check.

    Raises:
        ValueError: naming the augmenter, what it produced and the fix.

    Example:
        >>> check_views(np.zeros((2, 8, 8, 1), "float32"), ToUnitRange(), (8, 8, 1))
    """
    for view in views if isinstance(views, (list, tuple)) else [views]:
        dtype = tf.as_dtype(view.dtype)
        if not dtype.is_floating:
            raise ValueError(
                f"The augmenter {_name(augmenter)} produced {dtype.name} views; the encoder "
                "needs float views in [0, 1]. End the augmenter with "
                "`keras_siamese.augment.ToUnitRange()` (or `keras.layers.Rescaling(1 / 255)`). "
                f"Received: views.dtype={dtype.name}"
            )
        shape = tuple(view.shape)
        if input_shape is not None:
            expected = tuple(input_shape)
            matches = len(shape) == len(expected) + 1 and all(
                want is None or have is None or want == have
                for have, want in zip(shape[1:], expected, strict=True)
            )
            if not matches:
                raise ValueError(
                    f"The augmenter {_name(augmenter)} produced views of shape {shape}; the "
                    f"encoder takes {expected}. Make the augmenter output that size (its "
                    "`image_size`), or build the encoder with `input_shape=(None, None, "
                    f"{expected[-1]})` for views of several sizes. Received: views.shape={shape}"
                )
        if isinstance(view, np.ndarray) or (tf.executing_eagerly() and hasattr(view, "numpy")):
            values = np.asarray(view)
            low, high = float(values.min()), float(values.max())
            if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
                fix = (
                    "add `keras.layers.Rescaling(1 / 255)` (or "
                    "`keras_siamese.augment.ToUnitRange()`) as its last layer"
                    if high > 1.0 + RANGE_TOLERANCE
                    else "make it output values in [0, 1]"
                )
                raise ValueError(
                    f"The augmenter {_name(augmenter)} produced values in [{low:g}, {high:g}]; "
                    f"the encoder expects [0, 1] (images enter in [0, 255]): {fix}. "
                    f"Received: views in [{low:g}, {high:g}]"
                )
