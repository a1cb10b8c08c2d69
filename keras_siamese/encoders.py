"""Encoders: the ResNets of the SimCLR/SimSiam papers and the adaptation of user models.

An encoder is any `keras.Model` that maps float32 images in [0, 1] of a fixed shape
`(height, width, channels)` to a rank-2 representation `(batch, features)`.
"""

from __future__ import annotations

import numbers
import warnings

import keras

_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def _conv_bn(x, filters, kernel_size, strides, name, activation=True):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters, strides, name):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", activation=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_shortcut", activation=False)
    added = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(added)


def _bottleneck_block(x, filters, strides, name):
    shortcut = x
    y = _conv_bn(x, filters, 1, 1, f"{name}_1")
    y = _conv_bn(y, filters, 3, strides, f"{name}_2")
    y = _conv_bn(y, 4 * filters, 1, 1, f"{name}_3", activation=False)
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = _conv_bn(x, 4 * filters, 1, strides, f"{name}_shortcut", activation=False)
    added = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(added)


def resnet(
    depth: int = 18,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    small_images: bool = True,
    width: int = 64,
    name: str | None = None,
) -> keras.Model:
    """Builds a ResNet (He et al. 2016) that returns globally pooled features.

    With `small_images=True` the stem is the CIFAR variant used by SimCLR (Chen et al.
    2020, appendix B.9: "we replace the first 7x7 Conv of stride 2 with 3x3 Conv of
    stride 1, and also remove the first max pooling operation") and SimSiam. Otherwise
    it is the ImageNet stem (7x7 stride-2 conv and 3x3 stride-2 max-pool). Stages have
    `width, 2*width, 4*width, 8*width` filters; depth 50 uses bottleneck blocks (4x
    expansion), so its features have `32 * width` dimensions, the others `8 * width`.
    Depth 10 (one basic block per stage) is a small variant for CPU budgets.

    Args:
        depth: 10, 18, 34 or 50.
        input_shape: `(height, width, channels)` of the float images in [0, 1].
        small_images: use the 3x3 stride-1 stem without max-pool.
        width: filters of the first stage (64 in the papers).
        name: model name, `resnet{depth}` by default.

    Returns:
        A functional `keras.Model` from images to pooled features `(batch, features)`.

    Raises:
        ValueError: for an unknown depth, a non-positive width or a bad input shape.

    Example:
        >>> encoder = resnet(depth=18, input_shape=(32, 32, 3), width=16)
        >>> encoder.output_shape
        (None, 128)
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth not in _BLOCKS:
        raise ValueError(
            f"Argument `depth` must be one of {sorted(_BLOCKS)}. Received: depth={depth!r}"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"Argument `width` must be a positive integer. Received: width={width!r}")
    received = input_shape
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = ()
    if len(input_shape) != 3 or any(
        isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape
    ):
        raise ValueError(
            "Argument `input_shape` must be (height, width, channels) of positive integers. "
            f"Received: input_shape={received!r}"
        )
    depth = int(depth)
    inputs = keras.Input(input_shape, name="images")
    if small_images:
        x = _conv_bn(inputs, width, 3, 1, "stem")
    else:
        x = _conv_bn(inputs, width, 7, 2, "stem")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    block = _bottleneck_block if depth == 50 else _basic_block
    for stage, repeats in enumerate(_BLOCKS[depth]):
        filters = width * 2**stage
        for index in range(repeats):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, strides, f"stage{stage + 1}_block{index + 1}")
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


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
