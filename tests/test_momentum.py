"""Tests of the momentum target: the cosine schedule, the exact EMA step, saving and resuming."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

from keras_siamese.models.byol import BYOL
from keras_siamese.models.momentum import MomentumUpdate, cosine_momentum, steps_of_fit

REPLICAS_SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "momentum_replicas.py")


def momentum_replicas_results(result) -> dict:
    """Checks the 2-replica step of tests/scripts/momentum_replicas.py (run by the shared replica
    process, tests/conftest.py); returns the measured differences (printed with `pytest -s`)
    for model-specific checks.
    """
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("MOMENTUM_REPLICAS ")]
    assert len(lines) == 1, result.stdout[-3000:]
    results = json.loads(lines[0].removeprefix("MOMENTUM_REPLICAS "))
    print(json.dumps(results, indent=2))
    assert results["relative_update"] > 1e-3  # the step moves the weights
    replicated = results["replicas_2"]
    assert replicated["loss_difference"] < 1e-5 * max(1.0, abs(results["reference_loss"]))
    assert replicated["weights_relative_difference"] < 1e-5, replicated
    assert replicated["updates_relative_difference"] < 1e-4, replicated
    assert replicated["variables_not_close"] == [], replicated
    report = replicated["report"]
    assert (report["replicas"], report["per_replica_batch_size"]) == (2, 8), report
    assert report["local_batch_norm"] == [] and report["warnings"] == [], report
    control = results["without_sync_batch_norm"]
    assert control["updates_relative_difference"] > 1e-3, control  # 10x the tolerance
    return results


def tiny_byol(**kwargs):
    return BYOL(tiny_encoder(), projection_dim=8, hidden_dim=16, **kwargs)


def dense_pair(units=3):
    online, target = keras.layers.Dense(units), keras.layers.Dense(units, name="target")
    online.build((None, 4))
    target.build((None, 4))
    return online, target


def test_cosine_momentum_follows_byol_schedule():
    total, base = 10, 0.99
    for step in range(total + 3):
        progress = min(step / total, 1.0)
        expected = 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
        assert float(cosine_momentum(step, total, base)) == pytest.approx(expected, abs=1e-7)
    assert float(cosine_momentum(0, total, base)) == pytest.approx(base)
    assert float(cosine_momentum(total, total, base)) == pytest.approx(1.0)
    assert float(cosine_momentum(5, total, 0.9, final_momentum=0.95)) == pytest.approx(0.925)
    # No schedule length: a constant momentum.
    assert float(cosine_momentum(123, 0, base)) == pytest.approx(base)


def test_start_copies_and_freezes_and_update_is_the_exact_moving_average():
    online, target = dense_pair()
    update = MomentumUpdate(momentum=0.9, total_steps=4)
    update.build()
    update.start([(online, target)])
    for source, destination in zip(online.weights, target.weights, strict=True):
        np.testing.assert_array_equal(source.numpy(), destination.numpy())
        assert not destination.trainable and source.trainable
    online.kernel.assign(online.kernel + 1.0)
    before = [w.numpy().copy() for w in target.weights]
    m = np.float32(update.current_momentum().numpy())
    update.update([(online, target)])
    for old, source, destination in zip(before, online.weights, target.weights, strict=True):
        expected = m * old + (np.float32(1.0) - m) * source.numpy()
        np.testing.assert_array_equal(destination.numpy(), expected)
    assert int(update.step.numpy()) == 1
    assert float(update.current_momentum()) == pytest.approx(
        1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2
    )


def test_one_fit_step_moves_every_target_weight_by_the_moving_average():
    model = tiny_byol(momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    pairs = [
        (source, destination)
        for online, target in model.target_pairs()
        for source, destination in zip(online.weights, target.weights, strict=True)
        if source.trainable
    ]
    target_before = [destination.numpy().copy() for _, destination in pairs]
    online_before = [source.numpy().copy() for source, _ in pairs]
    model.fit(random_images(8), batch_size=8, epochs=1, verbose=0)
    m = np.float32(0.9)  # step 0 of the schedule: the base momentum
    moved = 0
    for (source, destination), old, online_old in zip(
        pairs, target_before, online_before, strict=True
    ):
        expected = m * old + (np.float32(1.0) - m) * source.numpy()
        np.testing.assert_array_equal(destination.numpy(), expected)
        moved += not np.array_equal(source.numpy(), online_old)
    assert moved == len(pairs)  # every online weight changed, so the check is not vacuous
    assert int(model.momentum_update.step.numpy()) == 1


def test_no_gradient_reaches_the_target():
    model = tiny_byol()
    target_variables = [w for _, target in model.target_pairs() for w in target.weights]
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in target_variables)
    views = model.make_views(tf.constant(random_images(8)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([v.value for v in target_variables])
        loss, _ = model.loss_on_views(views, training=True)
    gradients = tape.gradient(loss, [v.value for v in target_variables])
    assert all(gradient is None for gradient in gradients)
    online = tape.gradient(loss, model.trainable_variables)
    assert all(gradient is not None for gradient in online)


def test_the_schedule_length_comes_from_the_first_fit_and_is_kept(tmp_path):
    model = tiny_byol(momentum=0.99)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(random_images(32), batch_size=8, epochs=2, verbose=0)
    assert int(model.momentum_update.schedule_steps.numpy()) == 8
    assert int(model.momentum_update.step.numpy()) == 8
    assert float(model.momentum_update.current_momentum()) == pytest.approx(1.0)
    model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)  # a later fit: kept
    assert int(model.momentum_update.schedule_steps.numpy()) == 8

    fixed = tiny_byol(momentum_steps=100)
    fixed.compile(optimizer=keras.optimizers.SGD(0.1))
    fixed.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert int(fixed.momentum_update.schedule_steps.numpy()) == 100

    path = str(tmp_path / "byol.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert int(restored.momentum_update.step.numpy()) == 10
    assert int(restored.momentum_update.schedule_steps.numpy()) == 8
    saved = [w.numpy() for _, target in model.target_pairs() for w in target.weights]
    loaded = [w.numpy() for _, target in restored.target_pairs() for w in target.weights]
    online = [w.numpy() for online, _ in restored.target_pairs() for w in online.weights]
    for a, b in zip(saved, loaded, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(saved, online, strict=True))
    assert not any(w.trainable for _, target in restored.target_pairs() for w in target.weights)


def test_steps_of_fit():
    images = np.zeros((100, 4, 4, 1), "uint8")
    assert steps_of_fit(images, batch_size=32, epochs=3) == 12
    assert steps_of_fit(images, epochs=1) == 4  # Keras' default batch of 32
    assert steps_of_fit((images, np.zeros(100)), batch_size=50, epochs=2) == 4
    assert steps_of_fit(images, epochs=2, steps_per_epoch=7) == 14
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(30)
    assert steps_of_fit(dataset, epochs=2) == 8
    assert steps_of_fit(dataset.repeat(), epochs=2) is None
    assert steps_of_fit(iter([images]), epochs=2) is None


def test_momentum_update_config_and_mismatched_pairs():
    update = MomentumUpdate(momentum=0.99, final_momentum=0.999, total_steps=50, name="ema")
    restored = MomentumUpdate.from_config(update.get_config())
    assert (restored.momentum, restored.final_momentum, restored.total_steps) == (0.99, 0.999, 50)
    online, _ = dense_pair(3)
    other, _ = dense_pair(2)
    update.build()
    with pytest.raises(ValueError, match=r"must have the architecture of"):
        update.start([(online, other)])


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(momentum=1.0), ValueError, r"`momentum` must be finite and >= 0 and < 1.*=1.0"),
        (dict(momentum=-0.1), ValueError, r"`momentum` must be .*Received: momentum=-0.1"),
        (dict(momentum=0.9, final_momentum=0.8), ValueError, r"`final_momentum` must be .*>= 0.9"),
        (dict(final_momentum=1.5), ValueError, r"`final_momentum` must be .*<= 1"),
        (dict(total_steps=0), ValueError, r"`total_steps` must be an integer >= 1"),
        (dict(total_steps=2.5), TypeError, r"`total_steps` must be an integer"),
        (dict(momentum="0.9"), TypeError, r"`momentum` must be a number"),
    ],
)
def test_momentum_update_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        MomentumUpdate(**arguments)
