"""Plots: every figure is a non-empty PNG of the promised size; projector files parse."""

import math
import os

import numpy as np
import pytest
from PIL import Image

from keras_siamese import plots

RED = np.array([0xD6, 0x27, 0x28])


def png_size(path):
    assert os.path.getsize(path) > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def red_pixels(path):
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return int(np.sum(np.all(np.abs(pixels - RED) < 20, axis=-1)))


def test_training_curves_size_grows_with_panels(tmp_path):
    history = {
        "loss": [5.0, 4.0, 3.5],
        "val_loss": [5.2, 4.4, 3.9],
        "val_knn_accuracy": [None, 0.6, float("nan")],
        "contrastive_accuracy": [0.1, 0.3, 0.5],
        "representation_std": [0.5, 0.6, 0.7],
        "epoch": [0, 1, 2],
    }
    # loss (+ val_loss), knn_accuracy, contrastive_accuracy, representation_std: 4 panels.
    path = plots.training_curves(history, tmp_path / "curves.png", title="run")
    assert png_size(path) == plots.curve_figure_pixels(4) == (1200, 600)
    path = plots.training_curves({"loss": [1.0, 0.5]}, tmp_path / "sub" / "one.png")
    assert png_size(path) == plots.curve_figure_pixels(1) == (400, 300)


def test_training_curves_accepts_a_keras_history(tmp_path):
    class History:
        history = {"loss": [2.0, 1.0], "output_std": [0.9, 0.8]}

    assert png_size(plots.training_curves(History(), tmp_path / "c.png")) == (800, 300)


@pytest.mark.parametrize(
    "history, error, match",
    [
        ([1.0, 2.0], TypeError, "must be a dict"),
        ({}, ValueError, "no finite per-epoch values"),
        ({"loss": [None, float("nan")]}, ValueError, "no finite per-epoch values"),
        ({"loss": ["high", 1.0]}, ValueError, r"history\['loss'\]"),
    ],
)
def test_training_curves_rejects_bad_history(tmp_path, history, error, match):
    with pytest.raises(error, match=match):
        plots.training_curves(history, tmp_path / "c.png")


def test_retrieval_grid_frames_only_wrong_neighbours_in_red(tmp_path):
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, (3, 16, 16, 1)).astype("uint8")
    neighbours = rng.integers(0, 256, (3, 4, 16, 16, 1)).astype("uint8")
    labels = np.array([0, 1, 2])
    right = np.repeat(labels[:, None], 4, axis=1)
    correct = plots.retrieval_grid(queries, labels, neighbours, right, tmp_path / "right.png")
    wrong_labels = right.copy()
    wrong_labels[1, 2] = 0
    wrong = plots.retrieval_grid(
        queries, labels, neighbours, wrong_labels, tmp_path / "wrong.png", ["a", "b", "c"]
    )
    assert png_size(correct) == png_size(wrong) == plots.grid_figure_pixels(3, 4) == (600, 405)
    assert red_pixels(correct) == 0
    assert red_pixels(wrong) > 100


def test_retrieval_grid_takes_rgb_and_float_images(tmp_path):
    queries = np.full((8, 12, 12, 3), 200.0)
    neighbours = np.zeros((8, 8, 12, 12, 3), "float32")
    labels = np.arange(8)
    path = plots.retrieval_grid(queries, labels, neighbours, np.zeros((8, 8)), tmp_path / "g.png")
    assert png_size(path) == plots.grid_figure_pixels(8, 8) == (1080, 1080)


@pytest.mark.parametrize(
    "query_shape, neighbour_shape, neighbour_labels_shape, match",
    [
        ((2, 16, 16), (2, 3, 16, 16, 1), (2, 3), "query_images"),
        ((2, 16, 16, 1), (3, 3, 16, 16, 1), (2, 3), "neighbour_images"),
        ((2, 16, 16, 1), (2, 3, 8, 8, 1), (2, 3), "neighbour_images"),
        ((2, 16, 16, 1), (2, 3, 16, 16, 1), (2, 4), "neighbour_labels"),
    ],
)
def test_retrieval_grid_rejects_mismatched_shapes(
    tmp_path, query_shape, neighbour_shape, neighbour_labels_shape, match
):
    with pytest.raises(ValueError, match=match):
        plots.retrieval_grid(
            np.zeros(query_shape, "uint8"),
            np.zeros(2),
            np.zeros(neighbour_shape, "uint8"),
            np.zeros(neighbour_labels_shape),
            tmp_path / "g.png",
        )


def test_embedding_map_size_and_small_sets(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.repeat(np.eye(8)[:3] * 10, 20, axis=0)
    embeddings = centres + rng.normal(size=(60, 8))
    path = plots.embedding_map(
        embeddings, np.repeat([0, 1, 2], 20), tmp_path / "map.png", ["a", "b", "c"], max_points=40
    )
    expected = tuple(round(side * plots.DPI) for side in plots.MAP_INCHES)
    assert png_size(path) == expected == (700, 600)
    # Six points: the perplexity is lowered below the number of points.
    path = plots.embedding_map(embeddings[:6], np.arange(6) % 2, tmp_path / "six.png")
    assert png_size(path) == expected


@pytest.mark.parametrize(
    "embeddings, labels, kwargs, match",
    [
        (np.zeros((4, 3)), np.zeros(4), {}, "N >= 5"),
        (np.zeros((6, 3)), np.zeros(5), {}, "shapes"),
        (np.full((6, 3), np.nan), np.zeros(6), {}, "NaN"),
        (np.zeros((6, 3)), np.zeros(6), {"max_points": 2}, "max_points"),
    ],
)
def test_embedding_map_rejects_bad_input(tmp_path, embeddings, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.embedding_map(embeddings, labels, tmp_path / "map.png", **kwargs)


def test_projector_files_parse_as_tensorboard_reads_them(tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(10, 4)).astype("float32")
    images = rng.integers(0, 256, (10, 12, 12, 3)).astype("uint8")
    labels = np.arange(10) % 3
    config_path = plots.projector_files(embeddings, labels, images, tmp_path, ["a", "b\tc", "d"])
    assert config_path == os.path.join(tmp_path, plots.PROJECTOR_CONFIG)
    with open(config_path) as file:
        config = text_format.Parse(file.read(), ProjectorConfig())
    (embedding,) = config.embeddings
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / embedding.tensor_path, delimiter="\t"), embeddings, rtol=1e-5
    )
    with open(tmp_path / embedding.metadata_path) as file:
        lines = file.read().splitlines()
    assert lines[0] == "label\tclass" and lines[2] == "1\tb c" and len(lines) == 11
    assert list(embedding.sprite.single_image_dim) == [12, 12]
    columns = math.ceil(math.sqrt(10))
    with Image.open(tmp_path / embedding.sprite.image_path) as sprite:
        assert sprite.size == (columns * 12, columns * 12)
        np.testing.assert_array_equal(np.asarray(sprite)[12:24, :12], images[columns])


def test_projector_config_is_the_plugins_own_text_for_any_tensor_name(tmp_path):
    # The config is written by tensorboard.plugins.projector, under the file name the plugin
    # looks for, so quotes, backslashes, newlines and non-ASCII names survive the round trip.
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    assert plots.PROJECTOR_CONFIG == projector.metadata.PROJECTOR_FILENAME
    name = 'test "embeddings"\\2\nséance'
    images = np.zeros((3, 8, 8, 1), "uint8")
    config_path = plots.projector_files(np.eye(3), [0, 1, 2], images, tmp_path, tensor_name=name)
    with open(config_path, encoding="utf-8") as file:
        text = file.read()
    config = text_format.Parse(text, projector.ProjectorConfig())
    assert text == text_format.MessageToString(config)
    (embedding,) = config.embeddings
    assert embedding.tensor_name == name
    paths = (embedding.tensor_path, embedding.metadata_path, embedding.sprite.image_path)
    assert paths == (plots.PROJECTOR_TENSORS, plots.PROJECTOR_METADATA, plots.PROJECTOR_SPRITE)
    assert all(os.path.isfile(tmp_path / path) for path in paths)
    assert list(embedding.sprite.single_image_dim) == [8, 8]


def test_projector_sprite_is_scaled_to_tensorboards_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(plots.projector, "MAX_SPRITE_SIDE", 40)
    images = np.zeros((9, 28, 28, 1), "uint8")
    plots.projector_files(np.eye(9), np.arange(9), images, tmp_path)
    with Image.open(tmp_path / plots.PROJECTOR_SPRITE) as sprite:
        assert max(sprite.size) <= 40 and sprite.mode == "L"
    with open(tmp_path / plots.PROJECTOR_CONFIG) as file:
        assert "single_image_dim: 13" in file.read()


@pytest.mark.parametrize(
    "embeddings, labels, images, match",
    [
        (np.zeros((0, 3)), np.zeros(0), np.zeros((0, 8, 8, 1)), "N >= 1"),
        (np.zeros((3, 3)), np.zeros(3), np.zeros((2, 8, 8, 1)), "one image per embedding"),
        (np.zeros((3, 3)), np.zeros(3), np.zeros((3, 8, 8, 2)), "1 or 3"),
        (np.full((3, 3), np.inf), np.zeros(3), np.zeros((3, 8, 8, 1)), "NaN or infinite"),
    ],
)
def test_projector_files_reject_bad_input(tmp_path, embeddings, labels, images, match):
    with pytest.raises(ValueError, match=match):
        plots.projector_files(embeddings, labels, images, tmp_path)
