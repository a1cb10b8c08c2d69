"""A pixel limit read from an image's header before it is decoded, in Python and in the graph.

A compressed image is small and its decoded pixels are not: a 1.2 MB PNG of 20000x20000
pixels decodes to 1.2 GB, and `tf.io.decode_image` allocates that before it looks at the
data. Every reader of encoded images (`from_directory`, `from_tfrecords`, `from_numpy_files`,
and the `embed_bytes` signature of an export) therefore reads the width and height from the
header and refuses an image of more than `max_pixels` pixels (width x height, per frame)
before decoding it. `DEFAULT_MAX_PIXELS` is 4096 x 4096; pass `max_pixels=None` to accept
any size.

`encoded_size` reads the size with TensorFlow string ops only (so a SavedModel needs nothing
of ours): the PNG IHDR chunk (width and height at bytes 16-24), the GIF logical screen (bytes
6-10), the BMP header (bytes 18-26), the WebP VP8/VP8L/VP8X headers, and for JPEG the SOFn
frame header through `tf.io.extract_jpeg_shape` (which parses the markers without decoding).
"""

from __future__ import annotations

import tensorflow as tf

from keras_siamese import validation

DEFAULT_MAX_PIXELS = 4096 * 4096
_HEAD = 32  # header bytes read
_SIDE_CLAMP = 2**31  # sides are clamped before multiplying, so int64 cannot overflow


def check_max_pixels(max_pixels: object) -> int | None:
    """None (no limit) or a positive integer; returns it as an int."""
    if max_pixels is None:
        return None
    return validation.check_integer(
        "max_pixels", max_pixels, minimum=1, meaning=" (width x height) or None for no limit"
    )


def too_many_pixels(height: int, width: int, max_pixels: int | None) -> str | None:
    """The reason to refuse an image of `height` x `width` pixels, or None to accept it."""
    if max_pixels is None or height * width <= max_pixels:
        return None
    return (
        f"is {height}x{width} = {height * width} pixels, more than max_pixels={max_pixels} "
        "(read from its header, before decoding). Shrink it, or pass a larger max_pixels "
        "(None for no limit)."
    )


def _unsigned(values: tf.Tensor, start: int, count: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `count` bytes of `values` (int64 bytes) from `start`."""
    order = range(count) if big_endian else range(count - 1, -1, -1)
    number = tf.constant(0, tf.int64)
    for index in order:
        number = number * 256 + values[start + index]
    return number


def _webp_size(values: tf.Tensor, chunk: tf.Tensor) -> tf.Tensor:
    """`[height, width]` of a WebP file from its first chunk (VP8X, VP8L or VP8)."""
    extended = tf.stack([_unsigned(values, 27, 3, False), _unsigned(values, 24, 3, False)]) + 1
    b1, b2, b3 = values[22], values[23], values[24]
    lossless = tf.stack(
        [
            1 + (b3 % 16) * 1024 + b2 * 4 + b1 // 64,
            1 + (b1 % 64) * 256 + values[21],
        ]
    )
    lossy = tf.stack([_unsigned(values, 28, 2, False), _unsigned(values, 26, 2, False)]) % 16384
    return tf.where(
        tf.equal(chunk, b"VP8X"), extended, tf.where(tf.equal(chunk, b"VP8L"), lossless, lossy)
    )


def encoded_size(image_bytes: tf.Tensor) -> tf.Tensor:
    """`[height, width]` (int64) that the header of an encoded image declares.

    Works in any graph (tf.data, a SavedModel) with TensorFlow ops only and reads only the
    header. Bytes of another format give `[0, 0]`, leaving the refusal to the decoder.

    Args:
        image_bytes: a scalar string tensor: a PNG, JPEG, GIF, BMP or WebP file.

    Returns:
        An int64 tensor `[height, width]`.

    Example:
        >>> encoded_size(tf.io.encode_png(tf.zeros((5, 7, 3), tf.uint8))).numpy()
        array([5, 7])
    """
    head = tf.strings.substr(image_bytes, 0, _HEAD)
    head = tf.strings.substr(tf.strings.join([head, b"\0" * _HEAD]), 0, _HEAD)
    values = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def starts(position: int, text: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(head, position, len(text)), text)

    png = tf.stack([_unsigned(values, 20, 4, True), _unsigned(values, 16, 4, True)])
    gif = tf.stack([_unsigned(values, 8, 2, False), _unsigned(values, 6, 2, False)])
    signed = tf.stack([_unsigned(values, 22, 4, False), _unsigned(values, 18, 4, False)])
    bmp = tf.abs(tf.where(signed >= 2**31, signed - 2**32, signed))
    webp = _webp_size(values, tf.strings.substr(head, 12, 4))
    size = tf.zeros([2], tf.int64)
    for matches, found in (
        (starts(0, b"\x89PNG\r\n\x1a\n"), png),
        (tf.logical_or(starts(0, b"GIF87a"), starts(0, b"GIF89a")), gif),
        (starts(0, b"BM"), bmp),
        (tf.logical_and(starts(0, b"RIFF"), starts(8, b"WEBP")), webp),
    ):
        size = tf.where(matches, found, size)
    return tf.cond(
        starts(0, b"\xff\xd8\xff"),
        lambda: tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64),
        lambda: size,
    )


def assert_pixels(
    image_bytes: tf.Tensor, max_pixels: int | None, name: tf.Tensor | str, setting: str
) -> list[tf.Operation]:
    """Ops that fail, naming the image, when its header declares more than `max_pixels`.

    Run the decoder under `tf.control_dependencies(assert_pixels(...))`: then an image over
    the limit is refused before a byte of it is decoded.

    Args:
        image_bytes: a scalar string tensor.
        max_pixels: the limit, or None (no ops).
        name: what the message calls the image (a path, `image_bytes[3]`, ...).
        setting: where the limit is set, for the message
            (e.g. `export_for_serving(max_pixels=...)`).

    Returns:
        A list of ops (empty without a limit).
    """
    if max_pixels is None:
        return []
    size = tf.minimum(encoded_size(image_bytes), _SIDE_CLAMP)
    pixels = size[0] * size[1]
    message = tf.strings.format(
        "{} is {}x{} = {} pixels, more than max_pixels={} (read from its header, before "
        f"decoding). Send a smaller image, or raise the limit with {setting}. "
        "Received: {}x{}",
        (name, size[0], size[1], pixels, max_pixels, size[0], size[1]),
    )
    return [tf.debugging.Assert(pixels <= max_pixels, [message], summarize=1)]
