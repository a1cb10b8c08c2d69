"""Tests of VICReg: its loss against numpy and lightly's formula, the model, replicas."""

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

import keras_siamese as ks
from keras_siamese.callbacks import CollapseMonitor
from keras_siamese.losses.vicreg import VICRegLoss, vicreg
from keras_siamese.models.vicreg import VICReg

# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


def reference_vicreg(z_a, z_b, invariance=25.0, variance=25.0, covariance=1.0, epsilon=1e-4):
    """From the paper's definitions, with numpy's unbiased `var` and `cov`."""
    z_a, z_b = np.asarray(z_a, "float64"), np.asarray(z_b, "float64")
    dims = z_a.shape[1]

    def variance_term(z):
        return np.mean(np.maximum(0.0, 1.0 - np.sqrt(np.var(z, axis=0, ddof=1) + epsilon)))

    def covariance_term(z):
        matrix = np.cov(z, rowvar=False)
        return (np.sum(matrix**2) - np.sum(np.diag(matrix) ** 2)) / dims

    return (
        invariance * np.mean((z_a - z_b) ** 2)
        + variance * 0.5 * (variance_term(z_a) + variance_term(z_b))
        + covariance * (covariance_term(z_a) + covariance_term(z_b))
    )


def lightly_vicreg(z_a, z_b, lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4):
    """lightly 1.6.0 `VICRegLoss.forward` (gather_distributed=False) in numpy.

    `invariance_loss` is `F.mse_loss` (mean over entries); `variance_loss` takes
    `sqrt(x.var(dim=0) + eps)` (torch's unbiased variance) and the mean of `relu(1 - std)`;
    `covariance_loss` centres x, divides `x^T x` by `batch_size - 1`, sums the squared
    off-diagonal entries and divides by the dimension. The variance terms of the two
    branches are averaged, the covariance terms summed.
    """
    z_a, z_b = np.asarray(z_a, "float64"), np.asarray(z_b, "float64")

    def variance_loss(x):
        std = np.sqrt(x.var(axis=0, ddof=1) + eps)
        return np.mean(np.maximum(1.0 - std, 0.0))

    def covariance_loss(x):
        x = x - x.mean(axis=0)
        batch_size, dim = x.shape
        nondiag_mask = ~np.eye(dim, dtype=bool)
        cov = np.einsum("bc,bd->cd", x, x) / (batch_size - 1)
        return np.sum(cov[nondiag_mask] ** 2) / dim

    inv_loss = np.mean((z_a - z_b) ** 2)
    var_loss = 0.5 * (variance_loss(z_a) + variance_loss(z_b))
    cov_loss = covariance_loss(z_a) + covariance_loss(z_b)
    return lambda_param * inv_loss + mu_param * var_loss + nu_param * cov_loss


# ---------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights", [(25.0, 25.0, 1.0, 1e-4), (1.0, 0.0, 0.0, 1e-4), (0.0, 2.0, 3.0, 1e-2)]
)
@pytest.mark.parametrize("scale", [0.3, 3.0])  # inside and outside the variance hinge
def test_loss_matches_numpy_and_lightly(weights, scale):
    rng = np.random.default_rng(0)
    z_a, z_b = scale * rng.normal(size=(2, 12, 5)).astype("float32")
    z_b += z_a
    arguments = dict(zip(("invariance", "variance", "covariance", "epsilon"), weights, strict=True))
    value = float(
        vicreg(
            z_a,
            z_b,
            invariance_weight=weights[0],
            variance_weight=weights[1],
            covariance_weight=weights[2],
            epsilon=weights[3],
        )
    )
    np.testing.assert_allclose(value, reference_vicreg(z_a, z_b, **arguments), rtol=1e-5)
    np.testing.assert_allclose(value, lightly_vicreg(z_a, z_b, *weights), rtol=1e-5)


def test_loss_terms_and_analytic_cases():
    # Orthogonal +-1 columns: unbiased variance 4/3 (std > 1, no hinge), no covariance.
    z = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], "float32")
    loss, terms = vicreg(z, z, return_terms=True)
    assert float(loss) == 0.0 and set(terms) == {"invariance", "variance", "covariance"}
    # Scaled by s: std = s * sqrt(4/3) (plus epsilon), below 1 for s = 0.5.
    half_std = np.sqrt(0.25 * 4 / 3 + 1e-4)
    loss, terms = vicreg(0.5 * z, -0.5 * z, return_terms=True)
    assert float(terms["variance"]) == pytest.approx(1.0 - half_std, rel=1e-6)
    assert float(terms["invariance"]) == pytest.approx(1.0)  # (0.5 + 0.5)^2
    assert float(terms["covariance"]) == pytest.approx(0.0, abs=1e-12)
    # Constant (collapsed) embeddings: std = sqrt(epsilon), so variance = 1 - 0.01.
    constant = np.ones((8, 4), "float32")
    assert float(vicreg(constant, constant)) == pytest.approx(25.0 * 0.99, rel=1e-6)
    # Identical dimensions: every off-diagonal covariance is 4/3.
    same = np.repeat(z[:, :1], 3, axis=1)
    _, terms = vicreg(same, same, return_terms=True)
    assert float(terms["covariance"]) == pytest.approx(2 * 6 * (4 / 3) ** 2 / 3, rel=1e-6)


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    z_a, z_b = 0.5 * rng.normal(size=(2, 6, 4))  # std below 1: the hinge is active
    variables = tf.Variable(z_a, dtype="float32"), tf.Variable(z_b, dtype="float32")
    with tf.GradientTape() as tape:
        loss = vicreg(*variables)
    gradient_a, gradient_b = tape.gradient(loss, variables)
    expected_a = finite_difference_gradient(lambda a: reference_vicreg(a, z_b), z_a)
    expected_b = finite_difference_gradient(lambda b: reference_vicreg(z_a, b), z_b)
    np.testing.assert_allclose(gradient_a.numpy(), expected_a, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(gradient_b.numpy(), expected_b, rtol=2e-3, atol=1e-4)


def test_loss_in_float16_and_in_a_graph_with_an_unknown_batch_size():
    rng = np.random.default_rng(2)
    z_a, z_b = rng.normal(size=(2, 8, 3)).astype("float32")
    expected = lightly_vicreg(z_a, z_b)
    half = vicreg(z_a.astype("float16"), z_b.astype("float16"))
    assert half.dtype == tf.float32
    np.testing.assert_allclose(float(half), expected, rtol=1e-2)
    spec = tf.TensorSpec((None, 3), tf.float32)
    graph = tf.function(vicreg, input_signature=[spec, spec])
    np.testing.assert_allclose(float(graph(z_a, z_b)), expected, rtol=1e-5)


def test_loss_class_stacks_the_views_and_round_trips_its_config():
    rng = np.random.default_rng(3)
    z_a, z_b = rng.normal(size=(2, 8, 3)).astype("float32")
    loss_fn = VICRegLoss(
        invariance_weight=5.0, variance_weight=2.0, covariance_weight=0.5, epsilon=1e-3
    )
    np.testing.assert_allclose(
        float(loss_fn(None, np.concatenate([z_a, z_b]))),
        lightly_vicreg(z_a, z_b, 5.0, 2.0, 0.5, 1e-3),
        rtol=1e-5,
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, VICRegLoss)
    assert restored.get_config() == loss_fn.get_config()
    with pytest.raises(ValueError, match=r"even number of rows.*y_pred.shape=\(5, 3\)"):
        loss_fn(None, np.ones((5, 3), "float32"))


@pytest.mark.parametrize(
    "z_a_shape, z_b_shape, match",
    [
        ((8,), (8,), r"Argument `z_a` must have rank 2.*Received: z_a.shape=\(8,\)"),
        ((8, 3), (8, 4), r"same shape.*Received: z_a.shape=\(8, 3\), z_b.shape=\(8, 4\)"),
        ((1, 3), (1, 3), r"VICReg needs at least 2 examples per batch.*z_a.shape=\(1, 3\)"),
    ],
)
def test_loss_bad_shapes_raise(z_a_shape, z_b_shape, match):
    with pytest.raises(ValueError, match=match):
        vicreg(np.ones(z_a_shape, "float32"), np.ones(z_b_shape, "float32"))


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(invariance_weight=-1.0), ValueError, r"`invariance_weight` must be finite and >= 0"),
        (dict(variance_weight=float("inf")), ValueError, r"Received: variance_weight=inf"),
        (dict(covariance_weight="1"), TypeError, r"`covariance_weight` must be a number"),
        (dict(epsilon=0.0), ValueError, r"`epsilon` must be finite and > 0.*epsilon=0.0"),
    ],
)
def test_loss_bad_arguments_raise(arguments, error, match):
    z = np.ones((4, 2), "float32")
    with pytest.raises(error, match=match):
        vicreg(z, z, **arguments)
    with pytest.raises(error, match=match):
        VICRegLoss(**arguments)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def tiny_vicreg(**kwargs):
    kwargs.setdefault("projection_dims", (16, 8))
    return VICReg(tiny_encoder(), **kwargs)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = tiny_vicreg()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images = random_images(16)
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    return model, images, before, history.history


def test_defaults_and_architecture_follow_the_paper():
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(VICReg).parameters.items()
    }
    assert defaults["projection_dims"] == (2048, 2048, 2048)
    assert (defaults["invariance_weight"], defaults["variance_weight"]) == (25.0, 25.0)
    assert defaults["covariance_weight"] == 1.0
    model = tiny_vicreg(projection_dims=(16, 16, 8))
    assert model.projector.dims == (16, 16, 8) and model.projector.output_norm is None
    assert model.collapse_metric == "output_std"
    assert model.metric_names == ("invariance", "variance", "covariance", "output_std")


def test_model_loss_is_the_loss_of_the_embeddings():
    model = tiny_vicreg(invariance_weight=2.0, variance_weight=3.0, covariance_weight=4.0)
    rng = np.random.default_rng(4)
    features_a, features_b = rng.normal(size=(2, 8, model.feature_dim)).astype("float32")
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    z_a = model.projector(features_a, training=False).numpy()
    z_b = model.projector(features_b, training=False).numpy()
    np.testing.assert_allclose(float(loss), lightly_vicreg(z_a, z_b, 2.0, 3.0, 4.0), rtol=1e-4)
    assert set(values) == {"invariance", "variance", "covariance", "output_std"}


def test_fit_step_changes_the_encoder_and_logs_finite_metrics(trained):
    model, _, before, history = trained
    assert set(history) == {"loss", "invariance", "variance", "covariance", "output_std"}
    assert all(np.isfinite(values[0]) for values in history.values())
    pairs = zip(before, model.trainable_variables, strict=True)
    changed = [not np.allclose(b, v.numpy()) for b, v in pairs]
    assert all(changed[: len(model.encoder.trainable_variables)])


def test_keras_file_round_trip_and_export(trained, tmp_path):
    model, images, _, _ = trained
    path = str(tmp_path / "vicreg.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, VICReg)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )
    assert int(restored.optimizer.iterations) == 2

    version_dir = ks.export.export_for_serving(restored, str(tmp_path / "export"))
    served = served_in_a_fresh_process(version_dir, images, tmp_path)
    expected = model.predict(images.astype("float32"), verbose=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_collapse_monitor_watches_output_std():
    monitor = CollapseMonitor(threshold=0.1, patience=1)
    collapsed = VICReg(constant_encoder(), projection_dims=(16, 8))
    collapsed.compile(optimizer=keras.optimizers.SGD(0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = collapsed.fit(
            random_images(16), batch_size=8, epochs=1, callbacks=[monitor], verbose=0
        )
    assert history.history["output_std"][0] < 1e-3
    assert history.history["variance"][0] > 0.9  # the hinge sees it too
    assert monitor.collapsed_epoch == 0
    assert any("output_std" in str(warning.message) for warning in caught)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(variance_weight=-1.0), ValueError, r"`variance_weight` must be finite and >= 0"),
        (dict(covariance_weight=None), TypeError, r"`covariance_weight` must be a number"),
        (dict(projection_dims=()), ValueError, r"`projection_dims`.*projection_dims=\(\)"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_vicreg(**arguments)


# ---------------------------------------------------------------------------------------
# Replicas and training (slow)
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.replica_job(redundancy_replicas.SCRIPT, "vicreg")
def test_step_on_2_and_4_replicas_equals_one_device(replica_job):
    check_replicas_equal_one_device(redundancy_replicas.results_of(replica_job))


@pytest.mark.slow
@in_replica_process
def test_vicreg_on_fashion_mnist_beats_random_init_on_knn():  # ~20 s
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    memory, queries = (images[:2048], labels[:2048]), (test_images[:1000], test_labels[:1000])
    augmenter = ks.augment.simclr_augmenter(
        28, channels=1, strength=0.5, crop_area=(0.25, 1.0), seed=0
    )
    model = VICReg(tiny_encoder((28, 28, 1)), augmenter, projection_dims=(64, 64))
    random_init = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9))  # 0.639 vs 0.543
    history = model.fit(memory[0], batch_size=64, epochs=8, verbose=0)
    trained_knn = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert min(history.history["output_std"]) > 0.3
    assert trained_knn > random_init, (random_init, trained_knn)
