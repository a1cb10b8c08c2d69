"""Tests of NNCLR and its SupportSet: the nearest neighbours and the loss against numpy, the
FIFO support set over fit steps, the stop-gradient, saving, and argument errors. The
replica equivalence (two steps, support set included) is in tests/test_equivalence.py."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FlipSecondHalf, random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese.losses.info_nce import info_nce
from keras_siamese.models.support_set import SupportSet

DIMS = 3
METRICS = {"loss", "contrastive_accuracy", "representation_std"}


def tiny_nnclr(**kwargs):
    arguments = dict(projection_dims=(16, 8), prediction_dims=(16, 8), support_set_size=12)
    arguments.update(kwargs)
    return ks.NNCLR(tiny_encoder(), **arguments)


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def built_support_set(size):
    support = SupportSet(size)
    support.build((None, DIMS))
    return support


def numpy_neighbours(z, rows):
    """The row of `rows` (normalised) of highest cosine with each row of `z`; `z` if empty."""
    z = normalize(z)
    if len(rows) == 0:
        return z
    rows = normalize(rows)
    return rows[np.argmax(z @ rows.T, axis=1)]


def cross_entropy_on_diagonal(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_softmax))


def numpy_nnclr_loss(neighbours_a, neighbours_b, p_a, p_b, temperature):
    """Eq. 2 with predictions and its symmetric term (section 3.2), for both view orders."""
    p_a, p_b = normalize(p_a), normalize(p_b)
    loss = 0.0
    for neighbours, predictions in ((neighbours_a, p_b), (neighbours_b, p_a)):
        similarity = normalize(neighbours) @ predictions.T / temperature  # [i, k]: NN_i . p_k
        loss += cross_entropy_on_diagonal(similarity)  # sum over the predictions p_k
        loss += cross_entropy_on_diagonal(similarity.T)  # sum over the neighbours NN_k
    return loss / 4


# ---------------------------------------------------------------------------------------
# SupportSet
# ---------------------------------------------------------------------------------------


def test_support_set_starts_empty_and_returns_the_queries():
    support = built_support_set(5)
    assert not support.trainable_weights and len(support.non_trainable_weights) == 3
    assert int(support.filled.numpy()) == 0 and int(support.pointer.numpy()) == 0
    z = np.random.default_rng(0).normal(size=(4, DIMS)).astype("float32")
    np.testing.assert_allclose(support.nearest_neighbours(z).numpy(), normalize(z), rtol=1e-6)


@pytest.mark.parametrize("graph", [False, True])
def test_nearest_neighbours_match_numpy_and_never_pick_an_empty_slot(graph):
    support = built_support_set(6)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(3, DIMS)).astype("float32")
    support.enqueue(rows)
    # Queries opposite to every stored row: an empty (zero) slot, cosine 0, would beat them.
    queries = -rows[[2, 0, 1, 1]] + 0.1 * rng.normal(size=(4, DIMS)).astype("float32")
    assert (normalize(queries) @ normalize(rows).T < 0).all()
    lookup = tf.function(support.nearest_neighbours) if graph else support.nearest_neighbours
    found = lookup(tf.constant(queries)).numpy()
    np.testing.assert_allclose(found, numpy_neighbours(queries, rows), rtol=1e-6)


@pytest.mark.parametrize("graph", [False, True])
def test_enqueue_is_first_in_first_out_with_wrap_around(graph):
    support = built_support_set(5)
    enqueue = tf.function(support.enqueue) if graph else support.enqueue
    expected, pointer = np.zeros((5, DIMS)), 0
    for step, count in enumerate([2, 2, 4, 5]):  # wraps at steps 2 and 3
        rows = np.random.default_rng(step).normal(size=(count, DIMS)).astype("float32")
        enqueue(tf.constant(rows))
        for row in normalize(rows):
            expected[pointer], pointer = row, (pointer + 1) % 5
        np.testing.assert_allclose(support.embeddings.numpy(), expected, rtol=1e-6, atol=1e-7)
        assert int(support.pointer.numpy()) == pointer
        assert int(support.filled.numpy()) == min(5, [2, 4, 8, 13][step])


def test_nearest_neighbours_keep_no_gradient():
    support = built_support_set(4)
    z = tf.Variable(np.random.default_rng(2).normal(size=(3, DIMS)).astype("float32"))
    for _ in range(2):  # empty, then filled
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(support.nearest_neighbours(z * 2.0))
        assert tape.gradient(total, z) is None
        support.enqueue(z)


def test_support_set_refuses_a_batch_larger_than_itself_and_round_trips():
    support = built_support_set(3)
    with pytest.raises(ValueError, match=r"support_set_size=3 for a global batch of 4"):
        support.enqueue(tf.ones((4, DIMS)))
    assert int(support.pointer.numpy()) == 0  # nothing written
    restored = SupportSet.from_config(support.get_config())
    assert restored.size == 3 and restored.name == support.name
    with pytest.raises(ValueError, match=r"`size` must be an integer >= 1.*size=0"):
        SupportSet(0)


# ---------------------------------------------------------------------------------------
# NNCLR's loss
# ---------------------------------------------------------------------------------------


def features(seed, model):
    rng = np.random.default_rng(seed)
    features_a = rng.normal(size=(6, model.feature_dim)).astype("float32")
    features_b = (features_a + rng.normal(size=features_a.shape)).astype("float32")
    return features_a, features_b


def heads_outputs(model, features_a, features_b):
    """z_a, z_b, p_a, p_b in inference mode (BatchNorm then acts per row, like one pass)."""
    z = model.projector(np.concatenate([features_a, features_b]), training=False)
    p = model.predictor(z, training=False).numpy()
    return (*np.split(z.numpy(), 2), *np.split(p, 2))


@pytest.mark.parametrize("filled", [0, 5, 12])
def test_loss_and_accuracy_match_numpy_on_given_features(filled):
    model = tiny_nnclr(temperature=0.3)
    rng = np.random.default_rng(3)
    stored = rng.normal(size=(filled, 8)).astype("float32")
    if filled:
        model.support_set.enqueue(stored)
    before = model.support_set.embeddings.numpy().copy()
    features_a, features_b = features(4, model)
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    assert set(values) == {"contrastive_accuracy", "representation_std"}
    z_a, z_b, p_a, p_b = heads_outputs(model, features_a, features_b)
    neighbours_a, neighbours_b = numpy_neighbours(z_a, stored), numpy_neighbours(z_b, stored)
    expected = numpy_nnclr_loss(neighbours_a, neighbours_b, p_a, p_b, 0.3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    logits = neighbours_a @ normalize(p_b).T
    accuracy = np.mean(np.argmax(logits, axis=1) == np.arange(len(logits)))
    np.testing.assert_allclose(float(values["contrastive_accuracy"]), accuracy)
    # Outside training (evaluate, the build pass) nothing is enqueued.
    np.testing.assert_array_equal(model.support_set.embeddings.numpy(), before)
    assert int(model.support_set.filled.numpy()) == filled


@pytest.mark.parametrize("filled", [False, True])
def test_no_gradient_flows_through_the_nearest_neighbours(filled):
    model = tiny_nnclr()
    features_a, features_b = features(5, model)
    if filled:
        model.support_set.enqueue(np.random.default_rng(6).normal(size=(12, 8)))
    weights = model.projector.trainable_weights + model.predictor.trainable_weights

    def gradients(constant_neighbours):
        with tf.GradientTape() as tape:
            if constant_neighbours:  # the reference: neighbours as constants
                z = model.projector(np.concatenate([features_a, features_b]), training=False)
                p_a, p_b = tf.split(model.predictor(z, training=False), 2)
                z_a, z_b = (v.numpy() for v in tf.split(z, 2))
                stored = model.support_set.embeddings.numpy()[: int(filled) * 12]
                n_a = tf.constant(numpy_neighbours(z_a, stored), tf.float32)
                n_b = tf.constant(numpy_neighbours(z_b, stored), tf.float32)
                terms = [info_nce(n_a, p_b, temperature=0.1), info_nce(p_b, n_a, temperature=0.1)]
                terms += [info_nce(n_b, p_a, temperature=0.1), info_nce(p_a, n_b, temperature=0.1)]
                loss = tf.add_n(terms) / 4
            else:
                loss, _ = model.loss_on_features(features_a, features_b, training=False)
        return tape.gradient(loss, weights)

    for found, expected in zip(gradients(False), gradients(True), strict=True):
        assert found is not None  # the predictions carry the gradient to both heads
        np.testing.assert_allclose(found.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Training, the support set over steps, saving
# ---------------------------------------------------------------------------------------


def expected_projections(model, images):
    """z_a of a training step on `images` (the step's pass: both views, training BatchNorm)."""
    views = FlipSecondHalf()(np.concatenate([images, images]))
    z = model.projector(model.encoder(views, training=True), training=True)
    return normalize(np.split(z.numpy(), 2)[0])


@pytest.fixture(scope="module")
def trained():
    """An NNCLR model after two fit steps of 8 images into a support set of 12."""
    keras.utils.set_random_seed(0)
    model = tiny_nnclr(augmenter=FlipSecondHalf())
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    assert int(model.support_set.filled.numpy()) == 0  # the build pass enqueued nothing
    before = [weight.numpy().copy() for weight in model.encoder.trainable_weights]
    batches = [random_images(8, seed=seed) for seed in (1, 2)]
    projections, histories = [], []
    for images in batches:
        projections.append(expected_projections(model, images))
        history = model.fit(images, batch_size=8, epochs=1, shuffle=False, verbose=0)
        histories.append(history.history)
    return model, before, projections, histories


def test_fit_steps_train_the_encoder_and_log_finite_metrics(trained):
    model, before, _, histories = trained
    for history in histories:
        assert set(history) == METRICS and np.isfinite(history["loss"][0])
        assert 0.0 <= history["contrastive_accuracy"][0] <= 1.0
    changed = [
        not np.allclose(old, weight.numpy())
        for old, weight in zip(before, model.encoder.trainable_weights, strict=True)
    ]
    assert all(changed)
    assert int(model.optimizer.iterations) == 2


def test_support_set_holds_the_steps_projections_first_in_first_out(trained):
    model, _, (first, second), _ = trained
    # 8 rows into slots 0-7, then 8 more into slots 8-11 and, wrapping, 0-3.
    expected = np.concatenate([second[4:], first[4:], second[:4]])
    np.testing.assert_allclose(model.support_set.embeddings.numpy(), expected, atol=1e-5)
    assert int(model.support_set.pointer.numpy()) == 4
    assert int(model.support_set.filled.numpy()) == 12


def test_evaluate_leaves_the_support_set_alone(trained):
    model, _, _, _ = trained
    before = [weight.numpy().copy() for weight in model.support_set.weights]
    results = model.evaluate(random_images(8, seed=3), batch_size=8, verbose=0, return_dict=True)
    assert set(results) == METRICS and np.isfinite(results["loss"])
    for old, weight in zip(before, model.support_set.weights, strict=True):
        np.testing.assert_array_equal(old, weight.numpy())


def test_keras_file_round_trip_keeps_the_support_set_and_the_config(trained, tmp_path):
    model, _, _, _ = trained
    path = str(tmp_path / "nnclr.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects
    assert isinstance(restored, ks.NNCLR)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    config = restored.get_config()
    assert tuple(config["prediction_dims"]) == (16, 8) and config["support_set_size"] == 12
    for saved, loaded in zip(model.support_set.weights, restored.support_set.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    images = random_images(6, seed=4)
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )


def test_defaults_are_the_papers_heads_and_support_set():
    model = ks.NNCLR(tiny_encoder())
    assert model.projector.dims == (2048, 2048, 256) and model.projector.output_batch_norm
    assert model.predictor.dims == (4096, 256) and not model.predictor.output_batch_norm
    assert model.temperature == 0.1 and tuple(model.support_set.embeddings.shape) == (98304, 256)
    assert model.negatives_per_anchor(4096) == 4095
    assert "enqueued" in model.cross_replica_loss


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(support_set_size=0), ValueError, r"`support_set_size` must be .*support_set_size=0"),
        (dict(support_set_size=2.5), TypeError, r"`support_set_size` must be an integer"),
        (dict(temperature=0.0), ValueError, r"`temperature`.*Received: temperature=0.0"),
        (dict(temperature="hot"), TypeError, r"`temperature`"),
        (dict(prediction_dims=(16, 4)), ValueError, r"`prediction_dims` must end with .*\(16, 4\)"),
        (dict(projection_dims=(16, 0)), ValueError, r"`projection_dims`"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_nnclr(**arguments)


def test_a_global_batch_larger_than_the_support_set_raises_at_fit():
    model = tiny_nnclr(support_set_size=4)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"support_set_size=4 for a global batch of 8"):
        model.fit(random_images(16), batch_size=8, verbose=0)
    # A dataset without a static batch size: the traced step's assertion refuses it.
    batches = tf.data.Dataset.from_tensor_slices(random_images(16)).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"support_set_size=4 for a global"):
        model.fit(batches, verbose=0)
    assert int(model.support_set.filled.numpy()) == int(model.support_set.pointer.numpy()) == 0
    # evaluate enqueues nothing, so it takes any batch.
    assert np.isfinite(model.evaluate(random_images(16), batch_size=8, verbose=0)[0])
