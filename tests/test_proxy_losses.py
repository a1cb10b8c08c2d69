"""Tests of the proxy losses (ArcFace, sub-center ArcFace, CosFace, ProxyAnchor, ProxyNCA) and
of `ClassProxies`.

The references are float64 loops written from pytorch-metric-learning's formulas and
reducers (PML 2.x: `ArcFaceLoss`, `SubCenterArcFaceLoss`, `CosFaceLoss`: the mean of the
per-example cross-entropies; `ProxyAnchorLoss`: `DivisorReducer` over the proxies with
positives and over `num_classes`; `ProxyNCALoss`: `LpDistance(power=2)` of normalised vectors,
the mean), not from the implementation under test.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process

from keras_siamese import proxies
from keras_siamese.losses.arcface import ArcFaceLoss, arcface, arcface_from_cosines
from keras_siamese.losses.cosface import CosFaceLoss, cosface, cosface_from_cosines
from keras_siamese.losses.proxy_anchor import (
    ProxyAnchorLoss,
    proxy_anchor,
    proxy_anchor_from_cosines,
)
from keras_siamese.losses.proxy_nca import ProxyNCALoss, proxy_nca, proxy_nca_from_cosines
from keras_siamese.losses.sub_center_arcface import (
    SubCenterArcFaceLoss,
    sub_center_arcface,
    sub_center_arcface_from_cosines,
)

# ---------------------------------------------------------------------------------------
# float64 references
# ---------------------------------------------------------------------------------------


def unit_rows(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosine_matrix(embeddings, weights):
    return unit_rows(embeddings) @ unit_rows(weights).T


def softmax_cross_entropy(logits, label):
    top = max(logits)
    return top + math.log(sum(math.exp(value - top) for value in logits)) - logits[label]


def reference_margin_softmax(cosines, labels, target_logit, scale):
    """PML's LargeMarginSoftmaxLoss skeleton: the label's cosine replaced, scaled, CE, mean."""
    losses = []
    for row, label in zip(cosines, labels, strict=True):
        logits = [
            scale * (target_logit(value) if column == label else value)
            for column, value in enumerate(row)
        ]
        losses.append(softmax_cross_entropy(logits, label))
    return float(np.mean(losses))


def arcface_target(margin_degrees):
    margin = math.radians(margin_degrees)

    def target(cosine):
        angle = math.acos(min(max(cosine, -1.0), 1.0))
        if angle <= math.pi - margin:
            return math.cos(angle + margin)
        return math.cos(angle) - margin * math.sin(margin)

    return target


def reference_arcface(embeddings, labels, weights, margin=28.6, scale=64.0):
    cosines = cosine_matrix(embeddings, weights)
    return reference_margin_softmax(cosines, labels, arcface_target(margin), scale)


def reference_sub_center_arcface(embeddings, labels, weights, sub_centers=3, margin=28.6, scale=64):
    cosines = cosine_matrix(embeddings, weights)
    classes = cosines.shape[1] // sub_centers
    per_class = [
        [max(row[c * sub_centers + k] for k in range(sub_centers)) for c in range(classes)]
        for row in cosines
    ]
    return reference_margin_softmax(per_class, labels, arcface_target(margin), scale)


def reference_cosface(embeddings, labels, weights, margin=0.35, scale=64.0):
    cosines = cosine_matrix(embeddings, weights)
    return reference_margin_softmax(cosines, labels, lambda c: c - margin, scale)


def reference_proxy_anchor(embeddings, labels, proxy_rows, margin=0.1, alpha=32.0):
    cosines = cosine_matrix(embeddings, proxy_rows)
    classes = cosines.shape[1]
    positive_sum = negative_sum = 0.0
    with_positives = 0
    for c in range(classes):
        positives = [i for i, label in enumerate(labels) if label == c]
        negatives = [i for i, label in enumerate(labels) if label != c]
        with_positives += bool(positives)
        positive_sum += math.log(
            1.0 + sum(math.exp(-alpha * (cosines[i, c] - margin)) for i in positives)
        )
        negative_sum += math.log(
            1.0 + sum(math.exp(alpha * (cosines[i, c] + margin)) for i in negatives)
        )
    positive_loss = positive_sum / with_positives if with_positives else 0.0
    return positive_loss + negative_sum / classes


def reference_proxy_nca(embeddings, labels, proxy_rows, softmax_scale=1.0):
    units, proxy_units = unit_rows(embeddings), unit_rows(proxy_rows)
    losses = []
    for unit, label in zip(units, labels, strict=True):
        squared = [float(np.sum((unit - proxy) ** 2)) for proxy in proxy_units]
        weights = [math.exp(-softmax_scale * value) for value in squared]
        losses.append(-math.log(weights[label] / sum(weights)))
    return float(np.mean(losses))


# name: (function, reference, rows of weights per class, small hyperparameters for gradients)
LOSSES = {
    "arcface": (arcface, reference_arcface, 1, {"scale": 8.0}),
    "sub_center_arcface": (
        sub_center_arcface,
        reference_sub_center_arcface,
        3,
        {"scale": 8.0, "sub_centers": 3},
    ),
    "cosface": (cosface, reference_cosface, 1, {"scale": 8.0}),
    "proxy_anchor": (proxy_anchor, reference_proxy_anchor, 1, {"alpha": 4.0}),
    "proxy_nca": (proxy_nca, reference_proxy_nca, 1, {"softmax_scale": 2.0}),
}


def float32_close(expected):
    """The float32 maths against a float64 closed form."""
    return pytest.approx(expected, rel=1e-5, abs=1e-6)


def random_case(seed, rows_per_class=1, count=12, dims=6, classes=5, present=None):
    rng = np.random.default_rng(seed)
    present = list(range(classes)) if present is None else present
    labels = rng.permutation(np.resize(present, count)).astype("int32")
    embeddings = rng.normal(size=(count, dims)).astype("float32")
    weights = rng.normal(size=(classes * rows_per_class, dims)).astype("float32")
    return embeddings, labels, weights


# ---------------------------------------------------------------------------------------
# Values: references, analytic cases
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("present", [None, [0, 1, 3]], ids=["all_classes", "classes_absent"])
def test_matches_reference_at_defaults(name, present):
    function, reference, rows, _ = LOSSES[name]
    for seed in range(3):
        embeddings, labels, weights = random_case(seed, rows, present=present)
        value = float(function(embeddings, labels, weights))
        expected = reference(embeddings, labels, weights)
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_matches_reference_with_other_hyperparameters(name):
    function, reference, rows, small = LOSSES[name]
    embeddings, labels, weights = random_case(7, rows, present=[1, 2, 4])
    value = float(function(embeddings, labels, weights, **small))
    np.testing.assert_allclose(value, reference(embeddings, labels, weights, **small), rtol=1e-5)


def test_arcface_past_pi_minus_margin_follows_the_linear_branch():
    # Embeddings near the opposite of their class weight: theta > pi - m.
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(4, 6)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0, 1], "int32")
    embeddings = (-weights[labels] + 0.05 * rng.normal(size=(6, 6))).astype("float32")
    assert np.all(np.diag(cosine_matrix(embeddings, weights[labels])) < -math.cos(0.5))
    for margin, scale in [(28.6, 64.0), (50.0, 4.0)]:
        value = float(arcface(embeddings, labels, weights, margin=margin, scale=scale))
        expected = reference_arcface(embeddings, labels, weights, margin, scale)
        np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_analytic_cases_embeddings_on_their_class_weights():
    classes, scale = 4, 8.0
    weights = np.eye(classes, 6, dtype="float32")
    labels = np.array([0, 1, 2, 3, 1, 1], "int32")
    embeddings = 3.0 * weights[labels]  # the norm does not matter
    margin = math.radians(28.6)
    expected = math.log(math.exp(scale * math.cos(margin)) + classes - 1) - scale * math.cos(margin)
    assert float(arcface(embeddings, labels, weights, scale=scale)) == float32_close(expected)
    expected = math.log(math.exp(scale * 0.65) + classes - 1) - scale * 0.65
    assert float(cosface(embeddings, labels, weights, scale=scale)) == float32_close(expected)
    # ProxyNCA: squared distance 0 to its proxy, 2 to the others.
    expected = math.log(1 + (classes - 1) * math.exp(-2.0))
    assert float(proxy_nca(embeddings, labels, weights)) == float32_close(expected)
    # ProxyAnchor: class c has n_c positives at cosine 1, the other N - n_c at cosine 0.
    counts = np.bincount(labels, minlength=classes)
    positive = np.mean([math.log1p(n * math.exp(-32.0 * 0.9)) for n in counts])
    negative = np.mean([math.log1p((len(labels) - n) * math.exp(32.0 * 0.1)) for n in counts])
    value = float(proxy_anchor(embeddings, labels, weights))
    assert value == float32_close(positive + negative)
    # The opposite of the class weight: theta = pi, past pi - m.
    target = -1.0 - margin * math.sin(margin)
    expected = math.log(math.exp(scale * target) + classes - 1) - scale * target
    value = float(arcface(-weights[labels], labels, weights, scale=scale))
    assert value == float32_close(expected)


def test_sub_center_analytic_case_takes_the_closest_sub_center():
    classes, sub_centers, scale = 3, 3, 8.0
    weights = np.eye(classes * sub_centers, 10, dtype="float32")
    labels = np.array([0, 1, 2, 2], "int32")
    chosen = labels * sub_centers + np.array([0, 2, 1, 2])  # any sub-centre of the class
    margin = math.radians(28.6)
    expected = math.log(math.exp(scale * math.cos(margin)) + classes - 1) - scale * math.cos(margin)
    value = sub_center_arcface(weights[chosen], labels, weights, scale=scale)
    assert float(value) == float32_close(expected)
    # With one sub-centre it is ArcFace.
    embeddings, labels, weights = random_case(5)
    np.testing.assert_allclose(
        float(sub_center_arcface(embeddings, labels, weights, sub_centers=1)),
        float(arcface(embeddings, labels, weights)),
        rtol=1e-6,
    )


def test_functions_equal_their_cosine_cores_and_the_loss_classes():
    embeddings, labels, weights = random_case(11, 3)
    cosines = proxies.proxy_cosines(embeddings, weights)
    class_weights = weights[::3]
    class_cosines = proxies.proxy_cosines(embeddings, class_weights)
    pairs = [
        (arcface(embeddings, labels, class_weights), arcface_from_cosines(class_cosines, labels)),
        (cosface(embeddings, labels, class_weights), cosface_from_cosines(class_cosines, labels)),
        (
            proxy_anchor(embeddings, labels, class_weights),
            ProxyAnchorLoss(5)(labels, class_cosines),
        ),
        (
            proxy_nca(embeddings, labels, class_weights),
            proxy_nca_from_cosines(class_cosines, labels),
        ),
        (
            sub_center_arcface(embeddings, labels, weights),
            sub_center_arcface_from_cosines(cosines, labels),
        ),
        (
            ArcFaceLoss(5).compute(embeddings, labels, class_weights),
            ArcFaceLoss(5)(labels, class_cosines),
        ),
        (
            SubCenterArcFaceLoss(5).compute(embeddings, labels, proxies=weights),
            SubCenterArcFaceLoss(5)(labels[:, None], cosines),  # (batch, 1) labels too
        ),
        (
            CosFaceLoss(5).compute(embeddings, labels, class_weights),
            CosFaceLoss(5)(labels, class_cosines),
        ),
        (
            ProxyNCALoss(5).compute(embeddings, labels, class_weights),
            ProxyNCALoss(5)(labels, class_cosines),
        ),
        (
            proxy_anchor_from_cosines(class_cosines, labels),
            ProxyAnchorLoss(5).compute(embeddings, labels, class_weights),
        ),
    ]
    for first, second in pairs:
        assert first.dtype == tf.float32
        np.testing.assert_allclose(float(first), float(second), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------


def numeric_gradient(function, value, step=1e-6):
    """Central differences of a float64 scalar function of an array."""
    value = np.asarray(value, np.float64)
    gradient = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[index] += step
        minus[index] -= step
        gradient[index] = (function(plus) - function(minus)) / (2 * step)
    return gradient


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_match_finite_differences_of_the_reference(name):
    function, reference, rows, small = LOSSES[name]
    embeddings, labels, weights = random_case(2, rows, count=5, dims=3, classes=3)
    embeddings_t, weights_t = tf.constant(embeddings), tf.constant(weights)
    with tf.GradientTape() as tape:
        tape.watch([embeddings_t, weights_t])
        loss = function(embeddings_t, labels, weights_t, **small)
    gradients = tape.gradient(loss, [embeddings_t, weights_t])
    expected = [
        numeric_gradient(lambda e: reference(e, labels, weights, **small), embeddings),
        numeric_gradient(lambda w: reference(embeddings, labels, w, **small), weights),
    ]
    for gradient, numeric in zip(gradients, expected, strict=True):
        scale = np.abs(numeric).max()
        assert scale > 1e-3
        np.testing.assert_allclose(gradient.numpy(), numeric, rtol=1e-3, atol=1e-3 * scale)


def test_arcface_gradient_is_finite_on_the_class_weight():
    # cos(theta) = 1 exactly: arccos has an infinite slope there, the loss must not.
    weights = tf.constant(np.eye(3, 4, dtype="float32"))
    embeddings = tf.constant(np.eye(3, 4, dtype="float32"))
    for function in (arcface, sub_center_arcface):
        rows = weights if function is arcface else tf.repeat(weights, 3, axis=0)
        with tf.GradientTape() as tape:
            tape.watch([embeddings, rows])
            loss = function(embeddings, [0, 1, 2], rows)
        for gradient in tape.gradient(loss, [embeddings, rows]):
            assert np.all(np.isfinite(gradient.numpy()))
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = arcface(-embeddings, [0, 1, 2], weights)  # theta = pi
    assert np.all(np.isfinite(tape.gradient(loss, embeddings).numpy()))


# ---------------------------------------------------------------------------------------
# Config, Keras training, saving
# ---------------------------------------------------------------------------------------

LOSS_CLASSES = {
    "arcface": lambda: ArcFaceLoss(4, margin=20.0, scale=30.0),
    "sub_center_arcface": lambda: SubCenterArcFaceLoss(4, sub_centers=2, margin=20.0, scale=30.0),
    "cosface": lambda: CosFaceLoss(4, margin=0.2, scale=30.0),
    "proxy_anchor": lambda: ProxyAnchorLoss(4, margin=0.2, alpha=16.0),
    "proxy_nca": lambda: ProxyNCALoss(4, softmax_scale=3.0),
}


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_config_round_trip(name):
    loss = LOSS_CLASSES[name]()
    assert loss.uses_proxies and loss.num_classes == 4
    assert loss.proxies_per_class == (2 if name == "sub_center_arcface" else 1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()


def test_defaults_are_pytorch_metric_learnings():
    assert (ArcFaceLoss(3).margin, ArcFaceLoss(3).scale) == (28.6, 64.0)
    assert (SubCenterArcFaceLoss(3).sub_centers, SubCenterArcFaceLoss(3).margin) == (3, 28.6)
    assert (CosFaceLoss(3).margin, CosFaceLoss(3).scale) == (0.35, 64.0)
    assert (ProxyAnchorLoss(3).margin, ProxyAnchorLoss(3).alpha) == (0.1, 32.0)
    assert ProxyNCALoss(3).softmax_scale == 1.0


def test_class_proxies_config_round_trip_and_output():
    layer = proxies.ClassProxies(
        5, proxies_per_class=2, initializer=keras.initializers.RandomUniform(seed=1)
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
    assert (restored.num_classes, restored.proxies_per_class) == (5, 2)
    embeddings = np.random.default_rng(0).normal(size=(3, 7)).astype("float32")
    cosines = layer(embeddings)
    assert cosines.dtype == tf.float32 and tuple(cosines.shape) == (3, 10)
    assert tuple(layer.proxies.shape) == (10, 7)
    np.testing.assert_allclose(cosines, cosine_matrix(embeddings, layer.proxies.numpy()), atol=1e-6)
    default = proxies.ClassProxies(3)
    assert default.get_config()["initializer"]["config"]["stddev"] == 1.0


def test_class_proxies_compute_in_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = proxies.ClassProxies(3)
        cosines = layer(np.ones((2, 4), "float16"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert cosines.dtype == tf.float32 and layer.proxies.dtype == "float32"


def toy_data(classes=4, per_class=16, dims=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.normal(size=(classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    features = centers[labels] + 0.5 * rng.normal(size=(len(labels), dims))
    order = rng.permutation(len(labels))
    return features[order].astype("float32"), labels[order].astype("int32")


def proxy_model(loss, dims=8):
    model = keras.Sequential(
        [
            keras.Input((dims,)),
            keras.layers.Dense(8, name="encoder"),
            proxies.ClassProxies(loss.num_classes, loss.proxies_per_class, name="proxies"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    return model


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_plain_keras_fit_lowers_the_loss(name):
    features, labels = toy_data()
    model = proxy_model(LOSS_CLASSES[name]())
    before = float(model.loss(labels, model(features)))
    history = model.fit(features, labels, batch_size=16, epochs=3, verbose=0)
    after = float(model.loss(labels, model(features)))
    assert np.all(np.isfinite(history.history["loss"]))
    assert after < 0.5 * before, (before, after)


def test_keras_file_restores_the_proxies_and_the_loss(tmp_path):
    features, labels = toy_data()
    model = proxy_model(SubCenterArcFaceLoss(4, sub_centers=2, scale=30.0))
    model.fit(features, labels, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "proxies.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(features, verbose=0), model.predict(features, verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(
        loaded.get_layer("proxies").proxies.numpy(), model.get_layer("proxies").proxies.numpy()
    )
    assert isinstance(loaded.loss, SubCenterArcFaceLoss)
    assert loaded.loss.get_config() == model.loss.get_config()


# ---------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------


def test_labels_out_of_range_fail_clearly():
    embeddings, labels, weights = random_case(0, classes=4)
    for bad in (np.array([0, 1, 2, 4] * 3), np.array([-1, 0, 1, 2] * 3)):
        for function in (arcface, cosface, proxy_anchor, proxy_nca):
            with pytest.raises(ValueError, match=r"\[0, num_classes\) with num_classes=4"):
                function(embeddings, bad, weights)
        with pytest.raises(ValueError, match="num_classes=4"):
            sub_center_arcface(embeddings, bad, np.repeat(weights, 3, axis=0))
        with pytest.raises(ValueError, match="num_classes=4"):
            ArcFaceLoss(4)(bad, proxies.proxy_cosines(embeddings, weights))

    @tf.function
    def in_graph(labels):
        return arcface(embeddings, labels, weights)

    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        in_graph(tf.constant([0, 1, 2, 4] * 3))
    assert np.isfinite(float(in_graph(tf.constant(labels))))

    @tf.function(jit_compile=True)
    def compiled(labels):  # XLA drops assertions: the loss turns NaN instead
        return proxy_anchor(embeddings, labels, weights)

    assert np.isnan(float(compiled(tf.constant([0, 1, 2, 4] * 3))))
    assert np.isfinite(float(compiled(tf.constant(labels))))


def test_wrong_shapes_name_the_argument():
    embeddings, labels, weights = random_case(0, classes=4)
    with pytest.raises(ValueError, match=r"`embeddings` and `class_weights`.*same number of dims"):
        arcface(embeddings, labels, weights[:, :5])
    with pytest.raises(ValueError, match=r"`class_weights` must have rank 2.*Received"):
        cosface(embeddings, labels, weights[0])
    with pytest.raises(ValueError, match=r"`embeddings` must have rank 2"):
        proxy_anchor(embeddings[None], labels, weights)
    with pytest.raises(
        ValueError, match=r"multiple of sub_centers=3.*class_weights.shape=\(4, 6\)"
    ):
        sub_center_arcface(embeddings, labels, weights)
    with pytest.raises(ValueError, match="not one-hot"):
        proxy_nca(embeddings, np.eye(4, dtype="int32")[labels], weights)
    with pytest.raises(ValueError, match="same batch size"):
        arcface(embeddings, labels[:-1], weights)
    with pytest.raises(TypeError, match="integer class ids.*float32"):
        arcface(embeddings, labels.astype("float32"), weights)
    cosines = proxies.proxy_cosines(embeddings, weights)
    with pytest.raises(
        ValueError, match=r"5 class proxies \(num_classes=5.*y_pred.shape=\(12, 4\)"
    ):
        ArcFaceLoss(5)(labels, cosines)
    with pytest.raises(ValueError, match=r"num_classes=4 times sub_centers=3"):
        SubCenterArcFaceLoss(4)(labels, cosines)
    with pytest.raises(ValueError, match=r"`proxies` must have 4 rows.*Received: proxies.shape"):
        ProxyAnchorLoss(4).compute(embeddings, labels, proxies=weights[:3])
    with pytest.raises(ValueError, match="needs the class proxies"):
        CosFaceLoss(4).compute(embeddings, labels)
    with pytest.raises(ValueError, match="no cross-batch memory"):
        ProxyNCALoss(4).compute(embeddings, labels, proxies=weights, memory=(embeddings, labels))
    with pytest.raises(ValueError, match=r"ClassProxies takes embeddings.*input_shape=\(2, 3, 4\)"):
        proxies.ClassProxies(3)(np.ones((2, 3, 4), "float32"))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: ArcFaceLoss(0), ValueError, "Argument `num_classes` must be an integer >= 1"),
        (lambda: ArcFaceLoss(4.0), TypeError, "Received: num_classes=4.0"),
        (lambda: ArcFaceLoss(4, margin=-1.0), ValueError, "Received: margin=-1.0"),
        (lambda: ArcFaceLoss(4, margin=180), ValueError, r"margin.*< 180"),
        (lambda: ArcFaceLoss(4, scale=0.0), ValueError, "Received: scale=0.0"),
        (lambda: ArcFaceLoss(4, scale=float("inf")), ValueError, "Received: scale=inf"),
        (lambda: SubCenterArcFaceLoss(4, sub_centers=0), ValueError, "Received: sub_centers=0"),
        (lambda: CosFaceLoss(4, margin=2.5), ValueError, "Received: margin=2.5"),
        (lambda: CosFaceLoss(4, scale="64"), TypeError, "Argument `scale` must be a number"),
        (lambda: ProxyAnchorLoss(4, alpha=0), ValueError, "Received: alpha=0"),
        (lambda: ProxyAnchorLoss(4, margin=-0.1), ValueError, "Received: margin=-0.1"),
        (lambda: ProxyNCALoss(4, softmax_scale=0), ValueError, "Received: softmax_scale=0"),
        (lambda: proxies.ClassProxies(0), ValueError, "Received: num_classes=0"),
        (lambda: proxies.ClassProxies(3, 0), ValueError, "Received: proxies_per_class=0"),
        (lambda: arcface(np.ones((2, 3)), [0, 1], np.ones((2, 3)), scale=-1), ValueError, "scale"),
        (
            lambda: sub_center_arcface(np.ones((2, 3)), [0, 1], np.ones((6, 3)), sub_centers=1.5),
            TypeError,
            "Received: sub_centers=1.5",
        ),
        (
            lambda: proxy_nca(np.ones((2, 3)), [0, 1], np.ones((2, 3)), softmax_scale=-2),
            ValueError,
            "softmax_scale",
        ),
    ],
)
def test_bad_hyperparameters_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------------------------------
# Replicas
# ---------------------------------------------------------------------------------------


@in_replica_process
def test_replicas_sum_to_the_one_device_loss_and_gradients():  # a few seconds
    from scripts.logical_cpus import use_logical_cpus

    from keras_siamese import distribute

    strategy = tf.distribute.MirroredStrategy(use_logical_cpus(2))
    sizes = (5, 3)  # uneven: the per-example losses divide by the global count
    bounds = np.cumsum((0, *sizes))
    for name in sorted(LOSSES):
        function, _, rows, small = LOSSES[name]
        embeddings, labels, weights = random_case(4, rows, count=8, classes=4, present=[0, 1, 3])

        def loss_and_gradients(e, y, w, function=function, small=small):
            with tf.GradientTape() as tape:
                tape.watch([e, w])
                loss = function(e, y, w, **small)
                scaled = distribute.scale_for_replicas(loss)
            return (loss, *tape.gradient(scaled, [e, w]))

        single = [
            t.numpy() for t in loss_and_gradients(*map(tf.constant, (embeddings, labels, weights)))
        ]

        def shard(array):
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant(
                    array[
                        bounds[context.replica_id_in_sync_group] : bounds[
                            context.replica_id_in_sync_group + 1
                        ]
                    ]
                )
            )

        @tf.function
        def step(e, y, w):
            return strategy.run(loss_and_gradients, args=(e, y, w))

        outputs = step(shard(embeddings), shard(labels), tf.constant(weights))
        loss, grad_e, grad_w = (
            [t.numpy() for t in strategy.experimental_local_results(x)] for x in outputs
        )
        np.testing.assert_allclose(sum(loss) / 2, single[0], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(
            np.concatenate(grad_e), single[1], rtol=1e-4, atol=1e-6, err_msg=name
        )
        np.testing.assert_allclose(sum(grad_w), single[2], rtol=1e-4, atol=1e-6, err_msg=name)
