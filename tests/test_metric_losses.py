"""Tests of the metric-learning losses: contrastive margin and triplet loss with online mining."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import losses

# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


def numpy_distances(embeddings, distance):
    embeddings = np.asarray(embeddings, np.float64)
    if distance == "cosine":
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        return 1.0 - unit @ unit.T
    difference = embeddings[:, None, :] - embeddings[None, :, :]
    return np.sqrt(np.sum(difference**2, axis=-1))


def brute_force_triplet(embeddings, labels, margin, mining, distance="euclidean"):
    """float64 loops over anchors, positives and negatives, written from the definitions."""
    d = numpy_distances(embeddings, distance)
    count = len(labels)
    positives = [
        [j for j in range(count) if j != i and labels[j] == labels[i]] for i in range(count)
    ]
    negatives = [[k for k in range(count) if labels[k] != labels[i]] for i in range(count)]
    values = []
    if mining == "hard":
        for i in range(count):
            if positives[i] and negatives[i]:
                hardest_positive = max(d[i, j] for j in positives[i])
                hardest_negative = min(d[i, k] for k in negatives[i])
                values.append(max(hardest_positive - hardest_negative + margin, 0.0))
        return float(np.mean(values)) if values else 0.0
    if mining == "semi-hard":
        for i in range(count):
            if not negatives[i]:
                continue
            for j in positives[i]:
                farther = [d[i, k] for k in negatives[i] if d[i, k] > d[i, j]]
                negative = min(farther) if farther else max(d[i, k] for k in negatives[i])
                values.append(max(d[i, j] - negative + margin, 0.0))
        return float(np.mean(values)) if values else 0.0
    for i in range(count):
        for j, k in itertools.product(positives[i], negatives[i]):
            value = d[i, j] - d[i, k] + margin
            if value > 0:
                values.append(value)
    return float(np.mean(values)) if values else 0.0


def random_batch(seed, count=12, dims=5, classes=4, normalize=True):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(count, dims)).astype("float32")
    if normalize:
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = rng.integers(0, classes, count)
    return embeddings, labels


# ---------------------------------------------------------------------------------------
# Contrastive margin
# ---------------------------------------------------------------------------------------


def test_contrastive_margin_matches_numpy_reference():
    rng = np.random.default_rng(0)
    distance = rng.uniform(0, 2, 32).astype("float32")
    y = rng.integers(0, 2, 32)
    for margin in (0.5, 1.0, 1.5):
        pairs = zip(y, distance, strict=True)
        expected = np.mean([yi * di**2 if yi else max(margin - di, 0.0) ** 2 for yi, di in pairs])
        loss = losses.contrastive_margin(y, distance, margin=margin)
        assert loss.dtype == "float32"
        np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_contrastive_margin_analytic_cases():
    # Similar pair at distance 0.5 costs 0.25; dissimilar at 0.3 costs 0.7^2; beyond the
    # margin a dissimilar pair costs nothing.
    np.testing.assert_allclose(float(losses.contrastive_margin([1], [0.5])), 0.25, rtol=1e-6)
    np.testing.assert_allclose(float(losses.contrastive_margin([0], [0.3])), 0.49, rtol=1e-6)
    assert float(losses.contrastive_margin([0], [1.2], margin=1.0)) == 0.0


def test_contrastive_margin_gradient():
    distance = tf.Variable([0.5, 0.3, 1.4])
    y = tf.constant([1.0, 0.0, 0.0])
    with tf.GradientTape() as tape:
        loss = losses.contrastive_margin(y, distance, margin=1.0)
    gradient = tape.gradient(loss, distance).numpy()
    # d/dd of mean(...): similar 2d/3, dissimilar -2(m - d)/3 inside the margin, 0 beyond.
    np.testing.assert_allclose(gradient, [2 * 0.5 / 3, -2 * 0.7 / 3, 0.0], rtol=1e-6)


def test_contrastive_margin_class_matches_function_and_round_trips():
    y, distance = np.array([1, 0, 0, 1]), np.array([0.2, 0.4, 1.1, 0.9], "float32")
    loss_fn = losses.ContrastiveMargin(margin=0.8)
    np.testing.assert_allclose(
        float(loss_fn(y, distance)), float(losses.contrastive_margin(y, distance, 0.8)), rtol=1e-6
    )
    # Sample weights work as for any Keras loss (per-pair values, then the mean).
    weighted = float(loss_fn(y, distance, sample_weight=np.array([1.0, 0.0, 0.0, 0.0])))
    np.testing.assert_allclose(weighted, 0.04 / 4, rtol=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, losses.ContrastiveMargin)
    assert restored.get_config() == loss_fn.get_config()


@pytest.mark.parametrize(
    "y, distance, margin, error, match",
    [
        ([1, 0], [[0.1, 0.2]], 1.0, ValueError, "distance.shape"),
        ([[1], [0]], [0.1, 0.2], 1.0, ValueError, "y.shape"),
        ([1, 0, 1], [0.1, 0.2], 1.0, ValueError, "y.shape"),
        ([1], [0.1], 0.0, ValueError, "margin=0"),
        ([1], [0.1], "1", TypeError, "margin='1'"),
    ],
)
def test_contrastive_margin_bad_input_raises(y, distance, margin, error, match):
    with pytest.raises(error, match=match):
        losses.contrastive_margin(np.array(y), np.array(distance), margin=margin)


# ---------------------------------------------------------------------------------------
# Triplet loss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mining", losses.MINING_MODES)
@pytest.mark.parametrize("seed", range(6))
def test_triplet_loss_matches_brute_force(mining, seed):
    # 12 embeddings over 4 classes: some classes have a single member (anchors without a
    # positive), which the reference and the loss must both skip.
    embeddings, labels = random_batch(seed)
    for margin in (0.2, 0.6):
        expected = brute_force_triplet(embeddings, labels, margin, mining)
        loss = losses.triplet_loss(embeddings, labels, margin=margin, mining=mining)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", losses.MINING_MODES)
def test_triplet_loss_cosine_and_unnormalised_embeddings(mining):
    embeddings, labels = random_batch(7, count=16, normalize=False)
    for distance in ("euclidean", "cosine"):
        expected = brute_force_triplet(embeddings, labels, 0.3, mining, distance)
        loss = losses.triplet_loss(embeddings, labels, 0.3, mining, distance=distance)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", losses.MINING_MODES)
def test_triplet_loss_anchors_without_positive_or_negative(mining):
    embeddings, _ = random_batch(3, count=7)
    # Class 0 has one member (no positive); class 1 shares the batch with class 0 only.
    labels = np.array([0, 1, 1, 1, 1, 1, 1])
    expected = brute_force_triplet(embeddings, labels, 0.5, mining)
    loss, details = losses.triplet_loss(embeddings, labels, 0.5, mining, return_details=True)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    # Valid units: 6 anchors (hard), 6 * 5 anchor-positive pairs (semi-hard), 30 triplets (all).
    assert float(details["mined"]) == (6 if mining == "hard" else 30)
    # A single class: no negative anywhere; all different: no positive anywhere.
    for degenerate in (np.zeros(7, int), np.arange(7)):
        loss, details = losses.triplet_loss(
            embeddings, degenerate, mining=mining, return_details=True
        )
        assert float(loss) == 0.0
        assert float(details["mined"]) == 0.0


def test_triplet_loss_analytic_case():
    # Two classes on a line: a=0, p=1 (class 0); n=3 and n'=1.5 (class 1), margin 1.
    embeddings = np.array([[0.0], [1.0], [3.0], [1.5]], "float32")
    labels = np.array([0, 0, 1, 1])
    # Anchor 0: d_ap=1, negatives at 3 and 1.5 -> hard 1-1.5+1=0.5; semi-hard picks 1.5 -> 0.5.
    # Anchor 1: d_ap=1, negatives at 2 and 0.5 -> hard 1-0.5+1=1.5; semi-hard: closest farther
    #   than 1 is 2 -> 0. Anchor 2: d_ap=1.5, negatives 3, 2 -> hard 0.5; semi-hard 2 -> 0.5.
    # Anchor 3: d_ap=1.5, negatives 1.5, 0.5 -> hard 2; semi-hard: none farther, farthest 1.5 -> 1.
    hard = losses.triplet_loss(embeddings, labels, margin=1.0, mining="hard")
    semi_hard = losses.triplet_loss(embeddings, labels, margin=1.0, mining="semi-hard")
    np.testing.assert_allclose(float(hard), (0.5 + 1.5 + 0.5 + 2.0) / 4, rtol=1e-6)
    np.testing.assert_allclose(float(semi_hard), (0.5 + 0.0 + 0.5 + 1.0) / 4, rtol=1e-6)


@pytest.mark.parametrize("mining", losses.MINING_MODES)
def test_triplet_loss_gradient_matches_finite_differences(mining):
    embeddings, labels = random_batch(11, count=8, dims=3, classes=3, normalize=False)
    variable = tf.Variable(embeddings.astype("float64"))

    def loss_of(values):
        return losses.triplet_loss(values, labels, margin=0.4, mining=mining)

    with tf.GradientTape() as tape:
        loss = loss_of(variable)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    step = 1e-3
    numeric = np.zeros_like(embeddings, dtype=np.float64)
    for index in np.ndindex(*embeddings.shape):
        shifted = embeddings.astype(np.float64).copy()
        shifted[index] += step
        up = brute_force_triplet(shifted, labels, 0.4, mining)
        shifted[index] -= 2 * step
        down = brute_force_triplet(shifted, labels, 0.4, mining)
        numeric[index] = (up - down) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, atol=2e-3)


def test_triplet_loss_details_and_tf_function():
    embeddings, labels = random_batch(5, count=16)

    @tf.function(input_signature=[tf.TensorSpec([None, 5]), tf.TensorSpec([None], tf.int64)])
    def run(values, classes):
        return losses.triplet_loss(values, classes, mining="all", return_details=True)

    loss, details = run(embeddings, labels)
    expected = brute_force_triplet(embeddings, labels, 0.2, "all")
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    d = numpy_distances(embeddings, "euclidean")
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(16, dtype=bool)
    np.testing.assert_allclose(float(details["positive_distance"]), d[positive].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(details["negative_distance"]), d[~same].mean(), rtol=1e-5)
    assert 0.0 <= float(details["fraction_active"]) <= 1.0


def test_triplet_loss_class_matches_function_and_round_trips():
    embeddings, labels = random_batch(2)
    loss_fn = losses.TripletLoss(margin=0.3, mining="hard")
    np.testing.assert_allclose(
        float(loss_fn(labels, embeddings)),
        float(losses.triplet_loss(embeddings, labels, margin=0.3, mining="hard")),
        rtol=1e-6,
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, losses.TripletLoss)
    assert (restored.margin, restored.mining) == (0.3, "hard")


@pytest.mark.parametrize(
    "embeddings_shape, labels_shape, keywords, error, match",
    [
        ((8, 4), (8, 3), {}, ValueError, "labels.shape"),
        ((8, 4, 1), (8,), {}, ValueError, "embeddings.shape"),
        ((8, 4), (6,), {}, ValueError, "same batch size"),
        ((8, 4), (8,), {"mining": "easy"}, ValueError, "mining='easy'"),
        ((8, 4), (8,), {"margin": -0.1}, ValueError, "margin=-0.1"),
        ((8, 4), (8,), {"margin": None}, TypeError, "margin=None"),
        ((8, 4), (8,), {"distance": "manhattan"}, ValueError, "distance='manhattan'"),
    ],
)
def test_triplet_loss_bad_input_raises(embeddings_shape, labels_shape, keywords, error, match):
    embeddings = np.zeros(embeddings_shape, "float32")
    labels = np.zeros(labels_shape, "int64")
    with pytest.raises(error, match=match):
        losses.triplet_loss(embeddings, labels, **keywords)


def test_triplet_loss_class_bad_arguments_raise():
    with pytest.raises(ValueError, match="mining='semi_hard'"):
        losses.TripletLoss(mining="semi_hard")
    with pytest.raises(ValueError, match="margin=-1"):
        losses.TripletLoss(margin=-1)
