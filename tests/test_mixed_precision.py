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
