"""Tests of keras_siamese.losses: numpy references, analytic cases, gradients, round trips."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import losses

# ---------------------------------------------------------------------------------------
# NT-Xent
# ---------------------------------------------------------------------------------------


def numpy_nt_xent(z1, z2, temperature):
    """Independent float64 NT-Xent: loop over the 2n anchors with an explicit log-softmax."""
    views = np.concatenate([z1, z2]).astype(np.float64)
    views = views / np.linalg.norm(views, axis=1, keepdims=True)
    count = len(views)
    half = count // 2
    total = 0.0
    for anchor in range(count):
        positive = (anchor + half) % count
        others = [k for k in range(count) if k != anchor]
        logits = np.array([views[anchor] @ views[k] for k in others]) / temperature
        log_softmax = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        total -= log_softmax[others.index(positive)]
    return total / count


def random_pair(n, dims=6, seed=0):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, dims)).astype("float32")
    z2 = (z1 + 0.5 * rng.normal(size=(n, dims))).astype("float32")
    return z1, z2


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy_reference(n, temperature):
    z1, z2 = random_pair(n, seed=n)
    expected = numpy_nt_xent(z1, z2, temperature)
    loss = losses.nt_xent(z1, z2, temperature=temperature)
    assert loss.dtype == "float32"
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    # Cosine similarity: rescaling the projections does not change the loss.
    scaled = losses.nt_xent(3.0 * z1, 0.25 * z2, temperature=temperature)
    np.testing.assert_allclose(float(scaled), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_analytic_perfect_alignment(n, temperature):
    # z1 == z2 = orthogonal one-hot rows: each anchor has logit 1/tau for its positive
    # and 0 for the 2n - 2 negatives, so the loss is log(1 + (2n - 2) exp(-1/tau)).
    z = np.eye(n, 2 * n, dtype="float32")
    expected = np.log1p((2 * n - 2) * np.exp(-1.0 / temperature))
    loss, logits, labels = losses.nt_xent(z, z, temperature=temperature, return_logits=True)
    # atol: at tau = 0.1 the loss (~1e-4) is the small difference of logits near 10.
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    accuracy = np.mean(np.argmax(logits.numpy(), axis=-1) == labels.numpy())
    assert accuracy == 1.0


def test_nt_xent_logits_and_labels_layout():
    n, temperature = 3, 0.5
    z1, z2 = random_pair(n, seed=1)
    loss, logits, labels = losses.nt_xent(z1, z2, temperature=temperature, return_logits=True)
    views = np.concatenate([z1, z2])
    views = views / np.linalg.norm(views, axis=1, keepdims=True)
    expected = views @ views.T / temperature
    logits = logits.numpy()
    assert logits.shape == (2 * n, 2 * n)
    np.testing.assert_array_equal(labels.numpy(), [3, 4, 5, 0, 1, 2])
    off_diagonal = ~np.eye(2 * n, dtype=bool)
    np.testing.assert_allclose(logits[off_diagonal], expected[off_diagonal], rtol=1e-5)
    assert np.all(np.diag(logits) <= -1e8)
    # The labels and logits define the loss: sparse cross-entropy over the rows.
    log_softmax = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))[:, None]
        - logits.max(1, keepdims=True)
    )
    np.testing.assert_allclose(
        -np.mean(log_softmax[np.arange(2 * n), labels.numpy()]), float(loss), rtol=1e-5
    )


def test_nt_xent_gradient_matches_finite_differences():
    n, temperature, step = 3, 0.5, 1e-6
    z1, z2 = random_pair(n, dims=4, seed=2)
    tz1, tz2 = tf.constant(z1), tf.constant(z2)
    with tf.GradientTape() as tape:
        tape.watch([tz1, tz2])
        loss = losses.nt_xent(tz1, tz2, temperature=temperature)
    gradients = [g.numpy() for g in tape.gradient(loss, [tz1, tz2])]

    inputs = [z1.astype(np.float64), z2.astype(np.float64)]
    for which, gradient in enumerate(gradients):
        numeric = np.zeros_like(inputs[which])
        for index in np.ndindex(*numeric.shape):
            plus = [x.copy() for x in inputs]
            minus = [x.copy() for x in inputs]
            plus[which][index] += step
            minus[which][index] -= step
            numeric[index] = (
                numpy_nt_xent(*plus, temperature) - numpy_nt_xent(*minus, temperature)
            ) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-3, atol=1e-5)


def test_nt_xent_mixed_precision_inputs_compute_in_float32():
    z1, z2 = random_pair(4, seed=3)
    half1, half2 = z1.astype("float16"), z2.astype("float16")
    loss = losses.nt_xent(half1, half2, temperature=0.1)
    assert loss.dtype == "float32"
    expected = numpy_nt_xent(half1.astype("float32"), half2.astype("float32"), 0.1)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_nt_xent_unknown_static_batch_in_tf_function():
    z1, z2 = random_pair(5, seed=4)

    @tf.function(input_signature=[tf.TensorSpec((None, 6)), tf.TensorSpec((None, 6))])
    def traced(a, b):
        return losses.nt_xent(a, b, temperature=0.5)

    np.testing.assert_allclose(float(traced(z1, z2)), numpy_nt_xent(z1, z2, 0.5), rtol=1e-5)


def test_nt_xent_batch_of_one_raises():
    z = np.ones((1, 4), "float32")
    with pytest.raises(ValueError, match=r"at least 2 images per batch.*Received: z1.shape"):
        losses.nt_xent(z, z)


@pytest.mark.parametrize(
    "shape1, shape2, match",
    [
        ((4,), (4,), r"`z1` must have rank 2.*Received: z1.shape=\(4,\)"),
        ((2, 3), (2, 3, 1), r"`z2` must have rank 2.*Received: z2.shape=\(2, 3, 1\)"),
        ((2, 3), (3, 3), r"same shape.*Received: z1.shape=\(2, 3\), z2.shape=\(3, 3\)"),
        ((2, 3), (2, 4), r"same shape.*Received: z1.shape=\(2, 3\), z2.shape=\(2, 4\)"),
    ],
)
def test_nt_xent_bad_shapes_raise(shape1, shape2, match):
    with pytest.raises(ValueError, match=match):
        losses.nt_xent(np.ones(shape1, "float32"), np.ones(shape2, "float32"))


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("inf"), float("nan")])
def test_nt_xent_non_positive_or_non_finite_temperature_raises(temperature):
    # The one temperature rule of keras_siamese.validation: finite and > 0 (inf gives
    # all-zero logits, a constant loss).
    z1, z2 = random_pair(2)
    match = rf"temperature.*finite and > 0.*Received: temperature={temperature}"
    with pytest.raises(ValueError, match=match):
        losses.nt_xent(z1, z2, temperature=temperature)
    with pytest.raises(ValueError, match=match):
        losses.NTXent(temperature=temperature)


@pytest.mark.parametrize("temperature", ["0.5", None, True])
def test_nt_xent_non_numeric_temperature_raises(temperature):
    z1, z2 = random_pair(2)
    with pytest.raises(TypeError, match="Received: temperature="):
        losses.nt_xent(z1, z2, temperature=temperature)


def test_ntxent_class_matches_function_on_stacked_views():
    z1, z2 = random_pair(4, seed=5)
    loss_fn = losses.NTXent(temperature=0.2)
    stacked = np.concatenate([z1, z2])
    expected = numpy_nt_xent(z1, z2, 0.2)
    np.testing.assert_allclose(float(loss_fn(None, stacked)), expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(loss_fn(np.zeros((8,), "float32"), stacked)), expected, rtol=1e-5
    )


def test_ntxent_config_round_trip():
    loss_fn = losses.NTXent(temperature=0.2, name="contrastive")
    config = loss_fn.get_config()
    assert config["temperature"] == 0.2 and config["name"] == "contrastive"
    restored = losses.NTXent.from_config(config)
    assert restored.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss_fn))
    assert isinstance(revived, losses.NTXent)
    assert revived.get_config() == config
    z1, z2 = random_pair(3, seed=6)
    stacked = np.concatenate([z1, z2])
    np.testing.assert_allclose(float(revived(None, stacked)), float(loss_fn(None, stacked)))


def test_ntxent_bad_inputs_raise():
    loss_fn = losses.NTXent()
    with pytest.raises(ValueError, match=r"even number of rows.*Received: y_pred.shape=\(5, 4\)"):
        loss_fn(None, np.ones((5, 4), "float32"))
    with pytest.raises(ValueError, match=r"rank 2.*Received: y_pred.shape=\(4,\)"):
        loss_fn(None, np.ones((4,), "float32"))
    with pytest.raises(ValueError, match="at least 2 images per batch"):
        loss_fn(None, np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="Received: temperature=0"):
        losses.NTXent(temperature=0)


# The cross-replica check runs in the shared replica process (tests/conftest.py): logical CPU
# devices must be configured before TensorFlow initialises, which pytest's has already done.
CROSS_REPLICA_CHECK = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    from scripts.logical_cpus import use_logical_cpus

    use_logical_cpus(2)
    from keras_siamese import distribute, losses

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    TEMPERATURE = 0.5


    def single_device(z1, z2):
        a, b = tf.constant(z1), tf.constant(z2)
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss, logits, labels = losses.nt_xent(a, b, TEMPERATURE, return_logits=True)
        grad_a, grad_b = tape.gradient(loss, [a, b])
        return loss.numpy(), logits.numpy(), labels.numpy(), grad_a.numpy(), grad_b.numpy()


    def replicated(z1, z2, sizes):
        bounds = np.cumsum([0] + list(sizes))

        def shard(array):
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant(
                    array[bounds[context.replica_id_in_sync_group]:
                          bounds[context.replica_id_in_sync_group + 1]]
                )
            )

        def replica_fn(a, b):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                loss, logits, labels = losses.nt_xent(a, b, TEMPERATURE, return_logits=True)
                scaled = distribute.scale_for_replicas(loss)
            grad_a, grad_b = tape.gradient(scaled, [a, b])
            return loss, logits, labels, grad_a, grad_b

        @tf.function
        def step(a, b):
            return strategy.run(replica_fn, args=(a, b))

        outputs = step(shard(z1), shard(z2))
        return [
            [t.numpy() for t in strategy.experimental_local_results(x)] for x in outputs
        ]


    rng = np.random.default_rng(0)
    for n in (4, 1):  # n = 1 per replica is allowed: the other replica brings negatives
        global_size = 2 * n
        z1 = rng.normal(size=(global_size, 5)).astype("float32")
        z2 = (z1 + 0.5 * rng.normal(size=z1.shape)).astype("float32")
        loss, logits, labels, grad_a, grad_b = single_device(z1, z2)
        r_loss, r_logits, r_labels, r_grad_a, r_grad_b = replicated(z1, z2, (n, n))

        np.testing.assert_allclose(sum(r_loss) / 2, loss, rtol=1e-5)
        np.testing.assert_allclose(np.concatenate(r_grad_a), grad_a, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.concatenate(r_grad_b), grad_b, rtol=1e-4, atol=1e-6)
        for replica in range(2):
            rows = np.r_[replica * n:(replica + 1) * n,
                         global_size + replica * n:global_size + (replica + 1) * n]
            np.testing.assert_array_equal(r_labels[replica], labels[rows])
            np.testing.assert_allclose(r_logits[replica], logits[rows], rtol=1e-5)
        if n > 1:
            # Without the gather each replica would only see its own negatives.
            local = np.mean([
                float(losses.nt_xent(z1[r * n:(r + 1) * n], z2[r * n:(r + 1) * n],
                                     TEMPERATURE))
                for r in range(2)
            ])
            assert abs(local - loss) > 1e-2, (local, loss)

    # Uneven replica batches (a last partial batch): offsets are gathered, not assumed, and
    # every anchor weighs 1 / (2N) of the global batch, whichever replica holds it: the sum of
    # the scaled losses and the gradients equal one device's.
    z1 = rng.normal(size=(5, 5)).astype("float32")
    z2 = rng.normal(size=(5, 5)).astype("float32")
    loss, logits, labels, grad_a, grad_b = single_device(z1, z2)
    for sizes in ((3, 2), (2, 3)):
        r_loss, r_logits, r_labels, r_grad_a, r_grad_b = replicated(z1, z2, sizes)
        bounds = np.cumsum([0, *sizes])
        for replica in range(2):
            start, stop = bounds[replica], bounds[replica + 1]
            rows = np.r_[start:stop, 5 + start:5 + stop]
            np.testing.assert_array_equal(r_labels[replica], labels[rows])
            np.testing.assert_allclose(r_logits[replica], logits[rows], rtol=1e-5)
        print(f"UNEVEN {sizes} replicated={sum(r_loss) / 2:.4f} one_device={loss:.4f}")
        np.testing.assert_allclose(sum(r_loss) / 2, loss, rtol=1e-5)
        np.testing.assert_allclose(np.concatenate(r_grad_a), grad_a, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.concatenate(r_grad_b), grad_b, rtol=1e-4, atol=1e-6)
    print("CROSS_REPLICA_OK")
    """
)


@pytest.mark.replica_job("-c", CROSS_REPLICA_CHECK)
def test_nt_xent_cross_replica_equals_single_device_global_batch(replica_job):
    result = replica_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "CROSS_REPLICA_OK" in result.stdout
