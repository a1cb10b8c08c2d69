"""`adapt_encoder`: checks a user encoder and makes it return rank-2 features."""

from __future__ import annotations

import warnings

import keras


def adapt_encoder(encoder: keras.Model) -> keras.Model:
    """Checks a user encoder and makes it return rank-2 features.

    A model with a rank-2 output is returned unchanged. A rank-4 output
    (feature maps) is globally average-pooled, with a warning saying so.

    Args:
        encoder: a `keras.Model` with a fixed `(height, width, channels)` input.

    Returns:
        An encoder whose output is `(batch, features)`.

    Raises:
        TypeError: if `encoder` is not a `keras.Model`.
        ValueError: for an input that is not rank 4 or an output of another rank.

    Example:
        >>> encoder = adapt_encoder(resnet(depth=10, input_shape=(16, 16, 1), width=8))
        >>> encoder.output_shape
        (None, 64)
    """
    if not isinstance(encoder, keras.Model):
        raise TypeError(
            "Argument `encoder` must be a keras.Model mapping images to features. "
            f"Received: encoder={encoder!r} of type {type(encoder).__name__}"
        )
    try:
        input_shape = tuple(encoder.input_shape)
        output_shape = tuple(encoder.output_shape)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "Argument `encoder` must be a built model with one input and one output "
            "(e.g. a functional model made with keras.Input). "
            f"Received: encoder={encoder.name!r}"
        ) from error
    if len(input_shape) != 4:
        raise ValueError(
            "Argument `encoder` must take images of shape (batch, height, width, channels). "
            f"Received: encoder.input_shape={input_shape}"
        )
    if len(output_shape) == 2:
        return encoder
    if len(output_shape) == 4:
        warnings.warn(
            f"Encoder {encoder.name!r} returns feature maps {output_shape}; keras_siamese "
            "adds global average pooling to get a (batch, features) representation.",
            stacklevel=2,
        )
        inputs = keras.Input(input_shape[1:], name="images")
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(encoder(inputs))
        return keras.Model(inputs, pooled, name=f"{encoder.name}_pooled")
    raise ValueError(
        "Argument `encoder` must return (batch, features) or (batch, height, width, "
        f"channels). Received: encoder.output_shape={output_shape}"
    )
