"""In-graph image decoding for the `embed_bytes` signature: bytes -> uint8 pixels of the model.

Before anything is decoded, the image's width and height are read from its header with
TensorFlow string ops (`keras_siamese.datasets.pixel_limit.encoded_size`: PNG IHDR, JPEG SOFn,
GIF logical screen, BMP and WebP headers), and an image of more than `max_pixels` pixels is
refused with an `InvalidArgumentError` that names it (`image_bytes[3] is 20000x20000 = ...`):
a 1.2 MB PNG of 20000x20000 pixels would otherwise cost 1.2 GiB and seconds of CPU per request.

The conversion mirrors `keras_siamese.datasets.load(image_size=..., channels=...)`, the
pipeline that feeds training, so a served image is preprocessed exactly as a training image:

1. decode the bytes with `tf.io.decode_image` (JPEG, PNG, GIF — its first frame —, BMP or WebP),
   keeping the file's own channels;
2. drop an alpha channel (grayscale+alpha -> grayscale, RGBA -> RGB);
3. RGB -> grayscale for a 1-channel model, with `tf.image.rgb_to_grayscale` on the uint8 pixels;
4. resize to the model's `(height, width)` when the size differs: bilinear with antialiasing,
   rounded and clipped back to uint8 (an image of the right size is left untouched, so PNG
   input is pixel-exact);
5. grayscale -> RGB for a 3-channel model (the gray value copied to the three channels).

The result goes through the same path as the `images` of `serving_default`.
"""

from __future__ import annotations

import tensorflow as tf

from keras_siamese.datasets import pixel_limit

DESCRIPTION = (
    "size read from the header first, over max_pixels (width x height) refused undecoded; "
    "tf.io.decode_image (JPEG, PNG, GIF first frame, BMP, WebP) with the file's channels; "
    "alpha dropped; RGB->grayscale with tf.image.rgb_to_grayscale for 1-channel models; "
    "resized to the model size when it differs (bilinear, antialias, rounded to uint8); "
    "grayscale->RGB by copying for 3-channel models; as keras_siamese.datasets.load"
)


def _drop_alpha(image: tf.Tensor) -> tf.Tensor:
    """Keeps the colour channels of a 1-4 channel image: 2 -> 1 and 4 -> 3."""
    channels = tf.shape(image)[-1]
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    return tf.cond(has_alpha, lambda: image[..., : channels - 1], lambda: image)


def _to_grayscale(image: tf.Tensor) -> tf.Tensor:
    """1 or 3 channels -> 1 channel."""
    is_color = tf.equal(tf.shape(image)[-1], 3)
    return tf.cond(is_color, lambda: tf.image.rgb_to_grayscale(image), lambda: image[..., :1])


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
    """1 or 3 channels -> 3 channels."""
    is_gray = tf.equal(tf.shape(image)[-1], 1)
    return tf.cond(is_gray, lambda: tf.image.grayscale_to_rgb(image[..., :1]), lambda: image)


def _resize(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Resizes a uint8 image to `image_size` as the dataset pipeline does, if it differs."""
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(image_size)))

    def resized():
        values = tf.image.resize(image, image_size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(values), 0.0, 255.0), tf.uint8)

    return tf.cond(same_size, lambda: image, resized)


def decode_image(
    image_bytes: tf.Tensor,
    image_shape: tuple[int, int, int],
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
    name: tf.Tensor | str = "the image",
) -> tf.Tensor:
    """Decodes one encoded image to uint8 pixels of `image_shape` `(height, width, channels)`.

    Args:
        image_bytes: a scalar string tensor holding a JPEG, PNG, GIF, BMP or WebP file.
        image_shape: the model's `(height, width, channels)`, channels 1 or 3.
        max_pixels: refuse, before decoding, an image whose header declares more pixels
            (width x height); None for no limit.
        name: what an error calls the image.

    Returns:
        uint8 `(height, width, channels)`.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes that are not such an image
            (`Unknown image file format`, `Input is empty`, `Invalid PNG data`, ...), or
            for an image of more than `max_pixels` pixels.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8))
        >>> decode_image(png, (16, 16, 1)).shape
        TensorShape([16, 16, 1])
    """
    height, width, channels = image_shape
    checks = pixel_limit.assert_pixels(
        image_bytes, max_pixels, name, "export_for_serving(max_pixels=...)"
    )
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False)
    image = _drop_alpha(image)
    if channels == 1:
        image = _to_grayscale(image)
    image = _resize(image, (height, width))
    if channels == 3:
        image = _to_rgb(image)
    return tf.ensure_shape(image, image_shape)


def decode_images(
    image_bytes: tf.Tensor,
    image_shape: tuple[int, int, int],
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> tf.Tensor:
    """Decodes a batch `[N]` of encoded images to uint8 `[N, height, width, channels]`.

    Args:
        image_bytes: a string tensor of shape `[N]`; each image may have its own size and
            channels.
        image_shape: the model's `(height, width, channels)`.
        max_pixels: the most pixels an image may have (checked from its header, before
            decoding; errors name it `image_bytes[i]`), or None for no limit.

    Returns:
        uint8 `[N, height, width, channels]`.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((8, 8, 1), tf.uint8))
        >>> decode_images(tf.stack([png, png]), (16, 16, 3)).shape
        TensorShape([2, 16, 16, 3])
    """
    indices = tf.range(tf.shape(image_bytes, out_type=tf.int64)[0])
    return tf.map_fn(
        lambda one: decode_image(
            one[0], image_shape, max_pixels, tf.strings.format("image_bytes[{}]", one[1])
        ),
        (image_bytes, indices),
        fn_output_signature=tf.TensorSpec(image_shape, tf.uint8),
    )
