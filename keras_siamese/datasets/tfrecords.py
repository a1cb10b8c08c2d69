"""`from_tfrecords`: stream images stored in sharded TFRecord files, read interleaved."""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from keras_siamese import validation
from keras_siamese.datasets import (
    arguments,
    conversion,
    image_headers,
    in_memory,
    named_errors,
    pixel_limit,
)

_CYCLE_LENGTH = 16  # shards read at once


def from_tfrecords(
    file_pattern: str | os.PathLike | Sequence[str | os.PathLike],
    image_size: int | tuple[int, int] | None,
    image_key: str = "image",
    label_key: str | None = None,
    channels: int | None = 3,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    on_error: str = "raise",
    shuffle_buffer_size: int = 1024,
    compression_type: str | None = None,
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Streams images (and labels) from TFRecord files of `tf.train.Example`s.

    The image feature `image_key` is a bytes feature holding either an encoded PNG, JPEG, BMP
    or GIF image, or a `uint8` tensor serialized with `tf.io.serialize_tensor` (for any
    channel count, e.g. 13-band multispectral stacks); which one is read from the first record.
    The label feature `label_key`, if any, is an int64.

    Shards are read interleaved (up to 16 at once, in parallel), in a reshuffled order every
    epoch, and records are shuffled in blocks of `shuffle_buffer_size`. Epoch n's order (the
    n-th iteration over the dataset) depends on `(seed, n)` alone, not on TensorFlow's
    global seed nor on what ran before. Before anything is
    yielded, the first record of every shard is read and checked: a file that is not a
    TFRecord file, missing keys or an unreadable image raise here, naming the file and key.
    Later records are only checked when decoded: with `on_error="skip"` records that fail
    then are dropped, with `"raise"` the iteration stops with an error naming the shard and
    the record's index in it (`shard data/train-3.tfrecord record 1041`), after TensorFlow's
    own reason in the log. An encoded image of more than `max_pixels` pixels is refused from
    its header, in the graph, before it is decoded.

    Encoded images are converted to `channels` as in `from_directory` (never dropping an
    alpha channel); serialized tensors must already have `channels` channels. Resizing is
    antialiased bilinear, rounded back to `uint8`.

    Args:
        file_pattern: a glob pattern (`"data/train-*.tfrecord"`), a path, or a list of them.
        image_size: `(height, width)` or an int to resize to, or None to keep the stored
            size (all records must then share it).
        image_key: the name of the image feature.
        label_key: the name of an int64 label feature, or None for images alone.
        channels: 1, 3 or 4 for encoded images, any count for serialized tensors, or None
            for the first record's count.
        batch_size: batch size, or None for single images.
        shuffle: reshuffle shards and records every epoch.
        seed: the shuffle seed.
        on_error: `"raise"` or `"skip"`.
        shuffle_buffer_size: records per shuffled block (encoded images, so memory grows
            with it: a few blocks are held at once).
        compression_type: `None`/`""`, `"ZLIB"` or `"GZIP"`, as `tf.data.TFRecordDataset`.
        max_pixels: the most pixels (width x height, from the header) an encoded image may
            have; 4096 x 4096 by default, None for no limit. Serialized tensors are stored
            whole, so no limit applies to them.

    Returns:
        A dataset of `uint8` images `[H, W, C]`, or of `(image, int64 label)` pairs when
        `label_key` is given (batched with `batch_size`).

    Raises:
        ValueError: for a pattern that matches no file, a file that is not a TFRecord file,
            a key missing from the records, an image that cannot be read, or bad arguments.

    Example:
        >>> dataset = from_tfrecords("shards/train-*", 32, label_key="label", batch_size=64)
        >>> images, labels = next(iter(dataset))
        >>> images.shape
        TensorShape([64, 32, 32, 3])
    """
    image_size = arguments.normalize_image_size(image_size)
    if channels is not None:
        channels = validation.check_integer("channels", channels, minimum=1)
    batch_size = arguments.check_batching(batch_size, shuffle, seed)
    arguments.check_on_error(on_error)
    shuffle_buffer_size = validation.check_integer("shuffle_buffer_size", shuffle_buffer_size)
    for name, key in (("image_key", image_key), ("label_key", label_key)):
        if not (isinstance(key, str) and key) and not (name == "label_key" and key is None):
            raise TypeError(f"`{name}` must be a feature name. Received: {name}={key!r}")
    max_pixels = pixel_limit.check_max_pixels(max_pixels)
    files = _match(file_pattern)
    first = _first_records(files, compression_type, file_pattern)
    encoded, stored_shape = _inspect(first, image_key, label_key)
    _check_first_size(first[0], encoded, stored_shape, max_pixels)
    channels = _output_channels(encoded, stored_shape, channels)
    if image_size is None:
        image_size = stored_shape[:2]
    read = _record_reader(encoded, image_key, label_key, channels, image_size, max_pixels)
    dataset = _records(files, compression_type, shuffle, seed, shuffle_buffer_size)
    dataset = named_errors.map_naming_errors(
        dataset, read, lambda element: element["name"], on_error
    )
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _records(files, compression_type, shuffle, seed, block_size) -> tf.data.Dataset:
    """The shards' numbered records, interleaved, shuffled by stateless draws if `shuffle`.

    Epoch n (the n-th iteration) reads the shards in a permutation keyed by `(seed, n)` and
    permutes each block of `block_size` records by `(seed, n, block)`: the order depends on
    the seed alone and only whole blocks are held in memory.
    """

    def epoch(epoch_seed):
        names = tf.constant(files)
        if epoch_seed is not None:
            order = in_memory.stateless_order(len(files), _fold_in(epoch_seed, 0))
            names = tf.gather(names, order)
        records = tf.data.Dataset.from_tensor_slices(names).interleave(
            lambda file: _numbered_records(file, compression_type),
            cycle_length=min(len(files), _CYCLE_LENGTH),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if epoch_seed is None:
            return records
        return _shuffle_blocks(records, block_size, _fold_in(epoch_seed, 1))

    if not shuffle:
        return epoch(None)
    return in_memory.epoch_seeds(seed, endless=False).flat_map(epoch)


def _fold_in(seed, index):
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))


def _shuffle_blocks(records: tf.data.Dataset, block_size: int, seed) -> tf.data.Dataset:
    """Permutes each block of `block_size` records, block i by the stateless `(seed, i)`."""

    def permute(index, block):
        order = in_memory.stateless_order(tf.shape(block["record"])[0], _fold_in(seed, index))
        return {key: tf.gather(values, order) for key, values in block.items()}

    return records.batch(block_size).enumerate().map(permute).unbatch()


def _numbered_records(file: tf.Tensor, compression_type) -> tf.data.Dataset:
    """A shard's records, each with the name messages give it: `shard <file> record <i>`."""
    records = tf.data.TFRecordDataset(file, compression_type=compression_type).enumerate()
    return records.map(
        lambda index, record: {
            "record": record,
            "name": tf.strings.join(["shard ", file, " record ", tf.strings.as_string(index)]),
        }
    )


def _check_first_size(file: str, encoded: bool, stored_shape, max_pixels) -> None:
    height, width = stored_shape[:2]
    reason = pixel_limit.too_many_pixels(height, width, max_pixels) if encoded else None
    if reason is not None:
        raise ValueError(
            f"The first record of {file} holds an image that {reason} "
            f"Received: max_pixels={max_pixels}"
        )


def _record_reader(encoded: bool, image_key, label_key, channels: int, image_size, max_pixels):
    """The `tf.data` function parsing one record into a `uint8` image (and int64 label)."""
    features = {image_key: tf.io.FixedLenFeature([], tf.string)}
    if label_key is not None:
        features[label_key] = tf.io.FixedLenFeature([], tf.int64)

    def read(element):
        example = tf.io.parse_single_example(element["record"], features)
        if encoded:
            data = example[image_key]
            checks = pixel_limit.assert_pixels(
                data, max_pixels, element["name"], "from_tfrecords(max_pixels=...)"
            )
            with tf.control_dependencies(checks):
                image = tf.io.decode_image(
                    data, channels=0, dtype=tf.uint8, expand_animations=False
                )
            image = conversion.to_channels(image, channels)
        else:
            image = tf.io.parse_tensor(example[image_key], tf.uint8)
            image = tf.reshape(image, tf.concat([tf.shape(image)[:2], [-1]], axis=0))
        image = tf.ensure_shape(image, (None, None, channels))
        image = conversion.resize_uint8(image, image_size)
        image = tf.ensure_shape(image, (*image_size, channels))
        if label_key is None:
            return image
        return image, tf.cast(example[label_key], tf.int64)

    return read


def _match(file_pattern) -> list[str]:
    patterns = (
        [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
    )
    if not patterns or not all(isinstance(p, (str, os.PathLike)) for p in patterns):
        raise TypeError(
            "`file_pattern` must be a glob pattern, a path or a list of them. "
            f"Received: file_pattern={file_pattern!r}"
        )
    files = sorted({file for p in patterns for file in tf.io.gfile.glob(os.fspath(p))})
    files = [file for file in files if not tf.io.gfile.isdir(file)]
    if not files:
        raise ValueError(f"`file_pattern` matches no file. Received: file_pattern={file_pattern!r}")
    return files


def _first_records(files, compression_type, file_pattern) -> tuple[str, bytes]:
    """Reads the first record of every shard; returns the first non-empty shard's."""
    first = None
    for file in files:
        try:
            records = list(tf.data.TFRecordDataset(file, compression_type=compression_type).take(1))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(
                f"{file} is not a readable TFRecord file ({error.message.splitlines()[0]}). "
                "Remove it from the pattern, or pass compression_type='GZIP' or 'ZLIB' if "
                f"it is compressed. Received: compression_type={compression_type!r}"
            ) from error
        if records and first is None:
            first = (file, records[0].numpy())
    if first is None:
        raise ValueError(
            f"The {len(files)} files matching `file_pattern` hold no records. "
            f"Received: file_pattern={file_pattern!r}"
        )
    return first


def _inspect(first, image_key, label_key) -> tuple[bool, tuple[int, int, int]]:
    """Checks the first record's features; returns (encoded image?, its stored shape)."""
    file, record = first
    try:
        features = tf.train.Example.FromString(record).features.feature
    except Exception as error:  # noqa: BLE001 - protobuf raises its own DecodeError.
        raise ValueError(f"{file} holds records that are not tf.train.Example protos.") from error
    keys = sorted(features.keys())
    for name, key, kind in (
        ("image_key", image_key, "bytes_list"),
        ("label_key", label_key, "int64_list"),
    ):
        if key is None:
            continue
        if key not in features or features[key].WhichOneof("kind") != kind:
            raise ValueError(
                f"`{name}` must name a {kind.split('_')[0]} feature of the records, but the "
                f"first record of {file} has the features {keys}. Received: {name}={key!r}"
            )
    values = features[image_key].bytes_list.value
    if len(values) != 1:
        raise ValueError(
            f"`image_key` must name a feature of one image per record; the first record of "
            f"{file} holds {len(values)}. Received: image_key={image_key!r}"
        )
    data = values[0]
    try:
        header = image_headers.header_from_bytes(data, f"The first record of {file}")
        return True, (header.height, header.width, header.channels)
    except image_headers.InvalidImageError as image_error:
        try:
            tensor = tf.io.parse_tensor(data, tf.uint8)
        except tf.errors.InvalidArgumentError:
            raise ValueError(
                f"{image_error.path}: its `{image_key}` feature holds neither an encoded PNG, "
                "JPEG, BMP or GIF image nor a uint8 tensor from tf.io.serialize_tensor "
                f"({image_error.reason}). Received: image_key={image_key!r}"
            ) from image_error
    if tensor.shape.rank not in (2, 3):
        raise ValueError(
            f"The first record of {file} holds a tensor of shape {tensor.shape}; expected one "
            f"image [height, width] or [height, width, channels]. Received: image_key={image_key!r}"
        )
    shape = tuple(tensor.shape) + ((1,) if tensor.shape.rank == 2 else ())
    return False, shape


def _output_channels(encoded: bool, stored_shape, channels: int | None) -> int:
    stored = stored_shape[-1]
    if channels is None:
        return stored
    if encoded and channels not in (1, 3, 4):
        raise ValueError(
            "`channels` must be 1, 3, 4 or None for records of encoded images. "
            f"Received: channels={channels}"
        )
    if encoded and channels in (1, 3) and stored in (2, 4):
        raise ValueError(
            f"The records' images have an alpha channel that channels={channels} would drop. "
            f"Pass channels=4 or None. Received: channels={channels}"
        )
    if not encoded and channels != stored:
        raise ValueError(
            f"The records hold serialized tensors with {stored} channels, and serialized "
            f"tensors are not converted. Received: channels={channels}"
        )
    return channels
