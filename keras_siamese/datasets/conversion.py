"""Pixel conversions shared by every reader: resizing and channel conversion, in uint8.

Resizing is antialiased bilinear interpolation, rounded and clipped back to `uint8`, the
same in `load`, the folder and file readers and the exported serving graph
(`keras_siamese.export.preprocess`), so a model sees the same pixels in training and serving.
"""

from __future__ import annotations

import tensorflow as tf


def resize_uint8(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Resizes one `[H, W, C]` image (any C) to `image_size`, returning rounded `uint8`."""
    resized = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def image_converter(input_channels, image_size, channels):
    """Returns a function mapping one uint8 image of a known channel count to the request.

    Args:
        input_channels: the images' channel count (static).
        image_size: `(height, width)` or None to keep the size.
        channels: 1, 3 or None (keep).

    Raises:
        ValueError: for a conversion other than 1 -> 3 or 3 -> 1.
    """
    if channels is not None and channels != input_channels and (
        (input_channels, channels) not in ((1, 3), (3, 1))
    ):
        raise ValueError(
            "`channels` can only convert grayscale to RGB (1 -> 3) or RGB to grayscale "
            f"(3 -> 1), but the images have {input_channels} channels. "
            f"Received: channels={channels!r}"
        )

    def convert(image):
        if channels == 1 and input_channels == 3:
            image = tf.image.rgb_to_grayscale(image)
        if image_size is not None and tuple(image.shape[:2]) != image_size:
            image = resize_uint8(image, image_size)
        if channels == 3 and input_channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image

    return convert


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Converts a decoded uint8 image with 1, 2, 3 or 4 channels (known at run time only).

    Grayscale is copied to RGB, RGB becomes grayscale by luma (`tf.image.rgb_to_grayscale`, as
    `load(channels=1)`), and an alpha channel is kept for `channels=4` or added as 255
    (opaque). An alpha channel is never dropped: an image with one raises
    `InvalidArgumentError` for `channels` 1 or 3 (the folder readers refuse such files before
    streaming, from their headers; this guards the formats read without a header check).
    """
    count = tf.shape(image)[-1]
    has_color = count >= 3
    has_alpha = tf.logical_or(tf.equal(count, 2), tf.equal(count, 4))
    rgb = tf.cond(
        has_color, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3])
    )
    if channels == 4:
        alpha = tf.cond(
            has_alpha,
            lambda: image[..., -1:],
            lambda: tf.fill(tf.shape(image[..., :1]), tf.constant(255, tf.uint8)),
        )
        return tf.concat([rgb, alpha], axis=-1)
    check = tf.debugging.Assert(
        tf.logical_not(has_alpha),
        [f"An image has an alpha channel that channels={channels} would drop; read it with "
         "channels=4 or None."],
    )
    with tf.control_dependencies([check]):
        if channels == 3:
            return tf.identity(rgb)
        return tf.cond(has_color, lambda: tf.image.rgb_to_grayscale(rgb), lambda: image[..., :1])
