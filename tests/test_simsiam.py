"""Tests of SimSiam: its loss against numpy, the stop-gradient, collapse, the split optimizer."""

import json
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder
from keras import ops

import keras_siamese as ks
from keras_siamese import heads, losses, optimizers
from keras_siamese.callbacks import CollapseMonitor
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


def numpy_negative_cosine(p, z):
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return -np.mean(np.sum(p * z, axis=1))


def tiny_simsiam(**kwargs):
    arguments = dict(projection_dim=16, projection_layers=2, predictor_hidden_dim=8)
    arguments.update(kwargs)
    return ks.SimSiam(tiny_encoder(), **arguments)


# ---------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------


def test_negative_cosine_matches_numpy_and_analytic_cases():
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(2, 6, 5)).astype("float32")
    np.testing.assert_allclose(
        float(losses.negative_cosine(p, z)), numpy_negative_cosine(p, z), rtol=1e-5
    )
    assert float(losses.negative_cosine(p, 3.0 * p)) == pytest.approx(-1.0, abs=1e-6)
    assert float(losses.negative_cosine(p, -p)) == pytest.approx(1.0, abs=1e-6)
    orthogonal = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    assert float(losses.negative_cosine(orthogonal, orthogonal[::-1])) == pytest.approx(0.0)


def test_negative_cosine_gradient_reaches_p_only():
    rng = np.random.default_rng(1)
    p_values, z_values = rng.normal(size=(2, 4, 3))
    p, z = tf.Variable(p_values, dtype="float32"), tf.Variable(z_values, dtype="float32")
    with tf.GradientTape() as tape:
        loss = losses.negative_cosine(p, z)
    gradient_p, gradient_z = tape.gradient(
        loss, [p, z], unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    np.testing.assert_array_equal(gradient_z.numpy(), np.zeros_like(z_values))
    # d/dp of -mean(p^.z^) = -(z^ - (p^.z^) p^) / (n ||p||).
    norm_p = np.linalg.norm(p_values, axis=1, keepdims=True)
    unit_p = p_values / norm_p
    unit_z = z_values / np.linalg.norm(z_values, axis=1, keepdims=True)
    cosine = np.sum(unit_p * unit_z, axis=1, keepdims=True)
    expected = -(unit_z - cosine * unit_p) / (len(p_values) * norm_p)
    np.testing.assert_allclose(gradient_p.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_symmetric_loss_matches_numpy_and_stops_gradients_at_the_targets():
    model = tiny_simsiam()
    rng = np.random.default_rng(2)
    features_a, features_b = rng.normal(size=(2, 8, model.feature_dim)).astype("float32")
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    z_a, z_b = (model.projector(f, training=False).numpy() for f in (features_a, features_b))
    p_a, p_b = (model.predictor(z, training=False).numpy() for z in (z_a, z_b))
    expected = 0.5 * numpy_negative_cosine(p_a, z_b) + 0.5 * numpy_negative_cosine(p_b, z_a)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(values) == {"output_std"}

    # The target branch: the same projections as constants, fed where stopgrad(z) goes.
    z_a, z_b = tf.Variable(z_a), tf.Variable(z_b)
    with tf.GradientTape() as tape:
        loss = 0.5 * losses.negative_cosine(tf.constant(p_a), z_b) + 0.5 * losses.negative_cosine(
            tf.constant(p_b), z_a
        )
    for gradient in tape.gradient(loss, [z_a, z_b], unconnected_gradients="zero"):
        assert float(tf.reduce_max(tf.abs(gradient))) == 0.0


def test_negative_cosine_class_per_example_weights_and_config():
    rng = np.random.default_rng(3)
    p, z = rng.normal(size=(2, 4, 3)).astype("float32")
    loss_fn = losses.NegativeCosine()
    np.testing.assert_allclose(float(loss_fn(z, p)), numpy_negative_cosine(p, z), rtol=1e-5)
    weights = np.array([1.0, 0.0, 0.0, 0.0], "float32")
    np.testing.assert_allclose(
        float(loss_fn(z, p, sample_weight=weights)),
        numpy_negative_cosine(p[:1], z[:1]) / 4,
        rtol=1e-5,
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, losses.NegativeCosine)
    assert restored.get_config() == loss_fn.get_config()


@pytest.mark.parametrize(
    "p_shape, z_shape, match",
    [
        ((4,), (4,), r"Argument `p` must have rank 2.*Received: p.shape=\(4,\)"),
        ((4, 3), (4, 2, 1), r"Argument `z` must have rank 2.*Received: z.shape=\(4, 2, 1\)"),
        ((4, 3), (4, 2), r"must have the same shape.*Received: p.shape=\(4, 3\), z.shape=\(4, 2\)"),
    ],
)
def test_negative_cosine_bad_shapes_raise(p_shape, z_shape, match):
    with pytest.raises(ValueError, match=match):
        losses.negative_cosine(np.ones(p_shape, "float32"), np.ones(z_shape, "float32"))
    with pytest.raises(ValueError, match=match):
        losses.NegativeCosine()(np.ones(z_shape, "float32"), np.ones(p_shape, "float32"))


# ---------------------------------------------------------------------------------------
# Heads and the model
# ---------------------------------------------------------------------------------------


def test_prediction_head_is_a_bottleneck_with_a_linear_output():
    head = heads.PredictionHead(output_dim=6, hidden_dim=3)
    outputs = head(np.random.default_rng(4).normal(size=(5, 6)).astype("float32"))
    assert tuple(outputs.shape) == (5, 6)
    kernels = {w.path.split("/")[-2]: tuple(w.shape) for w in head.weights if "kernel" in w.path}
    assert kernels == {"hidden0": (6, 3), "output": (3, 6)}
    assert head.output_norm is None and head.output_dense.use_bias
    assert (outputs.numpy() < 0).any()  # no ReLU on the output
    restored = heads.PredictionHead.from_config(head.get_config())
    assert (restored.output_dim, restored.hidden_dim) == (6, 3)
    with pytest.raises(ValueError, match=r"`hidden_dim` must be an integer >= 1.*hidden_dim=0"):
        heads.PredictionHead(output_dim=6, hidden_dim=0)


def test_simsiam_architecture_follows_the_paper():
    model = tiny_simsiam(projection_layers=3)
    assert model.projector.dims == (16, 16, 16) and model.projector.output_batch_norm
    assert model.predictor.dims == (8, 16)
    z = model.projector(np.ones((4, model.feature_dim), "float32") * np.arange(4)[:, None])
    assert (z.numpy() < 0).any()  # BatchNorm output, no ReLU
    assert model.metric_names == ("output_std",)


def test_normalized_std_is_one_for_gaussian_and_zero_for_constant_outputs():
    gaussian = np.random.default_rng(5).normal(size=(4096, 64)).astype("float32")
    unit = gaussian / np.linalg.norm(gaussian, axis=1, keepdims=True)
    expected = np.mean(np.std(unit, axis=0)) * np.sqrt(64)
    value = float(normalized_std(gaussian))
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    assert abs(value - 1.0) < 0.02
    assert float(normalized_std(np.ones((16, 64), "float32") * 3.0)) < 1e-6

    inputs = keras.Input((16, 16, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    constant = keras.layers.Dense(8, kernel_initializer="zeros", bias_initializer="ones")(pooled)
    model = ks.SimSiam(
        keras.Model(inputs, constant),
        projection_dim=16,
        projection_layers=2,
        predictor_hidden_dim=8,
    )
    model.compile(optimizer="sgd")
    logs = model.evaluate(random_images(16), batch_size=8, verbose=0, return_dict=True)
    assert logs["output_std"] < 1e-3


def test_fit_trains_the_encoder_decays_all_but_the_predictor_and_round_trips(tmp_path):
    model = tiny_simsiam()
    model.compile(optimizer=optimizers.simsiam_optimizer(batch_size=8, steps=4))
    images = random_images(32)
    before = [v.numpy().copy() for v in model.encoder.trainable_variables]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "output_std"}
    assert -1.0 <= history.history["loss"][0] <= 1.0
    assert 0.3 < history.history["output_std"][0] < 1.5
    pairs = zip(before, model.encoder.trainable_variables, strict=True)
    assert all(not np.allclose(a, b.numpy()) for a, b in pairs)
    assert tuple(model(random_images(3)).shape) == (3, model.feature_dim)

    # After the 4 steps of the schedule the rate has decayed to 0, except the predictor's.
    split = model.optimizer
    assert int(split.iterations) == 4
    assert float(split.learning_rate) == pytest.approx(0.0, abs=1e-8)
    assert float(split.predictor_optimizer.learning_rate) == pytest.approx(0.03 * 8 / 256)
    routed = {v.path for v in split.predictor_optimizer._trainable_variables}
    assert routed == {v.path for v in model.predictor.trainable_variables}

    path = str(tmp_path / "simsiam.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, ks.SimSiam)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), restored.predict(images, verbose=0), atol=1e-5
    )
    assert isinstance(restored.optimizer, optimizers.SplitOptimizer)
    assert int(restored.optimizer.iterations) == 4
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(saved), np.asarray(loaded))


def test_export_serves_the_encoder_representation(tmp_path):
    model = tiny_simsiam()
    images = random_images(4)
    version_dir = ks.export.export_for_serving(model, str(tmp_path / "export"))
    served = ks.export.load_for_inference(version_dir).embed(images)
    expected = model.predict(images, verbose=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(projection_dim=0), ValueError, r"`projection_dim` must be an integer >= 1.*=0"),
        (dict(projection_layers=1.5), TypeError, r"`projection_layers`.*projection_layers=1.5"),
        (dict(predictor_hidden_dim=True), TypeError, r"`predictor_hidden_dim`.*=True"),
    ],
)
def test_simsiam_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        tiny_simsiam(**arguments)


def test_simsiam_refuses_a_loss_and_single_image_batches():
    model = tiny_simsiam()
    with pytest.raises(ValueError, match=r"computes its own loss.*Received: loss='mse'"):
        model.compile(optimizer="sgd", loss="mse")
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"leave a batch of 1"):
        model.fit(random_images(9), batch_size=8, verbose=0)


@pytest.mark.slow
@in_replica_process
def test_simsiam_on_fashion_mnist_beats_random_init_on_knn():  # ~30 s on a quiet machine
    # 512 steps at a high rate: the cosine loss' gradients are ~5x smaller than NT-Xent's
    # at temperature 0.2, and the paper's 0.03 * B / 256 barely moves a tiny encoder in
    # this budget. The fixed predictor rate matters here (0.588 vs 0.549 without).
    images, labels = ks.datasets.load_arrays("fashion_mnist", "train")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test")
    memory, queries = (images[:2048], labels[:2048]), (test_images[:1000], test_labels[:1000])
    augmenter = ks.augment.simsiam_augmenter(28, channels=1, seed=0)
    model = ks.SimSiam(
        tiny_encoder((28, 28, 1)),
        augmenter,
        projection_dim=64,
        projection_layers=2,
        predictor_hidden_dim=16,
    )
    random_init = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    model.compile(
        optimizer=optimizers.simsiam_optimizer(
            64, steps=512, base_learning_rate=2.0, warmup_steps=32
        )
    )
    history = model.fit(memory[0], batch_size=64, epochs=16, verbose=0)
    trained = ks.evaluation.knn_accuracy(model, memory, queries, k=20, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0] - 0.2
    assert min(history.history["output_std"]) > 0.5
    assert trained > random_init, (random_init, trained)


# ---------------------------------------------------------------------------------------
# Collapse
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_siamese_tests")
class NoPredictorNoStopGradient(TwoViewModel):
    """The collapsing ablation of Chen & He (2021, Fig. 2): cosine of z_a and z_b, no guard."""

    metric_names = ("output_std",)
    collapse_metric = "output_std"

    def __init__(self, encoder, augmenter=None, **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        self.projector = heads.ProjectionHead((16, 16), name="projector")
        self.build((None, *self.image_shape))

    def loss_on_features(self, features_a, features_b, training):
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)
        cosine = ops.sum(ops.normalize(z_a, axis=-1) * ops.normalize(z_b, axis=-1), axis=-1)
        return -ops.mean(cosine), {"output_std": normalized_std(z_a)}


def fit_with_monitor(model, epochs=5):
    monitor = CollapseMonitor(threshold=0.3, patience=2, stop_training=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            random_images(64), batch_size=16, epochs=epochs, callbacks=[monitor], verbose=0
        )
    collapse_warnings = [w for w in caught if "has collapsed" in str(w.message)]
    return monitor, history.history["output_std"], collapse_warnings


def test_collapse_monitor_fires_on_a_collapsing_setup_and_not_on_simsiam():
    monitor, stds, caught = fit_with_monitor(NoPredictorNoStopGradient(tiny_encoder()))
    assert monitor.collapsed_epoch is not None, stds
    assert len(stds) == monitor.collapsed_epoch + 1 < 5  # stopped early
    assert stds[-1] < 0.3 and len(caught) == 1
    assert "output_std" in str(caught[0].message) and "stop-gradient" in str(caught[0].message)

    monitor, stds, caught = fit_with_monitor(tiny_simsiam())
    assert monitor.collapsed_epoch is None and not caught
    assert len(stds) == 5 and min(stds) > 0.5


def test_collapse_monitor_patience_reset_and_the_models_declared_metric():
    monitor = CollapseMonitor(threshold=0.1, patience=2)
    monitor.set_model(ks.SimCLR(tiny_encoder(), projection_dims=(8, 4)))
    monitor.on_train_begin()  # SimCLR declares collapse_metric = "representation_std"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch, value in enumerate([0.05, 0.5, 0.05, 0.02, 0.01]):
            monitor.on_epoch_end(epoch, {"loss": 1.0, "representation_std": value})
    assert monitor.collapsed_epoch == 3  # the low epoch 0 was reset by epoch 1
    assert len(caught) == 1 and "representation_std" in str(caught[0].message)

    explicit = CollapseMonitor(metric="val_output_std", patience=1)
    explicit.on_epoch_end(0, {"output_std": 0.0, "val_output_std": 0.9})
    assert explicit.collapsed_epoch is None
    declared = CollapseMonitor()
    declared.set_model(tiny_simsiam())
    declared.on_train_begin()
    with pytest.warns(UserWarning, match=r"watches 'output_std', which is not in the epoch logs"):
        declared.on_epoch_end(0, {"loss": 1.0})
    undeclared = CollapseMonitor()
    undeclared.set_model(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match=r"declares no `collapse_metric`.*Received: metric=None"):
        undeclared.on_train_begin()


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(threshold=0), ValueError, r"`threshold` must be > 0. Received: threshold=0"),
        (dict(threshold="0.1"), TypeError, r"`threshold` must be a number"),
        (dict(patience=0), ValueError, r"`patience` must be >= 1.*patience=0"),
        (dict(patience=1.0), TypeError, r"`patience` must be an int"),
        (dict(stop_training=1), TypeError, r"`stop_training` must be a bool"),
        (dict(metric=""), ValueError, r"`metric` must be a non-empty string.*metric=''"),
    ],
)
def test_collapse_monitor_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        CollapseMonitor(**arguments)


# ---------------------------------------------------------------------------------------
# The split optimizer (a fixed learning rate for the predictor)
# ---------------------------------------------------------------------------------------


def predictor_toy_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, name="backbone")(inputs)
    outputs = keras.layers.Dense(2, name="predictor")(hidden)
    return keras.Model(inputs, outputs, name="toy")


def test_predictor_keeps_its_rate_while_the_rest_decays():
    model = predictor_toy_model()
    schedule = optimizers.WarmupCosine(0.1, total_steps=4)
    optimizer = optimizers.SplitOptimizer(
        keras.optimizers.SGD(schedule), keras.optimizers.SGD(0.1), route=("predictor",)
    )
    variables = model.trainable_variables
    optimizer.build(variables)
    ones = [np.ones(v.shape, "float32") for v in variables]
    steps = []
    for step in range(5):
        before = [v.numpy().copy() for v in variables]
        optimizer.apply_gradients(zip(ones, variables, strict=True))
        # With momentum 0 and unit gradients, a variable moves by exactly its rate.
        pairs = zip(before, variables, strict=True)
        steps.append([float(np.mean(b - v.numpy())) for b, v in pairs])
        expected = float(schedule(step))
        np.testing.assert_allclose(steps[-1][:2], expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(steps[-1][2:], 0.1, rtol=1e-5)
    assert steps[-1][0] == pytest.approx(0.0, abs=1e-7)  # the backbone has decayed to 0
    assert int(optimizer.iterations) == 5
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)
    assert float(optimizer.predictor_optimizer.learning_rate) == pytest.approx(0.1)


def test_simsiam_optimizer_recipe():
    optimizer = optimizers.simsiam_optimizer(batch_size=512, steps=100)
    assert isinstance(optimizer, optimizers.SplitOptimizer)
    assert optimizer.route == ("predictor",)
    assert float(optimizer.learning_rate) == pytest.approx(0.06)
    assert float(optimizer.predictor_optimizer.learning_rate) == pytest.approx(0.06)
    assert optimizer.default_optimizer.momentum == 0.9
    assert optimizer.default_optimizer.weight_decay == pytest.approx(5e-3)  # 5e-4 / (1 - 0.9)
    schedule = optimizer.default_optimizer._learning_rate
    assert float(schedule(50)) == pytest.approx(0.03)  # cosine: half way, half the rate
    plain = optimizers.simsiam_optimizer(256, 100, fixed_predictor_learning_rate=False)
    assert type(plain) is keras.optimizers.SGD


def test_split_optimizer_config_learning_rate_setter_and_loss_scale():
    optimizer = optimizers.SplitOptimizer(
        keras.optimizers.SGD(0.5, loss_scale_factor=4.0),
        keras.optimizers.Adam(0.01, loss_scale_factor=4.0),
        route=("predictor", "head"),
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored.predictor_optimizer, keras.optimizers.Adam)
    assert restored.route == ("predictor", "head")
    assert restored.get_config() == optimizer.get_config()
    assert float(optimizer.scale_loss(tf.constant(2.0))) == 8.0
    optimizer.learning_rate = 0.25
    assert float(optimizer.default_optimizer.learning_rate) == 0.25
    assert float(optimizer.predictor_optimizer.learning_rate) == pytest.approx(0.01)
    optimizer.loss_scale_factor = None  # what LossScaleOptimizer does to its inner optimizer
    assert optimizer.default_optimizer.loss_scale_factor is None
    assert optimizer.predictor_optimizer.loss_scale_factor is None


def test_split_optimizer_under_loss_scale_optimizer_unscales_once():
    model = predictor_toy_model()
    split = optimizers.SplitOptimizer(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.2))
    wrapped = keras.optimizers.LossScaleOptimizer(split, initial_scale=8.0)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    scaled = [8.0 * np.ones(v.shape, "float32") for v in variables]
    wrapped.apply_gradients(zip(scaled, variables, strict=True))
    moves = [float(np.mean(b - v.numpy())) for b, v in zip(before, variables, strict=True)]
    np.testing.assert_allclose(moves, [0.1, 0.1, 0.2, 0.2], rtol=1e-5)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (
            lambda: optimizers.SplitOptimizer("sgd", keras.optimizers.SGD()),
            TypeError,
            r"`default_optimizer` must be a keras.optimizers.Optimizer.*default_optimizer='sgd'",
        ),
        (
            lambda: optimizers.SplitOptimizer(*[keras.optimizers.SGD()] * 2),
            ValueError,
            r"two different optimizer objects",
        ),
        (
            lambda: optimizers.SplitOptimizer(
                keras.optimizers.SGD(), keras.optimizers.SGD(), route="predictor"
            ),
            TypeError,
            r"`route` must be a list or tuple.*route='predictor'",
        ),
        (
            lambda: optimizers.SplitOptimizer(
                keras.optimizers.SGD(), keras.optimizers.SGD(), route=()
            ),
            ValueError,
            r"at least one substring",
        ),
        (
            lambda: optimizers.SplitOptimizer(
                keras.optimizers.SGD(loss_scale_factor=2.0), keras.optimizers.SGD()
            ),
            ValueError,
            r"same `loss_scale_factor`.*default_optimizer.loss_scale_factor=2.0",
        ),
        (lambda: optimizers.simsiam_optimizer(0, 10), ValueError, r"`batch_size` must be.*>= 1"),
        (
            lambda: optimizers.simsiam_optimizer(8, 10, momentum=1.0),
            ValueError,
            r"`momentum` must be.*< 1",
        ),
        (
            lambda: optimizers.simsiam_optimizer(8, 10, fixed_predictor_learning_rate=1),
            TypeError,
            r"`fixed_predictor_learning_rate` must be a bool",
        ),
    ],
)
def test_split_optimizer_bad_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_split_optimizer_route_matching_nothing_raises_at_build():
    optimizer = optimizers.SplitOptimizer(
        keras.optimizers.SGD(), keras.optimizers.SGD(), route=("no_such_layer",)
    )
    with pytest.raises(ValueError, match=r"matches none of the 4 variables"):
        optimizer.build(predictor_toy_model().trainable_variables)


MIRRORED_SPLIT_CHECK = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    from scripts.logical_cpus import use_logical_cpus

    use_logical_cpus(2)
    import keras
    from keras_siamese import optimizers

    def train(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            inputs = keras.Input((3,))
            hidden = keras.layers.Dense(4, name="backbone")(inputs)
            outputs = keras.layers.Dense(2, name="predictor")(hidden)
            model = keras.Model(inputs, outputs)
            schedule = optimizers.WarmupCosine(0.1, total_steps=4)
            model.compile(
                optimizer=optimizers.SplitOptimizer(
                    keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=1e-2),
                    keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-2),
                ),
                loss="mse",
            )
        rng = np.random.default_rng(0)
        features = rng.normal(size=(16, 3)).astype("float32")
        targets = rng.normal(size=(16, 2)).astype("float32")
        model.fit(features, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == 4
        return [v.numpy() for v in model.trainable_variables]

    single = train(tf.distribute.get_strategy())
    mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print("MIRRORED_SPLIT_OK")
    """
)


@pytest.mark.slow
@pytest.mark.replica_job("-c", MIRRORED_SPLIT_CHECK)
def test_split_optimizer_under_mirrored_strategy_matches_single_device(replica_job):
    result = replica_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "MIRRORED_SPLIT_OK" in result.stdout
