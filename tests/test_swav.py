"""Tests of SwAV: its loss against numpy and lightly's formula, prototypes, the queue, replicas."""

import inspect
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder
from scripts import redundancy_replicas
from test_barlow_twins import (
    check_replicas_equal_one_device,
    constant_encoder,
    finite_difference_gradient,
    served_in_a_fresh_process,
)
from test_sinkhorn import lightly_sinkhorn

import keras_siamese as ks
from keras_siamese.callbacks import CollapseMonitor
from keras_siamese.losses.swav import SwAVLoss, swav
from keras_siamese.models.swav import SwAV, SwAVPrototypes

# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


def lightly_swav(high, low, temperature=0.1, iterations=3, epsilon=0.05, queue=None):
    """lightly 1.6.0 `SwaVLoss.forward(high, low, queue_outputs)` in numpy.

    For each high-resolution output i: codes `q = sinkhorn(cat(high[i], queue[i]))[:len]`;
    `subloss` is `-mean(sum(q * log_softmax(z / temperature, dim=1), dim=1))` summed over the
    other high-resolution and all low-resolution outputs, divided by `n_crops - 1`; the total
    is divided by the number of high-resolution outputs.
    """

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    def subloss(z, q):
        return -np.mean(np.sum(q * log_softmax(np.asarray(z, "float64") / temperature), axis=1))

    n_crops = len(high) + len(low)
    loss = 0.0
    for i in range(len(high)):
        outputs = np.asarray(high[i], "float64")
        if queue is not None:
            outputs = np.concatenate([outputs, queue[i]])
        q = lightly_sinkhorn(outputs, iterations, epsilon)[: len(high[i])]
        total = sum(subloss(high[v], q) for v in range(len(high)) if v != i)
        total += sum(subloss(z, q) for z in low)
        loss += total / (n_crops - 1)
    return loss / len(high)


def reference_swav(scores, targets, codes, temperature):
    """As a weighted sum over (target view, predicting view) pairs, codes given."""
    views = len(scores)
    cross_entropy = np.zeros((len(targets), views))
    for row in range(len(targets)):
        for view in range(views):
            logits = np.asarray(scores[view], "float64") / temperature
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            cross_entropy[row, view] = -np.mean(np.sum(codes[row] * log_p, axis=1))
    weights = np.ones_like(cross_entropy) / (len(targets) * (views - 1))
    for row, target in enumerate(targets):
        weights[row, target] = 0.0
    return float(np.sum(weights * cross_entropy))


def unit_scores(views, batch=8, prototypes=6, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(5, prototypes))
    c /= np.linalg.norm(c, axis=0, keepdims=True)
    scores = []
    for _ in range(views):
        z = rng.normal(size=(batch, 5))
        scores.append((z / np.linalg.norm(z, axis=1, keepdims=True) @ c).astype("float32"))
    return scores


# ---------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("high_views, low_views", [(2, 0), (2, 3), (1, 2), (3, 1)])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_matches_lightly_and_the_pairwise_reference(high_views, low_views, temperature):
    scores = unit_scores(high_views + low_views)
    high, low = scores[:high_views], scores[high_views:]
    value = float(swav(high, low, temperature=temperature))
    np.testing.assert_allclose(value, lightly_swav(high, low, temperature), rtol=1e-5)
    codes = [lightly_sinkhorn(s) for s in high]
    expected = reference_swav(scores, list(range(high_views)), codes, temperature)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_loss_with_a_queue_matches_lightly_and_masked_rows_drop_out():
    high = unit_scores(2, seed=1)
    low = unit_scores(2, seed=2)
    queue = unit_scores(2, batch=12, seed=3)
    value = float(swav(high, low, queue_scores=queue))
    np.testing.assert_allclose(value, lightly_swav(high, low, queue=queue), rtol=1e-5)
    assert abs(value - lightly_swav(high, low)) > 1e-3  # the queue changes the codes
    mask = np.arange(12) < 5
    masked = float(swav(high, low, queue_scores=queue, queue_mask=mask))
    first_five = [q[:5] for q in queue]
    np.testing.assert_allclose(masked, lightly_swav(high, low, queue=first_five), rtol=1e-5)
    nothing = float(swav(high, low, queue_scores=queue, queue_mask=np.zeros(12, bool)))
    np.testing.assert_allclose(nothing, lightly_swav(high, low), rtol=1e-5)


def test_loss_analytic_case():
    # Two identical views with scores s * I (B = K = 5): the codes are the rows of
    # exp(S / eps) normalised (already balanced), and the loss one cross-entropy.
    scores = 0.2 * np.eye(5, dtype="float32")
    code = np.exp(0.2 / 0.05) / (np.exp(0.2 / 0.05) + 4)
    prediction = np.exp(0.2 / 0.1) / (np.exp(0.2 / 0.1) + 4)
    expected = -(code * np.log(prediction) + (1 - code) * np.log((1 - prediction) / 4))
    value = float(swav([scores, scores], [], temperature=0.1, epsilon=0.05))
    assert value == pytest.approx(expected, rel=1e-5)


def test_gradients_reach_the_predictions_only_and_match_finite_differences():
    scores = unit_scores(3, seed=4)
    variables = [tf.Variable(s) for s in scores]
    with tf.GradientTape() as tape:
        loss = swav(variables[:2], variables[2:], temperature=0.2)
    gradients = [g.numpy() for g in tape.gradient(loss, variables)]
    codes = [lightly_sinkhorn(s) for s in scores[:2]]  # constants: no gradient through them
    for view in range(3):

        def loss_of(value, view=view):
            perturbed = [np.asarray(s, "float64") for s in scores]
            perturbed[view] = value
            return reference_swav(perturbed, [0, 1], codes, 0.2)

        expected = finite_difference_gradient(loss_of, np.asarray(scores[view], "float64"))
        np.testing.assert_allclose(gradients[view], expected, rtol=2e-3, atol=1e-5)


def test_loss_in_float16_and_in_a_graph_with_an_unknown_batch_size():
    high = unit_scores(2, seed=5)
    expected = lightly_swav(high, [])
    half = swav([s.astype("float16") for s in high])
    assert half.dtype == tf.float32
    np.testing.assert_allclose(float(half), expected, rtol=1e-2)
    spec = tf.TensorSpec((None, 6), tf.float32)
    graph = tf.function(lambda a, b: swav([a, b]), input_signature=[spec, spec])
    np.testing.assert_allclose(float(graph(*high)), expected, rtol=1e-5)


def test_loss_class_takes_stacked_views_and_round_trips_its_config():
    scores = unit_scores(4, seed=6)
    loss_fn = SwAVLoss(high_resolution_views=2, temperature=0.2, sinkhorn_iterations=5, epsilon=0.1)
    np.testing.assert_allclose(
        float(loss_fn(None, np.stack(scores))),
        lightly_swav(scores[:2], scores[2:], 0.2, 5, 0.1),
        rtol=1e-5,
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, SwAVLoss) and restored.get_config() == loss_fn.get_config()
    with pytest.raises(ValueError, match=r"`y_pred` of SwAVLoss must have rank 3.*\(8, 6\)"):
        loss_fn(None, scores[0])
    with pytest.raises(ValueError, match=r"at least high_resolution_views=3.*\(2, 8, 6\)"):
        SwAVLoss(high_resolution_views=3)(None, np.stack(scores[:2]))


@pytest.mark.parametrize(
    "high, low, arguments, error, match",
    [
        ([], [np.ones((4, 3))], {}, ValueError, r"at least one high-resolution view.*Received: 0"),
        ([np.ones((4, 3))], [], {}, ValueError, r"two views in all.*Received: 1 high"),
        (
            [np.ones((4, 3))] * 2,
            [np.ones((4, 2))],
            {},
            ValueError,
            r"same shape.*low_resolution_scores\[0\].shape=\(4, 2\)",
        ),
        (
            [np.ones(4)] * 2,
            [],
            {},
            ValueError,
            r"`high_resolution_scores` must hold rank-2.*\[0\].shape=\(4,\)",
        ),
        (np.ones((2, 4, 3)), [], {}, TypeError, r"must be a list.*of type ndarray"),
        (
            [np.ones((4, 3))] * 2,
            [],
            dict(queue_scores=[np.ones((5, 3))]),
            ValueError,
            r"one tensor per high-resolution view \(2\). Received: 1 tensors",
        ),
        (
            [np.ones((4, 3))] * 2,
            [],
            dict(temperature=0.0),
            ValueError,
            r"`temperature` must be finite and > 0",
        ),
        (
            [np.ones((4, 3))] * 2,
            [],
            dict(sinkhorn_iterations=0),
            ValueError,
            r"`sinkhorn_iterations` must be an integer >= 1",
        ),
        ([np.ones((4, 3))] * 2, [], dict(epsilon=-1.0), ValueError, r"Received: epsilon=-1.0"),
    ],
)
def test_loss_bad_inputs_raise(high, low, arguments, error, match):
    with pytest.raises(error, match=match):
        swav(high, low, **arguments)


# ---------------------------------------------------------------------------------------
# Prototypes and the model
# ---------------------------------------------------------------------------------------


class Rescale(keras.layers.Layer):
    """A deterministic view: the images in [0, 1]."""

    def call(self, images, training=None):
        return tf.cast(images, tf.float32) / 255.0


class RescaleAndMirror(Rescale):
    def call(self, images, training=None):
        return tf.reverse(super().call(images), axis=[2])


def tiny_swav(**kwargs):
    """Two views (the default multi-crop makes eight: slower, and tested on its own)."""
    kwargs.setdefault("augmenter", ks.augment.simclr_augmenter(16, channels=1, seed=0))
    kwargs.setdefault("projection_dims", (16, 8))
    kwargs.setdefault("num_prototypes", 10)
    return SwAV(tiny_encoder(), **kwargs)


def test_prototypes_are_unit_vectors_and_their_layer_round_trips():
    layer = SwAVPrototypes(7)
    scores = layer(np.eye(4, dtype="float32"))
    assert tuple(scores.shape) == (4, 7)
    np.testing.assert_allclose(np.linalg.norm(layer.kernel.numpy(), axis=0), 1.0, rtol=1e-6)
    assert SwAVPrototypes.from_config(layer.get_config()).num_prototypes == 7
    with pytest.raises(ValueError, match=r"`num_prototypes` must be an integer >= 1.*=0"):
        SwAVPrototypes(0)


def test_defaults_follow_the_paper():
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(SwAV).parameters.items()
    }
    assert defaults["num_prototypes"] == 3000 and defaults["projection_dims"] == (2048, 128)
    assert (defaults["temperature"], defaults["epsilon"]) == (0.1, 0.05)
    assert defaults["sinkhorn_iterations"] == 3 and defaults["queue_size"] == 0
    model = tiny_swav(augmenter=(Rescale(), RescaleAndMirror()))
    assert (model.metric_names, model.collapse_metric) == (("output_std",), "output_std")
    assert model.queue is None and model.num_global_views == 2


def test_model_loss_is_swav_of_the_normalised_projections():
    model = tiny_swav(temperature=0.2)
    rng = np.random.default_rng(7)
    features = list(rng.normal(size=(2, 8, model.feature_dim)).astype("float32"))
    loss, values = model.loss_on_features(*features, training=False)
    z = model.projector(np.concatenate(features), training=False).numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    scores = np.split(z @ model.prototypes.kernel.numpy(), 2)
    np.testing.assert_allclose(float(loss), lightly_swav(scores, [], 0.2), rtol=1e-4)
    assert set(values) == {"output_std"}


def test_fit_normalises_prototypes_after_each_step_and_freezes_them_at_first():
    model = tiny_swav(freeze_prototypes_steps=1)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    initial = model.prototypes.kernel.numpy().copy()
    encoder_before = [v.numpy().copy() for v in model.encoder.trainable_variables]
    images = random_images(8)
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(model.prototypes.kernel.numpy(), initial, rtol=1e-6, atol=1e-7)
    changed = zip(encoder_before, model.encoder.trainable_variables, strict=True)
    assert all(not np.allclose(a, b.numpy()) for a, b in changed)
    assert np.isfinite(history.history["loss"][0]) and set(history.history) == {
        "loss",
        "output_std",
    }
    model.fit(images, batch_size=8, epochs=1, verbose=0)  # step 2: the prototypes learn
    kernel = model.prototypes.kernel.numpy()
    assert not np.allclose(kernel, initial, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=1e-5)


def projections(model, images):
    """What a training step enqueues: the normalised projections of both views, BN in training."""
    views = [Rescale()(images), RescaleAndMirror()(images)]
    features = model.encoder(tf.concat(views, axis=0), training=True)
    z = model.projector(features, training=True).numpy()
    return np.split(z / np.linalg.norm(z, axis=1, keepdims=True), 2)


def test_queue_keeps_the_newest_projections_of_each_global_view():
    model = tiny_swav(augmenter=(Rescale(), RescaleAndMirror()), queue_size=12)
    assert tuple(model.queue.shape) == (2, 12, 8) and not model.queue.trainable
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # frozen weights: predictable queue
    first, second = random_images(8, seed=1), random_images(8, seed=2)
    expected_first, expected_second = projections(model, first), projections(model, second)
    model.fit(first, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(model.queue_filled.numpy()) == 8
    queue = model.queue.numpy()
    for view in range(2):
        np.testing.assert_allclose(queue[view, :8], expected_first[view], atol=1e-5)
        np.testing.assert_array_equal(queue[view, 8:], 0.0)

    # The filled part of the queue now joins Sinkhorn: another loss on the same batch.
    features = list(np.random.default_rng(8).normal(size=(2, 8, 16)).astype("float32"))
    with_queue = float(model.loss_on_features(*features, training=False)[0])
    model.queue_filled.assign(0)
    without_queue = float(model.loss_on_features(*features, training=False)[0])
    assert abs(with_queue - without_queue) > 1e-4
    model.queue_filled.assign(8)

    model.fit(second, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(model.queue_filled.numpy()) == 12
    queue = model.queue.numpy()
    for view in range(2):
        np.testing.assert_allclose(queue[view, :8], expected_second[view], atol=1e-5)
        np.testing.assert_allclose(queue[view, 8:], expected_first[view][:4], atol=1e-5)


def test_queue_survives_keras_files_and_backup_and_restore(tmp_path):
    model = tiny_swav(queue_size=12)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    images = random_images(16)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    model.fit(images, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    assert int(model.queue_filled.numpy()) == 12

    path = str(tmp_path / "swav.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, SwAV)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_array_equal(restored.queue.numpy(), model.queue.numpy())
    assert int(restored.queue_filled.numpy()) == 12
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )

    resumed = tiny_swav(queue_size=12)  # a new process after a preemption
    resumed.compile(optimizer=keras.optimizers.SGD(0.01))
    resumed.fit(images, batch_size=8, epochs=1, verbose=0, callbacks=[backup])  # done already
    np.testing.assert_array_equal(resumed.queue.numpy(), model.queue.numpy())
    np.testing.assert_array_equal(
        resumed.prototypes.kernel.numpy(), model.prototypes.kernel.numpy()
    )


def test_export_serves_the_encoder_representation(tmp_path):
    model = tiny_swav()
    images = random_images(6)
    version_dir = ks.export.export_for_serving(model, str(tmp_path / "export"))
    served = served_in_a_fresh_process(version_dir, images, tmp_path)
    expected = model.predict(images.astype("float32"), verbose=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_collapse_monitor_watches_output_std():
    monitor = CollapseMonitor(threshold=0.1, patience=1)
    collapsed = SwAV(
        constant_encoder(),
        ks.augment.simclr_augmenter(16, channels=1, seed=0),
        projection_dims=(16, 8),
        num_prototypes=10,
    )
    collapsed.compile(optimizer=keras.optimizers.SGD(0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = collapsed.fit(
            random_images(16), batch_size=8, epochs=1, callbacks=[monitor], verbose=0
        )
    assert history.history["output_std"][0] < 1e-3
    assert monitor.collapsed_epoch == 0
    assert any("output_std" in str(warning.message) for warning in caught)


class SmallRescale(Rescale):
    """A deterministic local view: the images in [0, 1] at 8x8."""

    def call(self, images, training=None):
        return tf.image.resize(super().call(images), (8, 8), antialias=True)


def multi_crop(global_views=2, local_views=3):
    return ks.augment.MultiCrop(Rescale(), SmallRescale(), global_views, local_views)


def test_multi_crop_codes_come_from_the_global_views_and_every_view_predicts():
    model = tiny_swav(augmenter=multi_crop(2, 3), temperature=0.2)
    assert model.num_global_views == 2 and model.accepts_multi_crop
    rng = np.random.default_rng(9)
    features = list(rng.normal(size=(5, 8, model.feature_dim)).astype("float32"))
    loss, _ = model.loss_on_view_features(features, training=False)
    z = model.projector(np.concatenate(features), training=False).numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    scores = np.split(z @ model.prototypes.kernel.numpy(), 5)
    np.testing.assert_allclose(float(loss), lightly_swav(scores[:2], scores[2:], 0.2), rtol=1e-4)


@pytest.mark.parametrize("encoder_shape", [(16, 16, 1), (None, None, 1)])
def test_multi_crop_trains_with_a_fixed_size_encoder_and_one_of_any_size(encoder_shape):
    """A fixed-size encoder sees the 8x8 local views resized; any size: a pass of their own."""
    size = {"image_size": (16, 16)} if None in encoder_shape else {}
    model = SwAV(
        tiny_encoder(encoder_shape),
        multi_crop(3, 2),
        num_prototypes=10,
        projection_dims=(16, 8),
        queue_size=8,
        **size,
    )
    assert tuple(model.queue.shape) == (3, 8, 8)  # one queue per global view
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.queue_filled.numpy()) == 8


def test_the_default_augmenter_is_multi_crop():
    model = SwAV(tiny_encoder(), num_prototypes=10, projection_dims=(16, 8))
    assert isinstance(model.augmenter, ks.augment.MultiCrop)
    assert (model.augmenter.global_views, model.augmenter.local_views) == (2, 6)
    assert model.num_global_views == 2


def test_trains_with_an_encoder_of_any_size():
    model = SwAV(
        tiny_encoder((None, None, 1)),
        image_size=(16, 16),
        projection_dims=(16, 8),
        num_prototypes=10,
        queue_size=8,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert tuple(model.get_config()["image_size"]) == (16, 16)
    assert tuple(model.predict(random_images(3), verbose=0).shape) == (3, model.feature_dim)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(num_prototypes=0), ValueError, r"`num_prototypes` must be an integer >= 1"),
        (dict(temperature=-0.1), ValueError, r"`temperature` must be finite and > 0"),
        (dict(sinkhorn_iterations=1.5), TypeError, r"`sinkhorn_iterations` must be an integer"),
        (dict(epsilon=float("nan")), ValueError, r"Received: epsilon=nan"),
        (dict(queue_size=-1), ValueError, r"`queue_size` must be an integer >= 0.*=-1"),
        (dict(freeze_prototypes_steps=True), TypeError, r"`freeze_prototypes_steps`.*=True"),
        (dict(projection_dims=(16, -8)), ValueError, r"`projection_dims`"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_swav(**arguments)


# ---------------------------------------------------------------------------------------
# Replicas and training (slow)
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.replica_job(redundancy_replicas.SCRIPT, "swav")
def test_step_on_2_and_4_replicas_equals_one_device(replica_job):
    check_replicas_equal_one_device(redundancy_replicas.results_of(replica_job))


@pytest.mark.slow
@pytest.mark.replica_job(redundancy_replicas.SCRIPT, "swav_queue")
def test_two_steps_with_the_queue_on_2_and_4_replicas_equal_one_device(replica_job):
    # The weights include the queue: projections of a forward pass through global BatchNorm,
    # whose float32 noise (sums in another order) two steps carry to ~3e-5.
    results = redundancy_replicas.results_of(replica_job)
    check_replicas_equal_one_device(results, weights_tolerance=1e-4)


@pytest.mark.slow
@pytest.mark.replica_job(redundancy_replicas.SCRIPT, "swav_multi_crop")
def test_multi_crop_step_on_2_and_4_replicas_equals_one_device(replica_job):
    check_replicas_equal_one_device(redundancy_replicas.results_of(replica_job))


@pytest.mark.slow
@in_replica_process
def test_swav_on_fashion_mnist_beats_random_init_on_knn():  # ~20 s
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    memory, queries = (images[:2048], labels[:2048]), (test_images[:1000], test_labels[:1000])
    # The demo's 25-100% crops: with 8-100% crops of 28x28 images this run ends at 0.46.
    augmenter = ks.augment.simclr_augmenter(
        28, channels=1, strength=0.5, crop_area=(0.25, 1.0), seed=0
    )
    # No queue: a batch of 64 already outnumbers 30 prototypes, and in 256 steps the queue's
    # stale projections of a fast-changing tiny encoder cost accuracy.
    model = SwAV(
        tiny_encoder((28, 28, 1)),
        augmenter,
        num_prototypes=30,
        projection_dims=(64, 32),
        temperature=0.2,
    )
    random_init = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))  # 0.620 vs 0.543
    history = model.fit(memory[0], batch_size=64, epochs=8, verbose=0)
    trained_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert min(history.history["output_std"]) > 0.3
    assert trained_knn > random_init, (random_init, trained_knn)
