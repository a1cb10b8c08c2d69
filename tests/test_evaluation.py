"""Tests of keras_siamese.evaluation: feature extraction and the weighted kNN classifier."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import evaluation


def reference_knn(memory, memory_labels, queries, k, temperature, num_classes):
    """Brute force in float64: full similarity matrix, argsort, weighted vote."""
    memory = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    similarities = queries @ memory.T
    predictions = []
    for row in similarities:
        nearest = np.argsort(-row, kind="stable")[:k]
        # Shifting by the row maximum scales every weight of the row by one constant.
        weights = np.exp((row[nearest] - row[nearest].max()) / temperature)
        votes = np.zeros(num_classes)
        np.add.at(votes, memory_labels[nearest], weights)
        predictions.append(np.argmax(votes))
    return np.array(predictions)


def random_problem(memory_count=300, query_count=100, dims=16, num_classes=10, seed=0):
    """Gaussian features around per-class centres, so the vote is neither trivial nor random."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dims))
    memory_labels = rng.integers(0, num_classes, memory_count)
    query_labels = rng.integers(0, num_classes, query_count)
    memory = centres[memory_labels] + 1.5 * rng.normal(size=(memory_count, dims))
    queries = centres[query_labels] + 1.5 * rng.normal(size=(query_count, dims))
    return (
        memory.astype("float32"),
        memory_labels,
        queries.astype("float32"),
        query_labels,
    )


def flatten_encoder(input_shape=(4, 4, 1)):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten()])


class SubclassedEncoder(keras.Model):
    """An encoder without a symbolic input, like the trainers of this package."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(5)

    def call(self, images, training=False):
        return self.dense(self.flatten(images))


# --------------------------------------------------------------------------- knn_predict


@pytest.mark.parametrize(
    "k, temperature", [(1, 0.1), (5, 0.07), (20, 0.5), (50, 1.0), (200, 0.1), (200, 0.01)]
)
def test_knn_predict_matches_numpy_reference(k, temperature):
    memory, memory_labels, queries, _ = random_problem()
    predictions = evaluation.knn_predict(
        memory, memory_labels, queries, k=k, temperature=temperature, num_classes=10
    )
    expected = reference_knn(memory, memory_labels, queries, k, temperature, 10)
    assert predictions.dtype == np.int64
    assert predictions.shape == (100,)
    np.testing.assert_array_equal(predictions, expected)


def test_knn_predict_reference_differs_between_k():
    # Guards the reference test above: k matters on this problem.
    memory, memory_labels, queries, _ = random_problem()
    one = evaluation.knn_predict(memory, memory_labels, queries, k=1)
    many = evaluation.knn_predict(memory, memory_labels, queries, k=50)
    assert np.any(one != many)


def test_knn_predict_chunked_equals_one_block():
    memory, memory_labels, queries, _ = random_problem(query_count=101)
    chunked = evaluation.knn_predict(memory, memory_labels, queries, k=20, chunk_size=7)
    one_block = evaluation.knn_predict(memory, memory_labels, queries, k=20, chunk_size=10_000)
    np.testing.assert_array_equal(chunked, one_block)


def test_knn_predict_clamps_k_to_memory_size():
    memory, memory_labels, queries, _ = random_problem(memory_count=40)
    clamped = evaluation.knn_predict(memory, memory_labels, queries, k=1000, temperature=0.5)
    everything = evaluation.knn_predict(memory, memory_labels, queries, k=40, temperature=0.5)
    np.testing.assert_array_equal(clamped, everything)
    expected = reference_knn(memory, memory_labels, queries, 40, 0.5, 10)
    np.testing.assert_array_equal(clamped, expected)


def test_knn_predict_tiny_temperature_does_not_overflow():
    # exp(1 / 1e-3) overflows float32 and float64; the vote must still be the nearest class.
    memory, memory_labels, queries, _ = random_problem()
    predictions = evaluation.knn_predict(memory, memory_labels, queries, k=10, temperature=1e-3)
    expected = reference_knn(memory, memory_labels, queries, 10, 1e-3, 10)
    np.testing.assert_array_equal(predictions, expected)


def test_knn_predict_one_hot_features_are_perfect():
    labels = np.random.default_rng(1).integers(0, 10, 2000)
    features = np.eye(10, dtype="float32")[labels]
    predictions = evaluation.knn_predict(features, labels, features, k=200)
    np.testing.assert_array_equal(predictions, labels)


def test_knn_predict_shuffled_labels_give_chance():
    rng = np.random.default_rng(2)
    memory = rng.normal(size=(2000, 32)).astype("float32")
    queries = rng.normal(size=(2000, 32)).astype("float32")
    memory_labels = rng.permutation(np.arange(2000) % 10)
    query_labels = rng.permutation(np.arange(2000) % 10)
    predictions = evaluation.knn_predict(memory, memory_labels, queries, k=200)
    accuracy = np.mean(predictions == query_labels)
    assert 0.05 < accuracy < 0.2


def test_knn_predict_uses_num_classes_and_empty_queries():
    memory = np.eye(3, dtype="float32")
    labels = np.array([0, 1, 2])
    assert evaluation.knn_predict(memory, labels, memory, k=1, num_classes=7).tolist() == [0, 1, 2]
    empty = evaluation.knn_predict(memory, labels, np.zeros((0, 3)), k=1)
    assert empty.shape == (0,)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"k": 0}, ValueError, "`k` must be an integer >= 1.*Received: k=0"),
        ({"k": 2.5}, TypeError, "`k` must be an int"),
        (
            {"temperature": 0.0},
            ValueError,
            "`temperature` must be finite and > 0.*temperature=0.0",
        ),
        ({"temperature": -1.0}, ValueError, "Received: temperature=-1.0"),
        ({"temperature": float("nan")}, ValueError, "`temperature` must be finite"),
        ({"chunk_size": 0}, ValueError, "`chunk_size` must be an integer >= 1"),
        ({"num_classes": 2}, ValueError, r"\[0, num_classes\).*num_classes=2"),
        ({"memory_labels": np.array([0, 1, -1])}, ValueError, "must lie in"),
        ({"memory_labels": np.array([0, 1])}, ValueError, "`memory_labels` must be integers"),
        ({"memory_labels": np.array([0.0, 1.0, 2.0])}, ValueError, "dtype=float64"),
        ({"query_features": np.zeros((2, 4))}, ValueError, "same feature size"),
        ({"query_features": np.zeros((2, 3, 1))}, ValueError, "must be rank 2"),
        ({"memory_features": np.zeros((0, 3)), "memory_labels": np.zeros(0, int)}, ValueError,
         "is empty"),
    ],
)
def test_knn_predict_rejects_bad_input(overrides, error, match):
    arguments = {
        "memory_features": np.eye(3, dtype="float32"),
        "memory_labels": np.array([0, 1, 2]),
        "query_features": np.eye(3, dtype="float32"),
        "k": 1,
    }
    arguments.update(overrides)
    with pytest.raises(error, match=match):
        evaluation.knn_predict(**arguments)


# --------------------------------------------------------------------------- extract_features


def test_extract_features_numpy_batched_and_unbatched_agree():
    encoder = tiny_encoder()
    images = random_images(10)
    labels = np.arange(10) % 3
    expected = encoder.predict(images.astype("float32") / 255.0, verbose=0)

    scaled = {"input_scale": 1 / 255}
    from_numpy = evaluation.extract_features(encoder, (images, labels), batch_size=3,
                                             progress=False, **scaled)
    unbatched = tf.data.Dataset.from_tensor_slices((images, labels))
    from_unbatched = evaluation.extract_features(encoder, unbatched, batch_size=4,
                                                 progress=False, **scaled)
    from_batched = evaluation.extract_features(encoder, unbatched.batch(6), progress=True,
                                               **scaled)

    for features, feature_labels in (from_numpy, from_unbatched, from_batched):
        assert features.dtype == np.float32 and features.shape == (10, 16)
        assert feature_labels.dtype == np.int64
        np.testing.assert_array_equal(feature_labels, labels)
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_unbatched[0], from_numpy[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(from_batched[0], from_numpy[0], rtol=1e-6, atol=1e-7)


def test_extract_features_uses_inference_mode():
    # Dropout at rate 0.99 would zero almost everything in training mode.
    encoder = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dropout(0.99), keras.layers.Identity()]
    )
    points = np.ones((5, 4), "float32")
    features, _ = evaluation.extract_features(
        encoder, (points, np.zeros(5, int)), progress=False, input_scale=1.0
    )
    np.testing.assert_array_equal(features, points)


def test_extract_features_subclassed_encoder_detects_batching_from_labels():
    encoder = SubclassedEncoder()
    images = random_images(7, shape=(4, 4, 1))
    labels = np.arange(7)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    unbatched = evaluation.extract_features(
        encoder, dataset, batch_size=2, progress=False, input_scale=1.0
    )
    batched = evaluation.extract_features(encoder, dataset.batch(3), progress=False,
                                          input_scale=1.0)
    expected = np.asarray(encoder(images.astype("float32")))
    np.testing.assert_allclose(unbatched[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[0], expected, rtol=1e-5, atol=1e-5)


def test_extract_features_rejects_rank_4_output():
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
    data = (random_images(3, shape=(4, 4, 1)), np.arange(3))
    with pytest.raises(ValueError, match=r"`encoder` must map .* rank-2.*\(3, 4, 4, 2\)"):
        evaluation.extract_features(encoder, data, progress=False, input_scale=1 / 255)
    with pytest.raises(ValueError, match=r"`encoder` must map .* rank-2"):
        evaluation.knn_accuracy(encoder, data, data, k=1, progress=False, input_scale=1 / 255)


@pytest.mark.parametrize(
    "data, error, match",
    [
        (np.zeros((3, 4, 4, 1)), TypeError, "tuple `\\(images, labels\\)`"),
        ((np.zeros((3, 4, 4, 1)), np.arange(2)), ValueError,
         "len\\(images\\)=3, len\\(labels\\)=2"),
        ((np.zeros((3, 4, 4, 1)), np.eye(3)), ValueError, "labels.shape=\\(3, 3\\)"),
        ((np.zeros((0, 4, 4, 1)), np.zeros(0, int)), ValueError, "holds no examples"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((3, 4, 4, 1))), ValueError,
         "Dataset of `\\(images, labels\\)` pairs"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((3, 4)), np.arange(3))).batch(2),
         ValueError, "images of rank 2"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((3, 4, 4, 1)), np.eye(3))).batch(2),
         ValueError, "not one-hot"),
    ],
)
def test_extract_features_rejects_bad_data(data, error, match):
    with pytest.raises(error, match=match):
        evaluation.extract_features(flatten_encoder(), data, progress=False, input_scale=1.0)


def test_extract_features_rejects_bad_batch_size():
    data = (np.zeros((3, 4, 4, 1)), np.arange(3))
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1. Received: "):
        evaluation.extract_features(flatten_encoder(), data, batch_size=0, input_scale=1.0)
    with pytest.raises(TypeError, match="`batch_size` must be an int"):
        evaluation.extract_features(flatten_encoder(), data, batch_size=2.0, input_scale=1.0)


# --------------------------------------------------------------------------- knn_accuracy


def test_knn_accuracy_with_identity_encoder_matches_numpy():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    memory_labels = rng.integers(0, 4, 60)
    query_labels = rng.integers(0, 4, 25)
    memory_images = (centres[memory_labels] + 1.2 * rng.normal(size=(60, 16))).reshape(60, 4, 4, 1)
    query_images = (centres[query_labels] + 1.2 * rng.normal(size=(25, 16))).reshape(25, 4, 4, 1)
    memory_images = memory_images.astype("float32")
    query_images = query_images.astype("float32")

    accuracy = evaluation.knn_accuracy(
        flatten_encoder(),
        (memory_images, memory_labels),
        tf.data.Dataset.from_tensor_slices((query_images, query_labels)),
        k=7,
        temperature=0.2,
        batch_size=8,
        chunk_size=4,
        progress=False,
        input_scale=1.0,
    )
    predictions = reference_knn(
        memory_images.reshape(60, 16), memory_labels, query_images.reshape(25, 16), 7, 0.2, 4
    )
    expected = np.mean(predictions == query_labels)
    assert isinstance(accuracy, float)
    assert 0.3 < expected < 1.0  # neither trivial nor random, so the comparison means something
    assert accuracy == pytest.approx(expected, abs=1e-12)


def test_knn_accuracy_checks_arguments_before_any_forward_pass():
    def encoder(images, training=False):
        raise AssertionError("the encoder must not run")

    data = (np.zeros((3, 4)), np.arange(3))
    with pytest.raises(ValueError, match="Received: k=0"):
        evaluation.knn_accuracy(encoder, data, data, k=0)
    with pytest.raises(ValueError, match="Received: temperature=0"):
        evaluation.knn_accuracy(encoder, data, data, temperature=0)
    with pytest.raises(TypeError, match="Argument `queries` must be a tuple"):
        evaluation.knn_accuracy(encoder, data, [1, 2, 3])


# --------------------------------------------------------------------------- image range


def small_simclr():
    keras.utils.set_random_seed(0)
    return ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))


def test_a_model_its_embedding_model_and_its_scaled_encoder_give_the_same_features():
    # Data hold [0, 255] images; the encoder takes [0, 1]. Each way in gives its features.
    model = small_simclr()
    images, labels = random_images(6), np.arange(6)
    expected = np.asarray(model.encoder(images.astype("float32") / 255.0, training=False))
    for candidate, options in (
        (model, {}),
        (model.embedding_model(), {}),
        (model.encoder, {"input_scale": 1 / 255}),
    ):
        features, _ = evaluation.extract_features(
            candidate, (images, labels), progress=False, **options
        )
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    # The unscaled [0, 255] images give other features: the range matters.
    unscaled, _ = evaluation.extract_features(
        model.encoder, (images, labels), progress=False, input_scale=1.0
    )
    assert not np.allclose(unscaled, expected, rtol=1e-3, atol=1e-3)


def test_a_bare_encoder_needs_an_explicit_input_scale():
    model = small_simclr()
    data = (random_images(4), np.arange(4))
    match = r"`input_scale` is needed.*`model.encoder`.*Received: model='tiny_encoder'"
    protocols = (
        lambda: evaluation.extract_features(model.encoder, data, progress=False),
        lambda: evaluation.FeatureExtractor(model.encoder),
        lambda: evaluation.knn_accuracy(model.encoder, data, data, k=1, progress=False),
        lambda: evaluation.linear_probe(model.encoder, data, data, progress=False),
        lambda: evaluation.representation_report(
            model.encoder, data, data, label_fractions=(), progress=False
        ),
        lambda: evaluation.retrieval_report(model.encoder, data, data, ks=1, progress=False),
        lambda: evaluation.pair_scores(
            model.encoder, ((data[0], data[0]), np.array([1, 0, 1, 0])), progress=False
        ),
    )
    for protocol in protocols:
        with pytest.raises(ValueError, match=match):
            protocol()
    with pytest.raises(ValueError, match=r"None for a keras_siamese model.*input_scale=0.0039"):
        evaluation.extract_features(model, data, progress=False, input_scale=1 / 255)
    with pytest.raises(ValueError, match=r"`input_scale` must be finite and > 0"):
        evaluation.extract_features(model.encoder, data, progress=False, input_scale=0.0)


def test_feature_extractor_follows_the_weights_and_serves_knn_accuracy():
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    encoder.add(keras.layers.Dense(3, kernel_initializer="ones"))
    extractor = evaluation.FeatureExtractor(encoder, input_scale=0.5)
    images = np.ones((2, 4, 4, 1), "float32")
    data = (images, np.array([0, 1]))
    features, _ = extractor(data, progress=False)
    np.testing.assert_allclose(features, np.full((2, 3), 8.0))
    encoder.layers[-1].kernel.assign(np.full((16, 3), 2.0, "float32"))
    np.testing.assert_allclose(extractor(data, progress=False)[0], np.full((2, 3), 16.0))
    assert evaluation.knn_accuracy(extractor, data, data, k=1, progress=False) == 0.5
    with pytest.raises(ValueError, match=r"own \(input_scale=0.5\)"):
        evaluation.knn_accuracy(extractor, data, data, progress=False, input_scale=0.5)

