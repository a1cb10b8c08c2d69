"""Tests of keras_siamese.optimizers: LARS against numpy, the schedule against its formula."""

import copy
import math
import textwrap

import keras
import numpy as np
import pytest

from keras_siamese import optimizers

# ---------------------------------------------------------------------------------------
# LARS
# ---------------------------------------------------------------------------------------


def numpy_lars(
    weight,
    gradients,
    learning_rate,
    momentum,
    weight_decay,
    trust_coefficient,
    adapted,
    nesterov=False,
    decoupled_decay=0.0,
):
    """Independent LARS reference (SimCLR's classic-momentum form) over several steps.

    `decoupled_decay` adds Keras' base-class decay on top, to show it would be visible.
    """
    weight = weight.astype(np.float64).copy()
    velocity = np.zeros_like(weight)
    for gradient in gradients:
        weight = weight - learning_rate * decoupled_decay * weight
        gradient = gradient.astype(np.float64)
        rate = learning_rate
        if adapted:
            gradient = gradient + weight_decay * weight
            weight_norm, gradient_norm = np.linalg.norm(weight), np.linalg.norm(gradient)
            if weight_norm > 0 and gradient_norm > 0:
                rate = learning_rate * trust_coefficient * weight_norm / gradient_norm
        velocity = momentum * velocity + rate * gradient
        weight = weight - (momentum * velocity + rate * gradient if nesterov else velocity)
    return weight


HYPERPARAMETERS = dict(learning_rate=0.5, momentum=0.9, weight_decay=0.1, trust_coefficient=0.01)


def dense_bn_model(kernel_scale=1.0):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()]
    )
    rng = np.random.default_rng(0)
    model.set_weights(
        [
            kernel_scale * rng.normal(size=(3, 2)),
            rng.normal(size=(2,)),
            1.0 + 0.1 * rng.normal(size=(2,)),
            0.1 * rng.normal(size=(2,)),
            np.zeros(2),
            np.ones(2),
        ]
    )
    return model


def two_steps_of_gradients(model):
    rng = np.random.default_rng(1)
    return [
        [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
        for _ in range(2)
    ]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("kernel_scale", [1.0, 0.0])
def test_lars_two_steps_match_numpy(nesterov, kernel_scale):
    model = dense_bn_model(kernel_scale)
    initial = [v.numpy() for v in model.trainable_variables]
    gradients = two_steps_of_gradients(model)
    optimizer = optimizers.LARS(nesterov=nesterov, **HYPERPARAMETERS)
    for step in gradients:
        optimizer.apply_gradients(zip(step, model.trainable_variables, strict=True))

    paths = [v.path for v in model.trainable_variables]
    assert paths[1].endswith("/bias") and "batch_normalization" in paths[2]
    assert paths[2].endswith("/gamma")
    adapted = [True, False, False, False]  # kernel; bias, gamma, beta are excluded
    assert [optimizer.adapts(v) for v in model.trainable_variables] == adapted
    for index, variable in enumerate(model.trainable_variables):
        expected = numpy_lars(
            initial[index],
            [step[index] for step in gradients],
            adapted=adapted[index],
            nesterov=nesterov,
            **HYPERPARAMETERS,
        )
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_lars_weight_decay_is_applied_exactly_once():
    model = dense_bn_model()
    kernel = model.trainable_variables[0]
    initial = kernel.numpy()
    gradients = two_steps_of_gradients(model)
    optimizer = optimizers.LARS(**HYPERPARAMETERS)
    for step in gradients:
        optimizer.apply_gradients(zip(step, model.trainable_variables, strict=True))
    kernel_gradients = [step[0] for step in gradients]
    once = numpy_lars(initial, kernel_gradients, adapted=True, **HYPERPARAMETERS)
    twice = numpy_lars(
        initial,
        kernel_gradients,
        adapted=True,
        decoupled_decay=HYPERPARAMETERS["weight_decay"],
        **HYPERPARAMETERS,
    )
    without = numpy_lars(
        initial, kernel_gradients, adapted=True, **dict(HYPERPARAMETERS, weight_decay=0.0)
    )
    # The candidates differ by far more than the tolerance below, so matching `once`
    # rules the others out (the trust ratio damps the effect of the coupled decay).
    assert np.abs(once - twice).max() > 1e-2 and np.abs(once - without).max() > 1e-4
    np.testing.assert_allclose(kernel.numpy(), once, rtol=1e-5, atol=1e-6)
    assert optimizer.get_config()["weight_decay"] == HYPERPARAMETERS["weight_decay"]


def test_lars_exclusions_by_substring_and_by_keras_method():
    model = dense_bn_model()
    nothing_excluded = optimizers.LARS(exclude_from_weight_decay=None)
    nothing_excluded.build(model.trainable_variables)
    assert all(nothing_excluded.adapts(v) for v in model.trainable_variables)

    kernel_excluded = optimizers.LARS(exclude_from_weight_decay=["batch_norm", "bias"])
    kernel_excluded.exclude_from_weight_decay(var_names=["kernel"])
    kernel_excluded.build(model.trainable_variables)
    assert not any(kernel_excluded.adapts(v) for v in model.trainable_variables)

    # An excluded kernel follows plain momentum SGD: no decay, no trust ratio.
    kernel = model.trainable_variables[0]
    initial = kernel.numpy()
    gradients = two_steps_of_gradients(model)
    optimizer = optimizers.LARS(**HYPERPARAMETERS)
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    for step in gradients:
        optimizer.apply_gradients(zip(step, model.trainable_variables, strict=True))
    expected = numpy_lars(
        initial, [step[0] for step in gradients], adapted=False, **HYPERPARAMETERS
    )
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_lars_config_round_trip():
    schedule = optimizers.WarmupCosine(2.0, total_steps=50, warmup_steps=5)
    optimizer = optimizers.LARS(
        learning_rate=schedule,
        momentum=0.8,
        weight_decay=1e-4,
        trust_coefficient=0.002,
        exclude_from_weight_decay=("bias",),
        nesterov=True,
        clipnorm=1.0,
        name="my_lars",
    )
    config = optimizer.get_config()
    for key, value in dict(
        momentum=0.8,
        weight_decay=1e-4,
        trust_coefficient=0.002,
        exclude_from_weight_decay=["bias"],
        nesterov=True,
        clipnorm=1.0,
        name="my_lars",
    ).items():
        assert config[key] == value, key
    restored = optimizers.LARS.from_config(copy.deepcopy(config))  # from_config mutates
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, optimizers.WarmupCosine)
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(revived, optimizers.LARS)
    assert revived.get_config() == config


def test_lars_keras_file_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )
    optimizer = optimizers.LARS(
        learning_rate=optimizers.simclr_learning_rate(64, steps=20, warmup_steps=2),
        momentum=0.8,
        weight_decay=1e-4,
        trust_coefficient=0.002,
        exclude_from_weight_decay=("bias", "gamma"),
        nesterov=True,
    )
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 4)).astype("float32")
    targets = rng.normal(size=(16, 2)).astype("float32")
    model.fit(features, targets, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "lars_model.keras")
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, optimizers.LARS)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert isinstance(loaded.optimizer._learning_rate, optimizers.WarmupCosine)
    assert int(loaded.optimizer.iterations) == 2
    for saved, restored in zip(optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_allclose(restored.numpy(), saved.numpy())
    np.testing.assert_allclose(
        loaded.predict(features, verbose=0),
        model.predict(features, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(momentum=1.0), ValueError, r"momentum.*< 1.*Received: momentum=1.0"),
        (dict(momentum=-0.1), ValueError, r"momentum.*>= 0.*Received: momentum=-0.1"),
        (dict(momentum="0.9"), TypeError, r"momentum.*number.*Received: momentum='0.9'"),
        (dict(weight_decay=-1e-6), ValueError, r"Received: weight_decay=-1e-06"),
        (dict(trust_coefficient=0.0), ValueError, r"> 0.*Received: trust_coefficient=0"),
        (
            dict(exclude_from_weight_decay="bias"),
            TypeError,
            r"list or tuple of strings.*Received: exclude_from_weight_decay='bias'",
        ),
        (
            dict(exclude_from_weight_decay=["bias", 3]),
            TypeError,
            r"Received: exclude_from_weight_decay=\['bias', 3\]",
        ),
        (dict(nesterov="yes"), TypeError, r"Received: nesterov='yes'"),
    ],
)
def test_lars_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        optimizers.LARS(**arguments)


# Run in the shared replica process (tests/conftest.py): the logical CPU devices must exist
# before TensorFlow initialises.
MIRRORED_LARS_CHECK = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    from scripts.logical_cpus import use_logical_cpus

    use_logical_cpus(2)
    import keras
    from keras_siamese import optimizers

    rng = np.random.default_rng(0)
    features = rng.normal(size=(8, 4)).astype("float32")
    targets = rng.normal(size=(8, 2)).astype("float32")


    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            # LayerNormalization, not BatchNormalization: its gamma/beta are excluded
            # by name like BN's, but its output does not depend on the batch split.
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                      keras.layers.LayerNormalization(),
                                      keras.layers.Dense(2)])
            model.compile(optimizer=optimizers.LARS(learning_rate=0.5, weight_decay=0.1,
                                                    trust_coefficient=0.01), loss="mse")
        assert [model.optimizer.adapts(v) for v in model.trainable_variables] == [
            True, False, False, False, True, False]
        model.fit(features, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return [v.numpy() for v in model.trainable_variables]


    single = train(tf.distribute.get_strategy())
    mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print("MIRRORED_LARS_OK")
    """
)


@pytest.mark.replica_job("-c", MIRRORED_LARS_CHECK)
def test_lars_under_mirrored_strategy_matches_single_device(replica_job):
    result = replica_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "MIRRORED_LARS_OK" in result.stdout


# ---------------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------------


def numpy_warmup_cosine(step, peak, total, warmup, final):
    if step < warmup:
        return peak * step / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("final", [0.0, 0.1])
def test_warmup_cosine_values(final):
    peak, total, warmup = 2.0, 100, 10
    schedule = optimizers.WarmupCosine(
        peak, total_steps=total, warmup_steps=warmup, final_learning_rate=final
    )
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(5)), peak / 2, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(warmup)), peak, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(total)), final, atol=1e-6)
    np.testing.assert_allclose(float(schedule(10 * total)), final, atol=1e-6)
    # Halfway through the decay the cosine is at the midpoint of peak and final.
    np.testing.assert_allclose(float(schedule(55)), (peak + final) / 2, rtol=1e-5)
    for step in (3, 17, 40, 73, 99):
        np.testing.assert_allclose(
            float(schedule(step)),
            numpy_warmup_cosine(step, peak, total, warmup, final),
            rtol=1e-5,
            atol=1e-7,
        )


@pytest.mark.parametrize(
    "peak, total, warmup, final",
    [(2.0, 100, 10, 0.0), (2.0, 100, 10, 0.1), (1.5, 10, 0, 0.0), (0.3, 37, 36, 0.3)],
)
def test_warmup_cosine_is_keras_cosine_decay_with_warmup(peak, total, warmup, final):
    # The schedule is Keras' own CosineDecay (warmup from 0 to the peak, then the cosine to
    # alpha * peak), with the arguments of SimCLR's description; every step, the hand-written
    # formula above agrees.
    schedule = optimizers.WarmupCosine(
        peak, total_steps=total, warmup_steps=warmup, final_learning_rate=final
    )
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=total - warmup,
        alpha=final / peak,
        warmup_target=peak,
        warmup_steps=warmup,
    )
    steps = np.arange(0, total + 5)
    values = np.array([float(schedule(step)) for step in steps])
    np.testing.assert_array_equal(values, [float(keras_schedule(step)) for step in steps])
    expected = [numpy_warmup_cosine(step, peak, total, warmup, final) for step in steps]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-7)


def test_warmup_cosine_without_warmup_starts_at_peak():
    schedule = optimizers.WarmupCosine(1.5, total_steps=10)
    np.testing.assert_allclose(float(schedule(0)), 1.5, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(5)), 0.75, rtol=1e-5)


def test_warmup_cosine_config_round_trip():
    schedule = optimizers.WarmupCosine(
        1.2, total_steps=30, warmup_steps=3, final_learning_rate=0.01
    )
    config = schedule.get_config()
    assert config == dict(
        peak_learning_rate=1.2, total_steps=30, warmup_steps=3, final_learning_rate=0.01
    )
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(revived, optimizers.WarmupCosine)
    assert revived.get_config() == config


def test_simclr_learning_rate_peaks():
    sqrt = optimizers.simclr_learning_rate(4096, steps=100, warmup_steps=10)
    linear = optimizers.simclr_learning_rate(4096, steps=100, warmup_steps=10, scaling="linear")
    custom = optimizers.simclr_learning_rate(
        512, steps=100, warmup_steps=0, scaling="linear", base_learning_rate=1.0
    )
    assert isinstance(sqrt, optimizers.WarmupCosine)
    np.testing.assert_allclose(sqrt.peak_learning_rate, 0.075 * 64)  # 4.8
    np.testing.assert_allclose(linear.peak_learning_rate, 0.3 * 4096 / 256)  # 4.8
    np.testing.assert_allclose(custom.peak_learning_rate, 2.0)
    small = optimizers.simclr_learning_rate(256, steps=100, warmup_steps=10)
    np.testing.assert_allclose(small.peak_learning_rate, 0.075 * 16)
    np.testing.assert_allclose(float(small(10)), 1.2, rtol=1e-6)
    assert float(small(0)) == 0.0 and abs(float(small(100))) < 1e-7
    assert (sqrt.total_steps, sqrt.warmup_steps, sqrt.final_learning_rate) == (100, 10, 0.0)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(batch_size=0), ValueError, r"batch_size.*>= 1.*Received: batch_size=0"),
        (dict(batch_size=8.0), TypeError, r"integer.*Received: batch_size=8.0"),
        (
            dict(steps=10, warmup_steps=10),
            ValueError,
            r"larger than `warmup_steps`.*Received: steps=10, warmup_steps=10",
        ),
        (dict(warmup_steps=-1), ValueError, r"Received: warmup_steps=-1"),
        (dict(scaling="log"), ValueError, r"one of \['linear', 'sqrt'\].*Received: scaling='log'"),
        (dict(base_learning_rate=0.0), ValueError, r"Received: base_learning_rate=0.0"),
    ],
)
def test_simclr_learning_rate_bad_arguments_raise(arguments, error, match):
    arguments = dict(dict(batch_size=256, steps=100, warmup_steps=10), **arguments)
    with pytest.raises(error, match=match):
        optimizers.simclr_learning_rate(**arguments)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(peak_learning_rate=0.0), ValueError, r"> 0.*Received: peak_learning_rate=0.0"),
        (
            dict(total_steps=5, warmup_steps=5),
            ValueError,
            r"smaller than `total_steps`.*Received: warmup_steps=5, total_steps=5",
        ),
        (dict(total_steps=0), ValueError, r"Received: total_steps=0"),
        (dict(total_steps=10.5), TypeError, r"integer.*Received: total_steps=10.5"),
        (
            dict(final_learning_rate=2.0),
            ValueError,
            r"must not exceed.*Received: final_learning_rate=2.0, peak_learning_rate=1.0",
        ),
        (dict(final_learning_rate=-0.1), ValueError, r"Received: final_learning_rate=-0.1"),
    ],
)
def test_warmup_cosine_bad_arguments_raise(arguments, error, match):
    arguments = dict(dict(peak_learning_rate=1.0, total_steps=10, warmup_steps=2), **arguments)
    with pytest.raises(error, match=match):
        optimizers.WarmupCosine(**arguments)
