"""Tests of Barlow Twins: its loss against numpy and lightly's formula, the model, replicas."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder
from scripts import redundancy_replicas

import keras_siamese as ks
from keras_siamese.callbacks import CollapseMonitor
from keras_siamese.losses.barlow_twins import BarlowTwinsLoss, barlow_twins
from keras_siamese.models.barlow_twins import BarlowTwins

# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


def reference_barlow_twins(z_a, z_b, lambda_):
    """Element by element: the correlation of every pair of standardised dimensions."""
    z_a, z_b = np.asarray(z_a, "float64"), np.asarray(z_b, "float64")
    count, dims = z_a.shape

    def standardised(column):
        centred = column - column.mean()
        return centred / np.sqrt(np.mean(centred**2) + 1e-5)

    loss = 0.0
    for i in range(dims):
        for j in range(dims):
            correlation = np.dot(standardised(z_a[:, i]), standardised(z_b[:, j])) / count
            loss += (1.0 - correlation) ** 2 if i == j else lambda_ * correlation**2
    return loss


def lightly_barlow_twins(z_a, z_b, lambda_param=5e-3):
    """lightly 1.6.0 `BarlowTwinsLoss.forward` (gather_distributed=False) in numpy.

    `_normalize` is `F.batch_norm(z, None, None, training=True)`: mean and biased variance
    over the batch, eps 1e-5; `c = z_a_norm.T @ z_b_norm / N`; the off-diagonal entries are
    taken with the flatten/view trick of `_off_diagonal`.
    """
    z_a, z_b = np.asarray(z_a, "float64"), np.asarray(z_b, "float64")

    def normalize(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)

    c = normalize(z_a).T @ normalize(z_b) / z_a.shape[0]
    invariance_loss = np.sum((np.diagonal(c) - 1.0) ** 2)
    n = c.shape[0]
    off_diagonal = c.flatten()[:-1].reshape(n - 1, n + 1)[:, 1:].flatten()
    return invariance_loss + lambda_param * np.sum(off_diagonal**2)


def finite_difference_gradient(function, value, step=1e-5):
    gradient = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (function(up) - function(down)) / (2 * step)
    return gradient


# ---------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lambda_", [0.0, 0.005, 0.5])
def test_loss_matches_numpy_and_lightly(lambda_):
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=(2, 12, 5)).astype("float32")
    z_b += z_a  # correlated views
    value = float(barlow_twins(z_a, z_b, lambda_=lambda_))
    np.testing.assert_allclose(value, reference_barlow_twins(z_a, z_b, lambda_), rtol=1e-5)
    np.testing.assert_allclose(value, lightly_barlow_twins(z_a, z_b, lambda_), rtol=1e-5)
    loss, terms = barlow_twins(z_a, z_b, lambda_=lambda_, return_terms=True)
    np.testing.assert_allclose(
        float(terms["invariance"]), lightly_barlow_twins(z_a, z_b, 0.0), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(loss), float(terms["invariance"]) + lambda_ * float(terms["redundancy"]), rtol=1e-6
    )


def test_loss_analytic_cases():
    # Orthogonal +-1 columns of mean 0 and variance 1: C = I / (1 + 1e-5) for a view with
    # itself, -I / (1 + 1e-5) for a view with its negative; no off-diagonal correlation.
    z = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], "float32")
    diagonal = 1.0 / (1.0 + 1e-5)
    assert float(barlow_twins(z, z, lambda_=1.0)) == pytest.approx(
        3 * (1 - diagonal) ** 2, abs=1e-9
    )
    assert float(barlow_twins(z, -z, lambda_=1.0)) == pytest.approx(
        3 * (1 + diagonal) ** 2, rel=1e-6
    )
    # Identical dimensions: every off-diagonal correlation is 1.
    same = np.repeat(z[:, :1], 3, axis=1)
    loss, terms = barlow_twins(same, same, lambda_=0.5, return_terms=True)
    assert float(terms["redundancy"]) == pytest.approx(6 * diagonal**2, rel=1e-6)
    # Constant (collapsed) projections standardise to 0: C = 0 and the loss is d.
    assert float(barlow_twins(np.ones((8, 4), "float32"), np.ones((8, 4), "float32"))) == 4.0


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    z_a, z_b = rng.normal(size=(2, 6, 4))
    variables = tf.Variable(z_a, dtype="float32"), tf.Variable(z_b, dtype="float32")
    with tf.GradientTape() as tape:
        loss = barlow_twins(*variables, lambda_=0.1)
    gradient_a, gradient_b = tape.gradient(loss, variables)
    expected_a = finite_difference_gradient(lambda a: reference_barlow_twins(a, z_b, 0.1), z_a)
    expected_b = finite_difference_gradient(lambda b: reference_barlow_twins(z_a, b, 0.1), z_b)
    np.testing.assert_allclose(gradient_a.numpy(), expected_a, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(gradient_b.numpy(), expected_b, rtol=2e-3, atol=2e-5)


def test_loss_in_float16_and_in_a_graph_with_an_unknown_batch_size():
    rng = np.random.default_rng(2)
    z_a, z_b = rng.normal(size=(2, 8, 3)).astype("float32")
    expected = lightly_barlow_twins(z_a, z_b)
    half = barlow_twins(z_a.astype("float16"), z_b.astype("float16"))
    assert half.dtype == tf.float32
    np.testing.assert_allclose(float(half), expected, rtol=1e-2)
    spec = tf.TensorSpec((None, 3), tf.float32)
    graph = tf.function(barlow_twins, input_signature=[spec, spec])
    np.testing.assert_allclose(float(graph(z_a, z_b)), expected, rtol=1e-5)


def test_loss_class_stacks_the_views_and_round_trips_its_config():
    rng = np.random.default_rng(3)
    z_a, z_b = rng.normal(size=(2, 8, 3)).astype("float32")
    loss_fn = BarlowTwinsLoss(lambda_=0.02)
    np.testing.assert_allclose(
        float(loss_fn(None, np.concatenate([z_a, z_b]))),
        lightly_barlow_twins(z_a, z_b, 0.02),
        rtol=1e-5,
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, BarlowTwinsLoss)
    assert restored.get_config() == loss_fn.get_config()
    assert restored.get_config()["lambda_"] == 0.02


@pytest.mark.parametrize(
    "z_a_shape, z_b_shape, match",
    [
        ((8,), (8,), r"Argument `z_a` must have rank 2.*Received: z_a.shape=\(8,\)"),
        ((8, 3), (8, 3, 1), r"Argument `z_b` must have rank 2.*z_b.shape=\(8, 3, 1\)"),
        ((8, 3), (8, 4), r"same shape.*Received: z_a.shape=\(8, 3\), z_b.shape=\(8, 4\)"),
        ((1, 3), (1, 3), r"at least 2 examples per batch.*z_a.shape=\(1, 3\)"),
    ],
)
def test_loss_bad_shapes_raise(z_a_shape, z_b_shape, match):
    with pytest.raises(ValueError, match=match):
        barlow_twins(np.ones(z_a_shape, "float32"), np.ones(z_b_shape, "float32"))


@pytest.mark.parametrize(
    "lambda_, error, match",
    [
        (-0.1, ValueError, r"`lambda_` must be finite and >= 0. Received: lambda_=-0.1"),
        (float("nan"), ValueError, r"Received: lambda_=nan"),
        ("0.1", TypeError, r"`lambda_` must be a number. Received: lambda_='0.1'"),
    ],
)
def test_loss_bad_lambda_raises(lambda_, error, match):
    z = np.ones((4, 2), "float32")
    with pytest.raises(error, match=match):
        barlow_twins(z, z, lambda_=lambda_)
    with pytest.raises(error, match=match):
        BarlowTwinsLoss(lambda_=lambda_)


def test_loss_class_bad_y_pred_raises():
    with pytest.raises(ValueError, match=r"even number of rows.*y_pred.shape=\(5, 3\)"):
        BarlowTwinsLoss()(None, np.ones((5, 3), "float32"))
    with pytest.raises(ValueError, match=r"must have rank 2.*y_pred.shape=\(4, 3, 1\)"):
        BarlowTwinsLoss()(None, np.ones((4, 3, 1), "float32"))


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def tiny_barlow_twins(**kwargs):
    kwargs.setdefault("projection_dims", (16, 8))
    return BarlowTwins(tiny_encoder(), **kwargs)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = tiny_barlow_twins()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images = random_images(16)
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    return model, images, before, history.history


def test_defaults_and_architecture_follow_the_paper():
    import inspect

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(BarlowTwins).parameters.items()
    }
    assert defaults["projection_dims"] == (2048, 2048, 2048) and defaults["lambda_"] == 0.0051
    model = tiny_barlow_twins(projection_dims=(16, 16, 8))
    assert model.projector.dims == (16, 16, 8)
    assert model.projector.output_norm is None  # a linear output layer, no BatchNorm
    assert (model.metric_names, model.collapse_metric) == (
        ("invariance", "redundancy", "output_std"),
        "output_std",
    )
    assert not model.synchronized_batch_norm  # "auto" with one replica


def test_model_loss_is_the_loss_of_the_projections():
    model = tiny_barlow_twins(lambda_=0.01)
    rng = np.random.default_rng(4)
    features_a, features_b = rng.normal(size=(2, 8, model.feature_dim)).astype("float32")
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    z_a = model.projector(features_a, training=False).numpy()
    z_b = model.projector(features_b, training=False).numpy()
    np.testing.assert_allclose(float(loss), reference_barlow_twins(z_a, z_b, 0.01), rtol=1e-4)
    assert set(values) == {"invariance", "redundancy", "output_std"}


def test_fit_step_changes_the_encoder_and_logs_finite_metrics(trained):
    model, _, before, history = trained
    assert set(history) == {"loss", "invariance", "redundancy", "output_std"}
    assert all(np.isfinite(values[0]) for values in history.values())
    pairs = zip(before, model.trainable_variables, strict=True)
    changed = [not np.allclose(b, v.numpy()) for b, v in pairs]
    encoder_count = len(model.encoder.trainable_variables)
    # The output bias gets no gradient: the loss standardises each dimension over the batch.
    assert all(changed[:encoder_count]) and all(changed[encoder_count:-1])


def test_keras_file_round_trip_and_training_resumes(trained, tmp_path):
    model, images, _, _ = trained
    path = str(tmp_path / "barlow_twins.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects: the class is registered
    assert isinstance(restored, BarlowTwins)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )
    assert int(restored.optimizer.iterations) == 2
    restored.fit(images, batch_size=8, epochs=1, verbose=0)
    assert int(restored.optimizer.iterations) == 4


SERVE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    embeddings = serving(images=tf.constant(np.load(sys.argv[2])))["embedding"].numpy()
    assert not [name for name in sys.modules if name.startswith("keras_siamese")]
    np.save(sys.argv[3], embeddings)
    """
)


def served_in_a_fresh_process(version_dir, images, directory):
    """Embeddings from the SavedModel in a process that never imports keras_siamese."""
    np.save(directory / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", SERVE, version_dir, "images.npy", "served.npy"],
        cwd=directory,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(directory / "served.npy")


def test_export_serves_the_encoder_representation(trained, tmp_path):
    model, images, _, _ = trained
    version_dir = ks.export.export_for_serving(model, str(tmp_path / "export"))
    served = served_in_a_fresh_process(version_dir, images, tmp_path)
    expected = model.predict(images.astype("float32"), verbose=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def constant_encoder():
    inputs = keras.Input((16, 16, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(8, kernel_initializer="zeros", bias_initializer="ones")(pooled)
    return keras.Model(inputs, outputs)


def test_collapse_monitor_watches_output_std():
    monitor = CollapseMonitor(threshold=0.1, patience=1)
    collapsed = BarlowTwins(constant_encoder(), projection_dims=(16, 8))
    collapsed.compile(optimizer=keras.optimizers.SGD(0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = collapsed.fit(
            random_images(16), batch_size=8, epochs=1, callbacks=[monitor], verbose=0
        )
    assert history.history["output_std"][0] < 1e-3
    assert monitor.collapsed_epoch == 0
    assert any("output_std" in str(warning.message) for warning in caught)

    healthy = CollapseMonitor(threshold=0.1, patience=1)
    model = tiny_barlow_twins()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, callbacks=[healthy], verbose=0)
    assert healthy.collapsed_epoch is None and history.history["output_std"][0] > 0.3


def test_trains_with_an_encoder_of_any_size():
    model = BarlowTwins(tiny_encoder((None, None, 1)), image_size=(16, 16), projection_dims=(8, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert tuple(model.predict(random_images(3), verbose=0).shape) == (3, model.feature_dim)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(lambda_=-1.0), ValueError, r"`lambda_` must be finite and >= 0.*lambda_=-1.0"),
        (dict(lambda_=None), TypeError, r"`lambda_` must be a number.*lambda_=None"),
        (dict(projection_dims=(16, 0)), ValueError, r"`projection_dims`.*\(16, 0\)"),
        (dict(augmenter="simclr"), TypeError, r"`augmenter` must be.*augmenter='simclr'"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_barlow_twins(**arguments)


# ---------------------------------------------------------------------------------------
# Replicas and training (slow)
# ---------------------------------------------------------------------------------------


def check_replicas_equal_one_device(results, weights_tolerance=1e-5):
    """One device's step, to float32 noise; the control (no all_gather) must differ."""
    assert results["relative_update"] > 1e-2, results  # the step really moves the weights
    for count in (2, 4):
        replicated = results[f"replicas_{count}"]
        assert replicated["loss_relative_difference"] < 1e-5, replicated
        assert replicated["weights_relative_difference"] < weights_tolerance, replicated
        assert replicated["updates_relative_difference"] < 1e-4, replicated
        assert replicated["variables_not_close"] == [], replicated
    control = results["without_all_gather"]
    assert control["loss_relative_difference"] > 1e-2, control
    assert control["updates_relative_difference"] > 1e-2, control
    assert control["variables_not_close"], control


@pytest.mark.slow
@pytest.mark.replica_job(redundancy_replicas.SCRIPT, "barlow_twins")
def test_step_on_2_and_4_replicas_equals_one_device(replica_job):  # ~60 s of the shared process
    check_replicas_equal_one_device(redundancy_replicas.results_of(replica_job))


@pytest.mark.slow
@in_replica_process
def test_barlow_twins_on_fashion_mnist_beats_random_init_on_knn():  # ~20 s
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    memory, queries = (images[:2048], labels[:2048]), (test_images[:1000], test_labels[:1000])
    augmenter = ks.augment.simclr_augmenter(
        28, channels=1, strength=0.5, crop_area=(0.25, 1.0), seed=0
    )
    model = BarlowTwins(tiny_encoder((28, 28, 1)), augmenter, projection_dims=(64, 64))
    random_init = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    # The loss sums over d^2 correlations: a low rate (0.002 gave 0.574, 0.001 gives 0.632
    # against 0.543 at random init).
    model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9))
    history = model.fit(memory[0], batch_size=64, epochs=8, verbose=0)
    trained_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert min(history.history["output_std"]) > 0.3
    assert trained_knn > random_init, (random_init, trained_knn)
