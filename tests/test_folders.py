"""Tests of the folder readers: from_directory (PNG/JPEG/BMP/GIF) and from_numpy_files."""

import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import datasets

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_FOLDERS = ("ankle_boot", "bag", "trouser")  # sorted, as Keras orders sub-folders


def encode(image, format_name="png", quality=95):
    if format_name == "png":
        return tf.io.encode_png(image).numpy()
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def fashion_images(count=12):
    """Fashion-MNIST test images when installed, else synthetic garments-sized noise."""
    if os.path.isfile(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        images, _ = datasets.load_arrays("fashion_mnist", f"test[:{count}]")
        return np.array(images)
    return np.random.default_rng(0).integers(0, 256, (count, 28, 28, 1)).astype("uint8")


def write_class_folders(root, images, format_name="png"):
    """Writes image i to root/<class i % 3>/<i>.<ext>; returns {path: (image, label)}."""
    written = {}
    for index, image in enumerate(images):
        label = index % len(CLASS_FOLDERS)
        folder = root / CLASS_FOLDERS[label]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:03d}.{'jpg' if format_name == 'jpeg' else format_name}"
        path.write_bytes(encode(image, format_name))
        written[str(path)] = (image, label)
    return written


def as_arrays(dataset):
    elements = list(dataset.as_numpy_iterator())
    if isinstance(elements[0], tuple):
        return np.stack([e[0] for e in elements]), np.array([e[1] for e in elements])
    return np.stack(elements), None


# ----------------------------------------------------------------------------- from_directory


def test_png_folder_gives_exactly_the_pixels_and_folder_labels(tmp_path):
    written = write_class_folders(tmp_path, fashion_images())
    dataset = datasets.from_directory(tmp_path, image_size=None, channels=1, shuffle=False)
    assert dataset.element_spec == (
        tf.TensorSpec((28, 28, 1), tf.uint8), tf.TensorSpec((), tf.int64)
    )
    assert dataset.class_names == CLASS_FOLDERS
    assert int(dataset.cardinality()) == len(written)
    images, labels = as_arrays(dataset)
    expected = [written[path] for path in dataset.file_paths]
    np.testing.assert_array_equal(images, np.stack([image for image, _ in expected]))
    np.testing.assert_array_equal(labels, [label for _, label in expected])
    # The same class indices as Keras' own reader of the folder.
    keras_dataset = keras.utils.image_dataset_from_directory(
        tmp_path, image_size=(28, 28), color_mode="grayscale", shuffle=False, verbose=False
    )
    assert tuple(keras_dataset.class_names) == dataset.class_names
    keras_labels = np.concatenate([batch[1] for batch in keras_dataset.as_numpy_iterator()])
    np.testing.assert_array_equal(np.sort(keras_labels), np.sort(labels))


def test_jpeg_folder_is_close_and_grayscale_is_copied_to_rgb(tmp_path):
    images = fashion_images()
    written = write_class_folders(tmp_path, images, "jpeg")
    dataset = datasets.from_directory(tmp_path, image_size=None, shuffle=False)  # channels=3
    decoded, _ = as_arrays(dataset)
    assert decoded.shape == (len(images), 28, 28, 3)
    expected = np.stack([written[path][0] for path in dataset.file_paths])
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], decoded[..., 0])
    difference = np.abs(decoded[..., :1].astype(int) - expected.astype(int))
    assert difference.mean() < 3.0 and difference.max() < 64


def test_resizing_equals_load_and_batching(tmp_path):
    images = fashion_images()
    write_class_folders(tmp_path, images)
    dataset = datasets.from_directory(tmp_path, image_size=(14, 10), channels=1, shuffle=False)
    resized, _ = as_arrays(dataset)
    convert = datasets._image_converter(1, (14, 10), None)
    order = [int(os.path.basename(path)[:3]) for path in dataset.file_paths]
    np.testing.assert_array_equal(
        resized, np.stack([convert(tf.constant(images[i])).numpy() for i in order])
    )
    batched = datasets.from_directory(tmp_path, image_size=16, channels=3, batch_size=5)
    shapes = [tuple(images.shape) for images, _ in batched]
    assert shapes == [(5, 16, 16, 3), (5, 16, 16, 3), (2, 16, 16, 3)]


def test_flat_folder_without_labels_at_any_depth(tmp_path):
    images = fashion_images(6)
    for index, image in enumerate(images):
        folder = tmp_path / ("nested/deeper" if index % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(encode(image))
    (tmp_path / "README.txt").write_text("not an image, not listed")
    (tmp_path / ".hidden.png").write_text("hidden files are ignored")
    dataset = datasets.from_directory(tmp_path, None, channels=1, labels=None, shuffle=False)
    assert dataset.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
    assert dataset.class_names is None and len(dataset.file_paths) == 6
    decoded, _ = as_arrays(dataset)
    order = [int(os.path.basename(path)[0]) for path in dataset.file_paths]
    np.testing.assert_array_equal(decoded, images[order])


def test_shuffle_is_seeded_and_reshuffles_each_epoch(tmp_path):
    write_class_folders(tmp_path, fashion_images())
    first = datasets.from_directory(tmp_path, None, channels=1, seed=3)
    again = datasets.from_directory(tmp_path, None, channels=1, seed=3)
    epoch_1, labels_1 = as_arrays(first)
    epoch_2, _ = as_arrays(first)
    np.testing.assert_array_equal(as_arrays(again)[0], epoch_1)
    assert not np.array_equal(epoch_1, epoch_2)
    unshuffled, labels = as_arrays(datasets.from_directory(tmp_path, None, 1, shuffle=False))
    assert sorted(labels_1.tolist()) == sorted(labels.tolist())
    assert not np.array_equal(epoch_1, unshuffled)


def test_bmp_and_gif_files_decode_like_pillow(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    expected = {}
    for name, mode in [("rgb.bmp", "RGB"), ("gray.bmp", "L"), ("palette.gif", "P")]:
        picture = image_module.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
        picture.convert(mode).save(tmp_path / name)
        expected[str(tmp_path / name)] = np.asarray(
            image_module.open(tmp_path / name).convert("RGB")
        )
    dataset = datasets.from_directory(tmp_path, None, labels=None, shuffle=False)
    for path, image in zip(dataset.file_paths, dataset.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(image, expected[path])


def test_alpha_is_kept_or_refused_never_dropped(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (5, 5, 4)).astype("uint8")
    (tmp_path / "rgba.png").write_bytes(tf.io.encode_png(rgba).numpy())
    (tmp_path / "rgb.png").write_bytes(tf.io.encode_png(rgba[..., :3]).numpy())
    with pytest.raises(ValueError, match=r"rgba\.png.*Received: channels=3"):
        datasets.from_directory(tmp_path, None, labels=None)
    dataset = datasets.from_directory(tmp_path, None, channels=4, labels=None, shuffle=False)
    rgb_image, rgba_image = dataset.as_numpy_iterator()
    np.testing.assert_array_equal(rgba_image, rgba)
    np.testing.assert_array_equal(rgb_image[..., :3], rgba[..., :3])
    np.testing.assert_array_equal(rgb_image[..., 3], 255)


# ----------------------------------------------------------------------------- bad data


def test_corrupt_and_text_files_are_named(tmp_path):
    write_class_folders(tmp_path, fashion_images(6))
    truncated = tmp_path / "bag" / "truncated.png"
    truncated.write_bytes(encode(fashion_images(1)[0])[:60])
    text = tmp_path / "trouser" / "notes.png"
    text.write_text("this is text, not a PNG")
    with pytest.raises(ValueError) as raised:
        datasets.from_directory(tmp_path, None, channels=1)
    message = str(raised.value)
    assert f"{truncated} is a truncated or corrupt PNG file" in message
    assert f"{text} is not a PNG, JPEG, BMP or GIF image" in message
    assert "2 of 8 files" in message and message.endswith("Received: on_error='raise'")


def test_on_error_skip_counts_bad_files_in_one_warning(tmp_path):
    write_class_folders(tmp_path, fashion_images(6))
    (tmp_path / "bag" / "empty.png").write_bytes(b"")
    (tmp_path / "bag" / "cut.jpg").write_bytes(encode(fashion_images(1)[0], "jpeg")[:-40])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = datasets.from_directory(tmp_path, None, channels=1, on_error="skip")
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1 and messages[0].startswith("Skipped 2 of 8 files")
    assert "empty.png is empty" in messages[0] and "cut.jpg is a truncated" in messages[0]
    assert len(list(dataset)) == 6


@pytest.mark.parametrize(
    "layout, arguments, match",
    [
        ("empty", {}, r"holds no files ending in .png.*Received: path="),
        ("flat", {}, r"no sub-folders.*labels=None.*Received: labels='inferred'"),
        ("one_class", {}, r"one sub-folder, 'bag'.*Received: labels='inferred'"),
        ("mixed_channels", {"channels": None, "labels": None},
         r"mixed channel counts \(1 channel\(s\): 1 files.*3 channel.*Received: channels=None"),
        ("mixed_sizes", {"labels": None}, r"different sizes \(5x5.*Received: image_size=None"),
        ("two_classes", {"class_names": ["bag", "coat"]},
         r"Received: class_names=\['bag', 'coat'\]"),
        ("two_classes", {"labels": "folders"}, r"Received: labels='folders'"),
        ("two_classes", {"on_error": "ignore"}, r"Received: on_error='ignore'"),
        ("two_classes", {"batch_size": 0}, r"Received: batch_size=0"),
        ("two_classes", {"channels": 2}, r"Received: channels=2"),
        ("empty_class", {}, r"Class folders \['coat'\].*hold no readable files"),
    ],
)
def test_bad_folders_raise_before_streaming(tmp_path, layout, arguments, match):
    image = fashion_images(1)[0]
    if layout == "flat":
        (tmp_path / "0.png").write_bytes(encode(image))
    if layout in ("one_class", "two_classes", "empty_class"):
        (tmp_path / "bag").mkdir()
        (tmp_path / "bag" / "0.png").write_bytes(encode(image))
    if layout == "two_classes":
        (tmp_path / "shirt").mkdir()
        (tmp_path / "shirt" / "0.png").write_bytes(encode(image))
    if layout == "empty_class":
        (tmp_path / "coat").mkdir()
        (tmp_path / "coat" / "readme.txt").write_text("no images")
    if layout == "mixed_channels":
        (tmp_path / "gray.png").write_bytes(encode(image))
        (tmp_path / "rgb.png").write_bytes(encode(np.repeat(image, 3, axis=-1)))
    if layout == "mixed_sizes":
        (tmp_path / "small.png").write_bytes(encode(image[:5, :5]))
        (tmp_path / "large.png").write_bytes(encode(image))
    with pytest.raises(ValueError, match=match):
        datasets.from_directory(tmp_path, **{"image_size": None, **arguments})


def test_missing_directory_raises():
    with pytest.raises(ValueError, match=r"existing directory.*Received: path='/no/such/dir'"):
        datasets.from_directory("/no/such/dir", 16)


def test_list_image_files_is_the_unshuffled_order(tmp_path):
    write_class_folders(tmp_path, fashion_images(6))
    files = datasets.list_image_files(tmp_path, class_names=["trouser", "bag", "ankle_boot"])
    assert files.class_names == ("trouser", "bag", "ankle_boot")
    assert [os.path.basename(os.path.dirname(p)) for p in files.file_paths[:2]] == ["trouser"] * 2
    assert files.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert {header.format for header in files.headers} == {"png"}
    dataset = datasets.from_directory(
        tmp_path, None, 1, shuffle=False, class_names=["trouser", "bag", "ankle_boot"]
    )
    assert dataset.file_paths == list(files.file_paths)
    assert [int(label) for _, label in dataset] == files.labels.tolist()


# ----------------------------------------------------------------------------- .npy files


@pytest.mark.parametrize("channels", [4, 13])
def test_numpy_files_with_many_channels_round_trip(tmp_path, channels):
    rng = np.random.default_rng(channels)
    stacks = rng.integers(0, 256, (6, 9, 8, channels)).astype("uint8")
    for index, stack in enumerate(stacks):
        folder = tmp_path / ("forest" if index % 2 else "river")
        folder.mkdir(exist_ok=True)
        np.save(folder / f"{index}.npy", stack)
    dataset = datasets.from_numpy_files(tmp_path, None, shuffle=False)
    assert dataset.element_spec[0] == tf.TensorSpec((9, 8, channels), tf.uint8)
    images, labels = as_arrays(dataset)
    order = [int(os.path.basename(path)[0]) for path in dataset.file_paths]
    np.testing.assert_array_equal(images, stacks[order])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and dataset.class_names == ("forest", "river")
    resized = datasets.from_numpy_files(tmp_path, (4, 4), channels=channels, batch_size=6)
    assert next(iter(resized))[0].shape == (6, 4, 4, channels)


def test_numpy_files_scale_other_dtypes_with_value_range(tmp_path):
    bands = np.array([[[0, 5000, 10000, 20000]]], "uint16")  # reflectances, [1, 1, 4]
    np.save(tmp_path / "a.npy", bands)
    with pytest.raises(ValueError, match=r"uint16 arrays.*Received: value_range=None"):
        datasets.from_numpy_files(tmp_path, None, labels=None)
    dataset = datasets.from_numpy_files(tmp_path, None, labels=None, value_range=(0, 10000))
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), [[[0, 128, 255, 255]]])


def test_numpy_files_bad_data(tmp_path):
    np.save(tmp_path / "four.npy", np.zeros((4, 4, 4), "uint8"))
    np.save(tmp_path / "three.npy", np.zeros((4, 4, 3), "uint8"))
    with pytest.raises(ValueError, match=r"mixed channel counts \(3: 1 files.*Received: path="):
        datasets.from_numpy_files(tmp_path, None, labels=None)
    os.remove(tmp_path / "three.npy")
    with pytest.raises(ValueError, match=r"4 channels.*Received: channels=13"):
        datasets.from_numpy_files(tmp_path, None, channels=13, labels=None)
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros((4, 4, 4), "uint8"))
    cut.write_bytes(cut.read_bytes()[:-5])
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ValueError, match=re.escape(str(cut)) + r" has \d+ bytes.*truncated"):
        datasets.from_numpy_files(tmp_path, None, labels=None)
    with pytest.warns(UserWarning, match=r"Skipped 2 of 3 files(.|\n)*text\.npy is not a readable"):
        dataset = datasets.from_numpy_files(tmp_path, None, labels=None, on_error="skip")
    assert len(list(dataset)) == 1


# ----------------------------------------------------------------------------- the example


@pytest.mark.slow
def test_simclr_image_folder_example_runs_end_to_end(tmp_path):
    images = fashion_images(48)
    for split, part in (("train", images[:36]), ("test", images[36:])):
        write_class_folders(tmp_path / split, part)
    example = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples",
                           "simclr_image_folder.py")
    flags = [
        f"--data_dir={tmp_path / 'train'}", f"--test_dir={tmp_path / 'test'}",
        "--image_size=16", "--channels=1", "--encoder=resnet10", "--encoder_width=4",
        "--epochs=1", "--batch_size=12", "--knn_k=3",
        f"--model_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}",
    ]
    result = subprocess.run(
        [sys.executable, example, *flags], capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kNN top-1 on --test_dir" in result.stdout
    assert os.path.isdir(tmp_path / "export" / "1")
    with open(tmp_path / "run" / "results.json") as file:
        assert 0.0 <= json.load(file)["knn_simclr"] <= 1.0
