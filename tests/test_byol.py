"""Tests of BYOL: its loss against numpy, the heads, fit, saving, export, 2 replicas, kNN."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder
from test_momentum import REPLICAS_SCRIPT, momentum_replicas_results

import keras_siamese as ks
from keras_siamese.models.byol import BYOL


def tiny_byol(**kwargs):
    arguments = dict(projection_dim=8, hidden_dim=16)
    arguments.update(kwargs)
    return BYOL(tiny_encoder(), **arguments)


def numpy_regression_loss(p, z):
    """BYOL's Eq. 2: ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch."""
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return np.mean(np.sum((p - z) ** 2, axis=1))


def test_loss_is_the_symmetric_regression_of_predictions_on_target_projections():
    model = tiny_byol()
    view_a, view_b = (random_images(6, seed=seed).astype("float32") / 255.0 for seed in (1, 2))
    # Make the target differ from the online network so the test tells them apart.
    for _, target in model.target_pairs():
        for weight in target.weights:
            if "kernel" in weight.path:
                weight.assign(weight * 1.5)
    loss, values = model.loss_on_views([view_a, view_b], training=False)

    def online(view):
        return model.predictor(model.projector(model.encoder(view))).numpy()

    def target(view):
        return model.target_projector(model.target_encoder(view)).numpy()

    expected = numpy_regression_loss(online(view_a), target(view_b)) + numpy_regression_loss(
        online(view_b), target(view_a)
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert 0.0 <= float(loss) <= 8.0 and set(values) == {"output_std"}


def test_heads_follow_the_paper_and_the_target_is_a_frozen_copy():
    model = tiny_byol()
    assert model.projector.dims == (16, 8) and not model.projector.output_batch_norm
    assert model.predictor.dims == (16, 8)
    assert model.target_projector.dims == model.projector.dims
    trainable = {id(w) for w in model.trainable_variables}
    for online, target in model.target_pairs():
        for source, destination in zip(online.weights, target.weights, strict=True):
            np.testing.assert_array_equal(source.numpy(), destination.numpy())
            assert id(destination) not in trainable
    assert len(model.trainable_variables) == sum(
        len(layer.trainable_weights) for layer in (model.encoder, model.projector, model.predictor)
    )
    assert model.metric_names == ("output_std",) and model.collapse_metric == "output_std"


def test_default_augmenter_is_an_asymmetric_pair():
    model = tiny_byol()
    assert isinstance(model.augmenter, tuple) and len(model.augmenter) == 2
    views = model.make_views(tf.constant(random_images(4)))
    assert len(views) == 2 and all(tuple(view.shape) == (4, 16, 16, 1) for view in views)


def test_fit_trains_the_online_network_and_round_trips(tmp_path):
    model = tiny_byol(momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    images = random_images(32)
    before = [w.numpy().copy() for w in model.encoder.trainable_weights]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "output_std"}
    assert np.isfinite(history.history["loss"][0]) and 0.0 <= history.history["loss"][0] <= 8.0
    pairs = zip(before, model.encoder.trainable_weights, strict=True)
    assert all(not np.allclose(a, b.numpy()) for a, b in pairs)
    assert int(model.momentum_update.step.numpy()) == 4
    target = [w.numpy().copy() for w in model.target_encoder.weights]
    model.evaluate(images, batch_size=8, verbose=0)  # moves no target weight, counts no step
    assert int(model.momentum_update.step.numpy()) == 4
    for old, weight in zip(target, model.target_encoder.weights, strict=True):
        np.testing.assert_array_equal(old, weight.numpy())

    path = str(tmp_path / "byol.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, BYOL)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )
    for saved, loaded in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))
    assert int(restored.optimizer.iterations) == 4


def test_export_serves_the_online_encoder(tmp_path):
    model = tiny_byol()
    for weight in model.target_encoder.weights:  # a target unlike the online encoder
        weight.assign(tf.zeros_like(weight))
    images = random_images(4)
    version_dir = ks.export.export_for_serving(model, str(tmp_path / "export"))
    served = ks.export.load_for_inference(version_dir).embed(images)
    expected = model.encoder(images.astype("float32") / 255.0).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(projection_dim=0), ValueError, r"`projection_dim` must be an integer >= 1.*=0"),
        (dict(hidden_dim=2.0), TypeError, r"`hidden_dim` must be an integer.*hidden_dim=2.0"),
        (dict(momentum=1.0), ValueError, r"`momentum` must be .*< 1. Received: momentum=1.0"),
        (dict(final_momentum=0.5), ValueError, r"`final_momentum` must be .*>= 0.996"),
        (dict(momentum_steps=0), ValueError, r"`total_steps` must be an integer >= 1"),
        (dict(augmenter="flip"), TypeError, r"`augmenter` must be a keras.layers.Layer"),
    ],
)
def test_byol_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_byol(**arguments)


@pytest.mark.slow
@pytest.mark.replica_job(REPLICAS_SCRIPT, "byol")
def test_byol_step_on_2_replicas_equals_one_device(replica_job):
    results = momentum_replicas_results(replica_job)
    assert results["replicas_2"]["report"]["negatives_per_anchor"] is None


@pytest.mark.slow
@in_replica_process
def test_byol_on_fashion_mnist_beats_random_init_on_knn():  # ~25 s on a quiet machine
    # 512 steps; the base momentum 0.96 (rising to 1) lets the target follow a short run:
    # 0.99 gave 0.566 against a random init of 0.543, 0.96 gave 0.628.
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    memory, queries = (images[:2048], labels[:2048]), (test_images[:1000], test_labels[:1000])
    augmenter = ks.augment.simsiam_augmenter(28, channels=1, seed=0)
    model = BYOL(
        tiny_encoder((28, 28, 1)), augmenter, projection_dim=64, hidden_dim=128, momentum=0.96
    )
    random_init = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    schedule = ks.optimizers.WarmupCosine(0.2, total_steps=512, warmup_steps=32)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    history = model.fit(memory[0], batch_size=64, epochs=16, verbose=0)
    trained = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0] - 0.5
    assert min(history.history["output_std"]) > 0.5
    assert trained > random_init + 0.03, (random_init, trained)
