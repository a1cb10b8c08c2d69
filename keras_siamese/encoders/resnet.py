"""The ResNets of the SimCLR and SimSiam papers (He et al. 2016), for any channel count."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from keras_siamese.encoders.arguments import check_input_shape

_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def _positive_integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth not in _BLOCKS:
        raise ValueError(
            f"Argument `depth` must be one of {sorted(_BLOCKS)}. Received: depth={depth!r}"
        )
    return int(depth)


def _sizes(argument: str, values) -> tuple[int, ...]:
    """`values` as a non-empty tuple of positive ints, or a ValueError naming `argument`."""
    try:
        sizes = tuple(values)
    except TypeError:
        sizes = ()
    if not sizes or not all(_positive_integer(value) for value in sizes):
        raise ValueError(
            f"Argument `{argument}` must be a non-empty sequence of positive integers, one per "
            f"stage. Received: {argument}={values!r}"
        )
    return tuple(int(value) for value in sizes)


def _stage_sizes(depth: int, width, widths, blocks) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`(filters, residual blocks)` of each stage, checked."""
    if not _positive_integer(width):
        raise ValueError(f"Argument `width` must be a positive integer. Received: width={width!r}")
    if widths is not None and width != 64:
        raise ValueError(
            "Pass either `width` (stages of width, 2*width, ...) or `widths`, not both. "
            f"Received: width={width!r}, widths={widths!r}"
        )
    blocks = _BLOCKS[depth] if blocks is None else _sizes("blocks", blocks)
    if widths is None:
        widths = tuple(int(width) * 2**stage for stage in range(len(blocks)))
    widths = _sizes("widths", widths)
    if len(widths) != len(blocks):
        raise ValueError(
            f"Arguments `widths` and `blocks` must have one entry per stage (the same length). "
            f"Received: widths={widths!r}, blocks={blocks!r}"
        )
    return widths, blocks


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
    grid_size: int | None = None,
    widths: Sequence[int] | None = None,
    blocks: Sequence[int] | None = None,
    stem_stride: int | None = None,
) -> keras.Model:
    """Builds a ResNet (He et al. 2016) that returns pooled features.

    With `small_images=True` the stem is the CIFAR variant used by SimCLR (Chen et al.
    2020, appendix B.9: "we replace the first 7x7 Conv of stride 2 with 3x3 Conv of
    stride 1, and also remove the first max pooling operation") and SimSiam. Otherwise
    it is the ImageNet stem (7x7 stride-2 conv and 3x3 stride-2 max-pool). Stages have
    `width, 2*width, 4*width, 8*width` filters; depth 50 uses bottleneck blocks (4x
    expansion), so its features have `32 * width` dimensions, the others `8 * width`.
    Depth 10 (one basic block per stage) is a small variant for CPU budgets.

    The last feature map is averaged globally (the papers), or with `grid_size=N` over an
    N x N grid of cells and flattened: `N * N` times the features, which keep where in the
    image each pattern is. On 28x28 Fashion-MNIST the small-image stem ends on a 4x4 map, and
    `grid_size=4` (all of it, 2,048 features at width 16) measured +6 to +9 points of linear
    probe over global pooling for the same pretraining time (benchmarks/results/sweep.md).
    Global pooling stays the default: it is what ImageNet-sized images want.

    `widths`, `blocks` and `stem_stride` shape other members of the family (what
    `benchmarks/recipe.py` sweeps): filters and residual blocks of each stage (any number of
    stages, the first at full resolution, each later one halving it) and the stride of the
    stem's convolution. Left at None, the encoder is the `depth`'s and `width`'s, layer for
    layer.

    Args:
        depth: 10, 18, 34 or 50.
        input_shape: `(height, width, channels)` of the float images in [0, 1]; any channel
            count (4 for RGB + near-infrared, 13 for Sentinel-2 bands, ...). `(None, None,
            channels)` builds an encoder of any image size (train on small views, serve full
            images: give the model `image_size=`).
        small_images: use the 3x3 stride-1 stem without max-pool.
        width: filters of the first stage (64 in the papers).
        name: model name, `resnet{depth}` by default.
        grid_size: None for global average pooling, or N for the N x N grid of averages.
        widths: filters of each stage instead of `width, 2*width, 4*width, 8*width` (then
            leave `width` at its default).
        blocks: residual blocks of each stage instead of the `depth`'s (10: 1, 1, 1, 1;
            18: 2, 2, 2, 2; 34 and 50: 3, 4, 6, 3); `depth` still picks the block (50:
            bottleneck) and the default name.
        stem_stride: stride of the stem's convolution; None: 1 for the small-image stem,
            2 for the ImageNet one (whose max-pool halves it again).

    Returns:
        A functional `keras.Model` from images to pooled features `(batch, features)`.

    Raises:
        ValueError: for an unknown depth, a non-positive width or grid size, a bad input
            shape, `widths` or `blocks` that are not positive integers of one length, `widths`
            beside a changed `width`, or a non-positive stem stride.

    Example:
        >>> encoder = resnet(depth=18, input_shape=(32, 32, 3), width=16)
        >>> encoder.output_shape
        (None, 128)
        >>> resnet(10, (None, None, 1), width=16, grid_size=4).output_shape
        (None, 2048)
        >>> resnet(10, (28, 28, 1), widths=(8, 16, 32), blocks=(1, 2, 1)).output_shape
        (None, 32)
    """
    depth = _check_depth(depth)
    widths, blocks = _stage_sizes(depth, width, widths, blocks)
    if grid_size is not None and not _positive_integer(grid_size):
        raise ValueError(
            "Argument `grid_size` must be None (global average pooling) or a positive integer. "
            f"Received: grid_size={grid_size!r}"
        )
    if stem_stride is not None and not _positive_integer(stem_stride):
        raise ValueError(
            "Argument `stem_stride` must be None (the stem's own) or a positive integer. "
            f"Received: stem_stride={stem_stride!r}"
        )
    input_shape = check_input_shape(input_shape, any_size=True)
    inputs = keras.Input(input_shape, name="images")
    if small_images:
        x = _conv_bn(inputs, widths[0], 3, stem_stride or 1, "stem")
    else:
        x = _conv_bn(inputs, widths[0], 7, stem_stride or 2, "stem")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    block = _bottleneck_block if depth == 50 else _basic_block
    for stage, (filters, repeats) in enumerate(zip(widths, blocks, strict=True)):
        for index in range(repeats):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, strides, f"stage{stage + 1}_block{index + 1}")
    if grid_size is None:
        outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        cells = int(grid_size)
        x = keras.layers.AdaptiveAveragePooling2D((cells, cells), name="pool")(x)
        outputs = keras.layers.Flatten(name="features")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")
