"""Tests for keras_siamese.datasets: real Fashion-MNIST, synthetic IDX files, TFDS mocks."""

import gzip
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_siamese import datasets
from keras_siamese.datasets import fashion_mnist

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
requires_fashion_mnist = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SYSTEM_DIR, "t10k-labels-idx1-ubyte.gz")),
    reason="real Fashion-MNIST files are not installed (apt-get install dataset-fashion-mnist)",
)


# ----------------------------------------------------------------------------- helpers


def write_idx(path, array, magic=None, truncate_bytes=0):
    """Writes `array` (uint8) as a gzipped IDX file; `magic` and truncation corrupt it."""
    array = np.asarray(array, np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(
        int(side).to_bytes(4, "big") for side in array.shape
    )
    payload = header + array.tobytes()
    if truncate_bytes:
        payload = payload[:-truncate_bytes]
    with gzip.open(path, "wb") as file:
        file.write(payload)


def write_split(directory, split="train", count=7, height=5, width=6, seed=0, labels=None):
    """Writes a synthetic split to `directory`; returns the pixel and label arrays."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, height, width)).astype(np.uint8)
    if labels is None:
        labels = rng.integers(0, 10, count).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


@pytest.fixture
def synthetic_dir(tmp_path, monkeypatch):
    """A data directory read first (and only) by the Fashion-MNIST loader."""
    monkeypatch.setenv("KERAS_SIAMESE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIRS", ())
    return tmp_path


def to_numpy(dataset):
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


# ----------------------------------------------------------------------------- real data


@requires_fashion_mnist
def test_real_fashion_mnist_arrays_have_the_published_counts():
    train_images, train_labels = datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = datasets.load_arrays("fashion_mnist", "test")
    assert train_images.shape == (60000, 28, 28, 1) and train_images.dtype == np.uint8
    assert train_labels.shape == (60000,) and train_labels.dtype == np.int64
    assert test_images.shape == (10000, 28, 28, 1) and test_labels.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(train_labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
    assert train_images.max() == 255 and train_images.min() == 0
    assert len(datasets.FASHION_MNIST_CLASSES) == datasets.num_classes("fashion_mnist") == 10


@requires_fashion_mnist
def test_real_fashion_mnist_dataset_matches_arrays():
    dataset = datasets.load("fashion_mnist", split="test")
    image_spec, label_spec = dataset.element_spec
    assert image_spec.shape == (28, 28, 1) and image_spec.dtype == tf.uint8
    assert label_spec.shape == () and label_spec.dtype == tf.int64
    assert int(dataset.cardinality()) == 10000
    images, labels = datasets.load_arrays("fashion_mnist", "test")
    first_images, first_labels = next(iter(dataset.batch(16)))
    np.testing.assert_array_equal(first_images.numpy(), images[:16])
    np.testing.assert_array_equal(first_labels.numpy(), labels[:16])

    unsupervised = datasets.load("fashion_mnist", split="test[:4]", as_supervised=False)
    assert unsupervised.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
    np.testing.assert_array_equal(np.stack(list(unsupervised.as_numpy_iterator())), images[:4])


@requires_fashion_mnist
def test_parsed_arrays_are_cached_and_read_only():
    first, _ = datasets.load_arrays("fashion_mnist", "test")
    second, _ = datasets.load_arrays("fashion_mnist", "test")
    assert np.shares_memory(first, second)
    assert not first.flags.writeable


@requires_fashion_mnist
@pytest.mark.parametrize(
    "split, start, stop",
    [
        ("test[:1000]", 0, 1000),
        ("test[9990:]", 9990, 10000),
        ("test[10:20]", 10, 20),
        ("test[-5:]", 9995, 10000),
        ("test[:10%]", 0, 1000),
        ("test[25%:50%]", 2500, 5000),
        ("test[:-10%]", 0, 9000),
    ],
)
def test_split_slicing(split, start, stop):
    images, labels = datasets.load_arrays("fashion_mnist", "test")
    sliced_images, sliced_labels = datasets.load_arrays("fashion_mnist", split)
    np.testing.assert_array_equal(sliced_images, images[start:stop])
    np.testing.assert_array_equal(sliced_labels, labels[start:stop])
    assert int(datasets.load("fashion_mnist", split=split).cardinality()) == stop - start


@requires_fashion_mnist
def test_split_concatenation():
    images, labels = datasets.load_arrays("fashion_mnist", "train[:3]+test[-2:]")
    train_images, _ = datasets.load_arrays("fashion_mnist", "train")
    test_images, _ = datasets.load_arrays("fashion_mnist", "test")
    np.testing.assert_array_equal(images, np.concatenate([train_images[:3], test_images[-2:]]))
    assert labels.shape == (5,)


@pytest.mark.parametrize(
    "split, message",
    [
        ("validation", "must be 'train' or 'test'"),
        ("train[:5", "must be 'train' or 'test'"),
        ("train[a:b]", "integers or percentages"),
        ("train[:150%]", "between -100% and 100%"),
        ("test[10:10]", "selects no examples"),
    ],
)
def test_bad_split_raises(synthetic_dir, split, message):
    write_split(synthetic_dir, "train")
    write_split(synthetic_dir, "test")
    with pytest.raises(ValueError, match=re.escape(message) + ".*" + re.escape(f"split={split!r}")):
        datasets.load_arrays("fashion_mnist", split)


# ----------------------------------------------------------------------------- resize, channels


@requires_fashion_mnist
@pytest.mark.parametrize("image_size", [(14, 10), (56, 42)])
def test_resize_matches_pillow_antialiased_bilinear(image_size):
    image_module = pytest.importorskip("PIL.Image")
    images, _ = datasets.load_arrays("fashion_mnist", "test[:20]")
    resized, _ = to_numpy(datasets.load("fashion_mnist", "test[:20]", image_size=image_size))
    assert resized.shape == (20, *image_size, 1) and resized.dtype == np.uint8
    height, width = image_size
    reference = np.stack(
        [
            np.asarray(
                image_module.fromarray(image[..., 0]).resize((width, height), image_module.BILINEAR)
            )
            for image in images
        ]
    )
    difference = np.abs(resized[..., 0].astype(int) - reference.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.25


def test_resize_keeps_constant_images_and_same_size_is_exact(synthetic_dir):
    images, _ = write_split(synthetic_dir, "train", count=3, height=8, width=8)
    same, _ = to_numpy(datasets.load("fashion_mnist", image_size=8))
    np.testing.assert_array_equal(same[..., 0], images)
    write_idx(synthetic_dir / "train-images-idx3-ubyte.gz", np.full((3, 8, 8), 201, np.uint8))
    resized, _ = to_numpy(datasets.load("fashion_mnist", image_size=(5, 13)))
    assert resized.shape == (3, 5, 13, 1)
    np.testing.assert_array_equal(resized, 201)


def test_channel_conversion(synthetic_dir):
    images, labels = write_split(synthetic_dir, "train", count=4)
    rgb, rgb_labels = to_numpy(datasets.load("fashion_mnist", channels=3))
    assert rgb.shape == (4, 5, 6, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], images)
    np.testing.assert_array_equal(rgb_labels, labels)
    unchanged, _ = to_numpy(datasets.load("fashion_mnist", channels=1))
    np.testing.assert_array_equal(unchanged[..., 0], images)
    resized_rgb, _ = to_numpy(datasets.load("fashion_mnist", image_size=3, channels=3))
    assert resized_rgb.shape == (4, 3, 3, 3)


def test_rgb_to_grayscale_matches_luma_reference():
    with tfds.testing.mock_data(num_examples=4):
        rgb, _ = to_numpy(datasets.load("cifar10", "train"))
        gray, _ = to_numpy(datasets.load("cifar10", "train", channels=1))
    assert gray.shape == (4, 32, 32, 1) and gray.dtype == np.uint8
    reference = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    assert np.abs(gray[..., 0] - reference).max() <= 1.0


def test_unsupported_channel_conversion_raises():
    with pytest.raises(ValueError, match=r"1 -> 3.*4 channels.*Received: channels=1"):
        datasets._image_converter(4, None, 1)


# ----------------------------------------------------------------------------- synthetic files


def test_synthetic_round_trip_is_exact(synthetic_dir):
    train_images, train_labels = write_split(synthetic_dir, "train", count=7, seed=1)
    test_images, test_labels = write_split(synthetic_dir, "test", count=3, seed=2)
    images, labels = datasets.load_arrays("fashion_mnist", "train")
    np.testing.assert_array_equal(images[..., 0], train_images)
    np.testing.assert_array_equal(labels, train_labels)
    assert images.shape == (7, 5, 6, 1) and labels.dtype == np.int64
    loaded_images, loaded_labels = to_numpy(datasets.load("fashion_mnist", split="test"))
    np.testing.assert_array_equal(loaded_images[..., 0], test_images)
    np.testing.assert_array_equal(loaded_labels, test_labels)


def test_rewritten_file_is_parsed_again(synthetic_dir):
    write_split(synthetic_dir, "train", count=7, seed=1)
    first, _ = datasets.load_arrays("fashion_mnist", "train")
    new_images, _ = write_split(synthetic_dir, "train", count=7, seed=3)
    path = synthetic_dir / "train-images-idx3-ubyte.gz"
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second, _ = datasets.load_arrays("fashion_mnist", "train")
    np.testing.assert_array_equal(second[..., 0], new_images)
    assert not np.array_equal(first, second)


@requires_fashion_mnist
def test_environment_directory_wins_and_incomplete_directories_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SIAMESE_DATA_DIR", str(tmp_path))
    write_split(tmp_path, "train", count=7)
    assert datasets.load_arrays("fashion_mnist", "train")[0].shape == (7, 5, 6, 1)
    # No test files in tmp_path: the installed copy is used.
    assert datasets.load_arrays("fashion_mnist", "test")[0].shape == (10000, 28, 28, 1)


def test_wrong_magic_number_raises(synthetic_dir):
    write_split(synthetic_dir, "train")
    path = synthetic_dir / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((7, 5, 6)), magic=2052)
    expected = re.escape(str(path)) + r".*magic number 2052, expected 2051"
    with pytest.raises(ValueError, match=expected):
        datasets.load_arrays("fashion_mnist", "train")


def test_truncated_payload_raises(synthetic_dir):
    write_split(synthetic_dir, "train")
    path = synthetic_dir / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((7, 5, 6)), truncate_bytes=30)
    with pytest.raises(
        ValueError, match=re.escape(str(path)) + r".*expected 210 bytes.*found 180"
    ):
        datasets.load("fashion_mnist")


def test_truncated_gzip_stream_raises(synthetic_dir):
    write_split(synthetic_dir, "train", count=50)
    path = synthetic_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*could not be decompressed"):
        datasets.load_arrays("fashion_mnist", "train")


def test_image_and_label_count_mismatch_raises(synthetic_dir):
    write_split(synthetic_dir, "train", count=7, labels=np.zeros(6, np.uint8))
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte\.gz holds 7 images but .*train-labels-idx1-ubyte\.gz "
        r"holds 6 labels",
    ):
        datasets.load_arrays("fashion_mnist", "train")


def test_label_out_of_range_raises(synthetic_dir):
    write_split(synthetic_dir, "train", count=3, labels=np.array([0, 10, 2], np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz holds label 10"):
        datasets.load_arrays("fashion_mnist", "train")


def test_missing_files_raise_file_not_found(synthetic_dir, monkeypatch):
    missing = synthetic_dir / "does-not-exist"
    monkeypatch.setenv("KERAS_SIAMESE_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError) as raised:
        datasets.load("fashion_mnist", split="test")
    message = str(raised.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert f"{missing} (no such directory)" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "KERAS_SIAMESE_DATA_DIR" in message


def test_partial_directory_lists_missing_files(synthetic_dir):
    write_idx(synthetic_dir / "train-images-idx3-ubyte.gz", np.zeros((2, 3, 3)))
    with pytest.raises(FileNotFoundError, match=r"missing train-labels-idx1-ubyte\.gz\)"):
        datasets.load_arrays("fashion_mnist", "train")


# ----------------------------------------------------------------------------- TFDS


def test_unknown_name_lists_fashion_mnist_and_close_matches():
    with pytest.raises(
        ValueError, match=r"'fashion_mnist'.*tfds.list_builders.*'cifar10'.*Received: name='cifar1'"
    ):
        datasets.load("cifar1")


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_mock_gives_uint8_images_and_int64_labels(name, shape):
    with tfds.testing.mock_data(num_examples=5):
        images, labels = to_numpy(datasets.load(name, split="train"))
        unsupervised = datasets.load(name, split="test", as_supervised=False)
        resized, _ = to_numpy(datasets.load(name, split="train", image_size=16, channels=3))
    assert images.shape == (5, *shape) and images.dtype == np.uint8
    assert labels.shape == (5,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 10
    assert unsupervised.element_spec == tf.TensorSpec(shape, tf.uint8)
    assert resized.shape == (5, 16, 16, 3) and resized.dtype == np.uint8
    assert datasets.num_classes(name) == 10


def test_unprepared_tfds_dataset_raises_with_build_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'mnist' is not prepared.*tfds build mnist"):
        datasets.load("mnist")


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"name": 3}, TypeError, "Received: name=3"),
        ({"split": 1}, TypeError, "Received: split=1"),
        ({"as_supervised": "yes"}, TypeError, "Received: as_supervised='yes'"),
        ({"image_size": 0}, ValueError, "Received: image_size=0"),
        ({"image_size": (4, -1)}, ValueError, r"Received: image_size=\(4, -1\)"),
        ({"image_size": (1, 2, 3)}, TypeError, r"Received: image_size=\(1, 2, 3\)"),
        ({"image_size": 1.5}, TypeError, "Received: image_size=1.5"),
        ({"image_size": True}, TypeError, "Received: image_size=True"),
        ({"channels": 2}, ValueError, "Received: channels=2"),
        ({"channels": "3"}, TypeError, "Received: channels='3'"),
    ],
)
def test_bad_arguments_raise(arguments, error, message):
    arguments = {"name": "fashion_mnist", **arguments}
    with pytest.raises(error, match=message):
        datasets.load(**arguments)


def test_load_arrays_rejects_other_datasets():
    with pytest.raises(ValueError, match="Received: name='mnist'"):
        datasets.load_arrays("mnist")
