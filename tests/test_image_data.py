"""benchmarks/image_data.py (colour32, clutter64, clutter96 from Fashion-MNIST) and the report
of benchmarks/any_images.py: seeded, the promised geometry and colours, PNG round trips."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_siamese as ks

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import any_images  # noqa: E402
import image_data  # noqa: E402

LIMIT = 40


@pytest.mark.parametrize("name, side", [("colour32", 32), ("clutter64", 64), ("clutter96", 96)])
def test_each_data_set_is_seeded_and_keeps_the_fashion_mnist_labels(name, side, monkeypatch):
    monkeypatch.setattr(image_data, "CHUNK", 16)  # the first chunks only: cheap
    images, labels = image_data.build(name, "test", seed=0, limit=LIMIT)
    again, _ = image_data.build(name, "test", seed=0, limit=LIMIT)
    other, _ = image_data.build(name, "test", seed=1, limit=LIMIT)
    assert images.shape == (LIMIT, side, side, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    _, expected = ks.datasets.load_arrays("fashion_mnist", "test")
    np.testing.assert_array_equal(labels, expected[:LIMIT])
    # The first images are the same whatever the limit (chunks are seeded by their start).
    np.testing.assert_array_equal(image_data.build(name, "test", limit=5)[0], images[:5])


def test_colour32_draws_each_shape_in_its_own_colour_on_its_own_background(monkeypatch):
    monkeypatch.setattr(image_data, "CHUNK", 16)
    images, _ = image_data.build("colour32", "train", limit=LIMIT)
    shapes, _ = ks.datasets.load_arrays("fashion_mnist", "train")
    shapes = shapes[:LIMIT].reshape(LIMIT, 28, 28)
    backgrounds = images[:, 0, 0].astype(float)  # the 2-pixel border is background only
    np.testing.assert_array_equal(images[:, :2].reshape(LIMIT, -1, 3).std(axis=1), 0)
    rows, cols = np.nonzero(shapes[0] == 255)  # fully opaque pixels: the foreground colour
    foreground = images[0, rows[0] + 2, cols[0] + 2].astype(float)
    assert np.linalg.norm(foreground - backgrounds[0]) >= image_data.MIN_COLOUR_DISTANCE - 1
    # Colour carries no class: backgrounds differ across images of one class.
    assert len({tuple(colour) for colour in backgrounds.astype(int)}) == LIMIT


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"Unknown data set 'cifar'.*Received: name='cifar'"):
        image_data.build("cifar")


def test_a_folder_round_trips_and_is_written_once(tmp_path):
    images, labels = image_data.build("colour32", "test", limit=12)
    folder = image_data.write_folder(images, labels, str(tmp_path / "test"))
    for index in (0, 7, 11):
        path = os.path.join(folder, image_data.CLASS_NAMES[labels[index]], f"{index:05d}.png")
        decoded = tf.io.decode_png(tf.io.read_file(path)).numpy()
        np.testing.assert_array_equal(decoded, images[index])
    assert open(os.path.join(folder, ".complete")).read() == "12\n"
    os.remove(path)  # a complete folder is kept as it is
    image_data.write_folder(images, labels, folder)
    assert not os.path.exists(path)


def test_the_report_puts_raw_pixels_and_random_init_beside_each_run(tmp_path):
    protocols = {"knn": 1.0, "linear": 2.0, "linear_1%": 3.0, "linear_10%": 4.0, "dims": 8}
    line = {
        "data": "colour32", "tag": "defaults", "flags": [], "train_seconds": 600.0,
        "fit_seconds": 540.0, "load_before": 0.5, "precision": "float32",
        "view_shape": [16, 16, 3], "total_steps": 2340, "raw_pixels": protocols,
        "random_init": dict(protocols, knn=5.0), "trained": dict(protocols, knn=9.0),
    }  # fmt: skip
    text = any_images.markdown([line])
    assert "| raw pixels | 1.0 | 2.0 | 3.0 | 4.0 |" in text
    assert "| random init | 5.0 |" in text and "| trained | 9.0 |" in text
    assert "training 9.0 min, the command 10.0 min" in text
    output = tmp_path / "lines.jsonl"
    output.write_text(json.dumps(line) + "\n")
    arguments = type("Arguments", (), {"output": str(output), "data": "colour32"})
    assert any_images._earlier_baselines(arguments)["baselines_from"] == "defaults"
    arguments.data = "clutter64"
    assert any_images._earlier_baselines(arguments) is None
