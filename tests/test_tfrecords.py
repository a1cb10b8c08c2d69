"""Tests of from_tfrecords: sharded round trips, serialized tensors, and bad records."""

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import datasets


def example(image_bytes, label=None, index=None):
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))}
    for key, value in (("label", label), ("index", index)):
        if value is not None:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(directory, images, shards=3, encoder=lambda image: tf.io.encode_png(image)):
    """Writes image i with label i % 4 and index i to shard i % shards; returns the paths."""
    paths = [
        str(directory / f"train-{shard:05d}-of-{shards:05d}.tfrecord") for shard in range(shards)
    ]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    for index, image in enumerate(images):
        data = encoder(image).numpy()
        writers[index % shards].write(example(data, label=index % 4, index=index))
    for writer in writers:
        writer.close()
    return paths


def random_images(count=10, shape=(6, 5, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype("uint8")


def by_index(dataset):
    """Images ordered by their `index` feature (the dataset yields (image, index) pairs)."""
    pairs = sorted(dataset.as_numpy_iterator(), key=lambda pair: int(pair[1]))
    return np.stack([image for image, _ in pairs]), [int(index) for _, index in pairs]


def test_sharded_png_round_trip_is_exact_and_interleaved(tmp_path):
    images = random_images()
    write_shards(tmp_path, images)
    pattern = str(tmp_path / "train-*.tfrecord")
    dataset = datasets.from_tfrecords(pattern, None, label_key="index", shuffle=False)
    assert dataset.element_spec == (
        tf.TensorSpec((6, 5, 3), tf.uint8), tf.TensorSpec((), tf.int64)
    )
    order = [int(index) for _, index in dataset.as_numpy_iterator()]
    assert order == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # one record from each shard in turn
    decoded, indices = by_index(dataset)
    np.testing.assert_array_equal(decoded, images)
    shuffled = datasets.from_tfrecords(pattern, None, label_key="index", seed=1)
    assert [int(i) for _, i in shuffled.as_numpy_iterator()] != order
    np.testing.assert_array_equal(by_index(shuffled)[0], images)


def test_labels_resizing_channels_and_batches(tmp_path):
    images = random_images()
    paths = write_shards(tmp_path, images, shards=2)
    dataset = datasets.from_tfrecords(
        paths, image_size=4, label_key="label", channels=1, batch_size=4, shuffle=False
    )
    batches = list(dataset.as_numpy_iterator())
    assert [batch[0].shape for batch in batches] == [(4, 4, 4, 1)] * 2 + [(2, 4, 4, 1)]
    labels = np.concatenate([batch[1] for batch in batches])
    assert sorted(labels.tolist()) == sorted([i % 4 for i in range(10)])
    unlabelled = datasets.from_tfrecords(paths, None, shuffle=False)
    assert unlabelled.element_spec == tf.TensorSpec((6, 5, 3), tf.uint8)


def test_jpeg_records_are_close(tmp_path):
    images = np.full((4, 8, 8, 3), 120, "uint8")
    images[:, :4] = 30
    write_shards(tmp_path, images, shards=1, encoder=lambda i: tf.io.encode_jpeg(i, quality=95))
    dataset = datasets.from_tfrecords(str(tmp_path / "*"), None, label_key="index", shuffle=False)
    decoded, _ = by_index(dataset)
    difference = np.abs(decoded.astype(int) - images)
    assert difference.mean() < 6 and difference.max() < 16  # ringing at the edge


@pytest.mark.parametrize("channels", [4, 13])
def test_serialized_tensors_with_many_channels(tmp_path, channels):
    images = random_images(5, (4, 4, channels), seed=channels)
    write_shards(tmp_path, images, shards=2, encoder=tf.io.serialize_tensor)
    dataset = datasets.from_tfrecords(
        str(tmp_path / "*.tfrecord"), None, label_key="index", channels=None, shuffle=False
    )
    assert dataset.element_spec[0] == tf.TensorSpec((4, 4, channels), tf.uint8)
    np.testing.assert_array_equal(by_index(dataset)[0], images)
    with pytest.raises(ValueError, match=rf"{channels} channels.*Received: channels=3"):
        datasets.from_tfrecords(str(tmp_path / "*.tfrecord"), None)


def test_bad_patterns_files_and_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"matches no file.*Received: file_pattern="):
        datasets.from_tfrecords(str(tmp_path / "*.tfrecord"), 8)
    paths = write_shards(tmp_path, random_images(4), shards=2)
    keys = r"features \['image', 'index', 'label'\].*image_key='img'"
    with pytest.raises(ValueError, match=keys):
        datasets.from_tfrecords(paths, 8, image_key="img")
    with pytest.raises(ValueError, match=r"int64 feature.*Received: label_key='image'"):
        datasets.from_tfrecords(paths, 8, label_key="image")
    not_records = tmp_path / "notes.tfrecord"
    not_records.write_text("plain text, not records")
    with pytest.raises(ValueError, match=rf"{not_records} is not a readable TFRecord file"):
        datasets.from_tfrecords(str(tmp_path / "*.tfrecord"), 8)
    text = tmp_path / "text.records"
    with tf.io.TFRecordWriter(str(text)) as writer:
        writer.write(example(b"hello, not an image"))
    with pytest.raises(ValueError, match=rf"{text}: its `image` feature holds neither"):
        datasets.from_tfrecords(str(text), 8)


def test_corrupt_record_mid_stream_is_skipped_or_raises(tmp_path):
    images = random_images(4)
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for index, image in enumerate(images):
            data = tf.io.encode_png(image).numpy()
            writer.write(example(data[:40] if index == 2 else data, index=index))
    skipping = datasets.from_tfrecords(path, None, label_key="index", on_error="skip")
    assert sorted(int(index) for _, index in skipping.as_numpy_iterator()) == [0, 1, 3]
    raising = datasets.from_tfrecords(path, None, label_key="index", shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(raising.as_numpy_iterator())
