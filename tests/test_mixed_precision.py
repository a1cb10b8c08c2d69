"""Mixed precision: layers compute in bfloat16/float16, losses and metrics stay float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import distribute, losses


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for one test and restores float32 afterwards."""
    try:
        yield distribute.set_mixed_precision(request.param)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _train(steps=3):
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8), temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    images = random_images(8 * steps, seed=5)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True)
    before = [weight.copy() for weight in model.encoder.get_weights()]
    history = model.fit(dataset, epochs=1, verbose=0)
    return model, history, before


@pytest.mark.parametrize("policy", ["bfloat16"], indirect=True)
def test_bfloat16_simclr_trains_with_a_finite_float32_loss(policy):
    assert policy == "mixed_bfloat16"
    model, history, before = _train()
    assert model.dtype_policy.name == "mixed_bfloat16"
    conv = model.encoder.layers[1]
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    # The encoder computes in bfloat16, the loss, similarities and metrics in float32.
    features = model.encoder(np.zeros((2, 16, 16, 1), "float32"))
    assert features.dtype == tf.bfloat16
    loss, logits, _ = losses.nt_xent(features, features + 1, return_logits=True)
    assert loss.dtype == tf.float32 and logits.dtype == tf.float32
    assert all(metric.dtype == "float32" for metric in model.metrics)
    assert np.all(np.isfinite(history.history["loss"])) and history.history["loss"][0] > 0
    weights = model.encoder.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(weights, before, strict=True))
    assert "mixed_bfloat16" in str(model.distribution_report())
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("policy", ["float16"], indirect=True)
def test_float16_wraps_the_optimizer_in_loss_scaling(policy):
    model, history, before = _train(steps=2)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # The step multiplied the loss by this scale (optimizer.scale_loss) and unscaled the
    # gradients before the update.
    assert float(model.optimizer.dynamic_scale) > 1.0
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(
        not np.array_equal(a, b) for a, b in zip(model.encoder.get_weights(), before, strict=True)
    )
    assert all(np.all(np.isfinite(weight)) for weight in model.get_weights())


def _sized_model(units):
    """A compiled regression model; `units` sets how much work its step does."""
    model = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(units),
            keras.layers.Dense(units),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("slow", ["float32", "bfloat16"])
def test_fastest_precision_times_each_policy_and_picks_the_faster(slow):
    built = []

    def build_model():
        policy = keras.mixed_precision.global_policy().name
        built.append(policy)
        # The slow candidate's step does ~1000x the work of the other one.
        return _sized_model(2048 if policy.endswith(slow) else 8)

    batch = (np.ones((512, 256), "float32"), np.zeros((512, 1), "float32"))
    keras.mixed_precision.set_global_policy("float32")
    name, seconds = distribute.fastest_precision(build_model, batch, ("float32", "bfloat16"), 3)
    assert built == ["float32", "mixed_bfloat16"]  # each model built under its own policy
    assert set(seconds) == {"float32", "bfloat16"}
    assert name == ("bfloat16" if slow == "float32" else "float32")
    assert seconds[slow] > seconds[name]
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_fastest_precision_keeps_the_first_candidate_unless_another_wins_by_the_margin():
    # Equal work in both policies: within timing noise, so float32 (the first) stays.
    name, seconds = distribute.fastest_precision(
        lambda: _sized_model(64),
        (np.ones((64, 256), "float32"), np.zeros((64, 1), "float32")),
        ("float32", "bfloat16"),
        margin=0.9,
    )
    assert name == "float32" and set(seconds) == {"float32", "bfloat16"}


def test_fastest_precision_restores_the_policy_when_the_build_fails():
    keras.mixed_precision.set_global_policy("float32")

    def build_model():
        raise RuntimeError("no model")

    with pytest.raises(RuntimeError, match="no model"):
        distribute.fastest_precision(build_model, np.zeros((1, 2)), ("bfloat16",))
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"candidates": ("float64",)}, r"`candidates`.*Received: candidates=\('float64',\)"),
        ({"rounds": 0}, r"`rounds` must be a positive integer. Received: rounds=0"),
        ({"margin": 1.0}, r"`margin` must be in \[0, 1\). Received: margin=1.0"),
    ],
)
def test_fastest_precision_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        distribute.fastest_precision(lambda: _sized_model(2), np.zeros((1, 256)), **arguments)


def test_precision_candidates_on_this_cpu():
    assert distribute.precision_candidates() == ("float32", "bfloat16")


METHODS = {
    "SimCLR": lambda encoder: ks.SimCLR(encoder, projection_dims=(16, 8)),
    "SimSiam": lambda encoder: ks.SimSiam(encoder, projection_dim=16, predictor_hidden_dim=8),
    "BYOL": lambda encoder: ks.BYOL(encoder, projection_dim=8, hidden_dim=16),
    "MoCo v2": lambda encoder: ks.MoCo(encoder, queue_size=16),
    "MoCo v3": lambda encoder: ks.MoCo(encoder, version="v3"),
    "NNCLR": lambda encoder: ks.NNCLR(
        encoder, projection_dims=(16, 8), prediction_dims=(16, 8), support_set_size=16
    ),
    "DINO": lambda encoder: ks.DINO(encoder, output_dim=32, hidden_dim=16, bottleneck_dim=8),
    "BarlowTwins": lambda encoder: ks.BarlowTwins(encoder, projection_dims=(16, 16)),
    "VICReg": lambda encoder: ks.VICReg(encoder, projection_dims=(16, 16)),
    "SwAV": lambda encoder: ks.SwAV(encoder, num_prototypes=8, projection_dims=(16, 8)),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_in_bfloat16_with_a_finite_loss(method):
    try:
        distribute.set_mixed_precision("bfloat16")
        model = METHODS[method](tiny_encoder())
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        images = tf.data.Dataset.from_tensor_slices(random_images(16, seed=3)).batch(8)
        history = model.fit(images, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.encoder.layers[1].compute_dtype == "bfloat16"
    assert np.all(np.isfinite(history.history["loss"]))


def test_loss_scaling_overflow_is_skipped_not_stopped():
    """Under mixed_float16 an overflowing scaled gradient is the LossScaleOptimizer's to skip
    (it lowers the scale): the non-finite check must not stop training (models/nonfinite.py),
    while a non-finite loss still does."""
    from keras_siamese.models import nonfinite

    loss = tf.constant(1.0)
    overflowed = [tf.constant([float("inf"), 1.0])]
    kept_loss, kept = nonfinite.checked_update(loss, overflowed, tf.constant(0), True)
    assert float(kept_loss) == 1.0 and not np.isfinite(kept[0].numpy()).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="the gradients"):
        nonfinite.checked_update(loss, overflowed, tf.constant(0), False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the loss"):
        nonfinite.checked_update(tf.constant(float("nan")), overflowed, tf.constant(0), True)
