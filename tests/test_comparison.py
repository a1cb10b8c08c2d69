"""compare_encoders, raw_pixels and format_table: numbers against independent computations."""

import keras
import numpy as np
import pytest

import keras_siamese as ks
from keras_siamese.evaluation import compare_encoders, format_table, raw_pixels

COLUMNS = ("kNN", "linear probe", "linear probe, 1% of labels")


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def tiny_data(rng, count):
    """Two classes of 4x4 images: bright top half or bright bottom half, plus noise."""
    labels = rng.integers(0, 2, count)
    images = rng.integers(0, 80, (count, 4, 4, 1))
    images[labels == 0, :2] += 170
    images[labels == 1, 2:] += 170
    return images.astype("uint8"), labels.astype("int64")


def numpy_weighted_knn(memory, memory_labels, queries, k, temperature, num_classes):
    """The weighted kNN of InstDisc written out: cosine top-k, exp(s / T) votes per class."""
    memory = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    predictions = []
    for similarities in queries @ memory.T:
        nearest = np.argsort(-similarities, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for index in nearest:
            votes[memory_labels[index]] += np.exp(similarities[index] / temperature)
        predictions.append(np.argmax(votes))
    return np.array(predictions)


def test_raw_pixels_scales_and_flattens_in_float32():
    images = np.arange(2 * 3 * 2 * 1).reshape(2, 3, 2, 1).astype("uint8") * 10
    pixels = raw_pixels((3, 2, 1))
    features = keras.ops.convert_to_numpy(pixels(images))
    assert features.dtype == np.float32 and features.shape == (2, 6)
    np.testing.assert_allclose(features, images.reshape(2, 6) / 255, rtol=1e-6)


def test_compare_encoders_raw_pixel_knn_matches_a_numpy_weighted_knn():
    rng = np.random.default_rng(0)
    train, test = tiny_data(rng, 240), tiny_data(rng, 60)
    # Noisy labels so that the kNN is not trivially perfect.
    flipped = rng.random(240) < 0.3
    train = (train[0], np.where(flipped, 1 - train[1], train[1]))
    rows = compare_encoders({"raw pixels": raw_pixels((4, 4, 1))}, train, test, probe_epochs=2)
    assert list(rows) == ["raw pixels"] and tuple(rows["raw pixels"]) == COLUMNS
    flat = [images.reshape(len(images), -1) / 255 for images in (train[0], test[0])]
    predictions = numpy_weighted_knn(flat[0], train[1], flat[1], 200, 0.1, 2)
    assert rows["raw pixels"]["kNN"] == pytest.approx(np.mean(predictions == test[1]))
    for value in rows["raw pixels"].values():
        assert 0.0 <= value <= 1.0


def test_compare_encoders_keeps_the_order_and_the_label_fraction_names_the_column():
    rng = np.random.default_rng(1)
    train, test = tiny_data(rng, 200), tiny_data(rng, 40)
    inputs = keras.Input((4, 4, 1))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    constant = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(scaled * 0.0)))
    encoders = {"zeros": constant, "pixels": raw_pixels((4, 4, 1))}
    rows = compare_encoders(encoders, train, test, probe_epochs=20, label_fraction=0.1)
    assert list(rows) == ["zeros", "pixels"]
    assert tuple(rows["pixels"]) == ("kNN", "linear probe", "linear probe, 10% of labels")
    # Features that say nothing vote with the class counts; the separable pixels do not.
    assert rows["pixels"]["linear probe"] == pytest.approx(1.0)
    assert rows["pixels"]["kNN"] > rows["zeros"]["kNN"]


def test_format_table_writes_markdown_in_percent():
    rows = {
        "raw pixels": {"kNN": 0.85331, "linear probe": 0.8},
        "SimCLR": {"kNN": 0.9, "linear probe": 0.91249},
    }
    assert format_table(rows) == (
        "| Encoder | kNN | linear probe |\n"
        "|---|---|---|\n"
        "| raw pixels | 85.3 | 80.0 |\n"
        "| SimCLR | 90.0 | 91.2 |"
    )


def test_format_table_selects_and_renames_columns_with_own_decimals_and_missing_cells():
    rows = {"pixels": {"roc_auc": 0.71234}, "triplet": {"roc_auc": 0.9, "seconds": 12.6}}
    table = format_table(
        rows,
        columns={"roc_auc": "ROC AUC", "seconds": "train (s)"},
        name_header="Embedding",
        scale=1,
        digits={"roc_auc": 4, "seconds": 0},
    )
    assert table.splitlines() == [
        "| Embedding | ROC AUC | train (s) |",
        "|---|---|---|",
        "| pixels | 0.7123 | — |",
        "| triplet | 0.9000 | 13 |",
    ]


def test_the_public_names_are_exported():
    assert ks.evaluation.compare_encoders is compare_encoders
    assert ks.evaluation.format_table is format_table
    assert ks.evaluation.comparison_columns(0.01) == COLUMNS


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: raw_pixels((28, 28)),
            ValueError,
            r"image_shape.*Received: image_shape=\(28, 28\)",
        ),
        (lambda: raw_pixels("28x28"), TypeError, "Received: image_shape='28x28'"),
        (lambda: raw_pixels((28, 0, 1)), ValueError, "image_shape"),
        (lambda: format_table({}), ValueError, "Received: rows={}"),
        (lambda: format_table([1]), TypeError, "Received: rows=\\[1\\]"),
        (lambda: format_table({"a": {"x": "high"}}), TypeError, "Received: x='high'"),
        (lambda: format_table({"a": {"x": 1}}, columns=[]), ValueError, "columns"),
        (lambda: format_table({"a": {"x": 1}}, scale="100"), TypeError, "scale"),
    ],
)
def test_bad_table_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"encoders": {}}, ValueError, "encoders"),
        ({"encoders": [raw_pixels]}, TypeError, "Received: encoders="),
        ({"encoders": {"a": 3}}, TypeError, "Received: 'a': int"),
        ({"probe_epochs": 0}, ValueError, "probe_epochs"),
        ({"label_fraction": 1.5}, ValueError, "label_fraction"),
        ({"seed": -1}, ValueError, "seed"),
        ({"train": "images"}, TypeError, "train"),
    ],
)
def test_bad_comparison_inputs_name_the_argument_before_any_work(changes, error, match):
    data = tiny_data(np.random.default_rng(0), 8)
    arguments = {"encoders": {"pixels": raw_pixels((4, 4, 1))}, "train": data, "test": data}
    with pytest.raises(error, match=match):
        compare_encoders(**{**arguments, **changes})
