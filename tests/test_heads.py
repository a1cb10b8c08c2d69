"""Tests of keras_siamese.heads.ProjectionHead: a numpy forward pass, shapes, config, errors."""

import keras
import numpy as np
import pytest

from keras_siamese.heads import ProjectionHead


def weight(head, name):
    """The weight variable whose path ends with `name`, e.g. "output/kernel"."""
    (match,) = [w for w in head.weights if w.path.endswith(f"/{name}")]
    return match


def weights_by_path(head):
    """`{"hidden0/kernel": array, ...}`: the head's weights keyed by layer and weight name."""
    return {"/".join(w.path.split("/")[-2:]): w.numpy().astype("float64") for w in head.weights}


def numpy_projection(head, features, training):
    """Independent forward pass: hidden Dense -> BatchNorm -> ReLU, then the output layer."""
    weights = weights_by_path(head)
    x = np.asarray(features, "float64")

    def batch_norm(values, name):
        if training:
            mean, variance = values.mean(axis=0), values.var(axis=0)
        else:
            mean, variance = weights[f"{name}/moving_mean"], weights[f"{name}/moving_variance"]
        normalized = (values - mean) / np.sqrt(variance + 1e-3)  # Keras' default epsilon
        return normalized * weights[f"{name}/gamma"] + weights[f"{name}/beta"]

    for index in range(len(head.dims) - 1):
        x = np.maximum(
            batch_norm(x @ weights[f"hidden{index}/kernel"], f"hidden{index}_batch_norm"), 0
        )
    x = x @ weights["output/kernel"]
    if head.output_batch_norm:
        return batch_norm(x, "output_batch_norm")
    return x + weights["output/bias"]


def randomize_batch_norm(head, seed=0):
    """Non-trivial BatchNorm scales, offsets and moving statistics."""
    rng = np.random.default_rng(seed)
    for weight in head.weights:
        name = weight.path.split("/")[-1]
        if name in ("gamma", "moving_variance"):
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype("float32"))
        elif name in ("beta", "moving_mean"):
            weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))


@pytest.mark.parametrize("dims", [(32, 8), (16, 12, 4), (5,)])
@pytest.mark.parametrize("output_batch_norm", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_forward_pass_matches_numpy(dims, output_batch_norm, training):
    head = ProjectionHead(dims, output_batch_norm=output_batch_norm)
    features = np.random.default_rng(1).normal(size=(10, 12)).astype("float32")
    head.build((None, 12))
    randomize_batch_norm(head)
    outputs = head(features, training=training).numpy()
    assert outputs.shape == (10, dims[-1])
    expected = numpy_projection(head, features, training)
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)


def test_layers_and_weights():
    head = ProjectionHead((16, 8, 4), output_batch_norm=True)
    head.build((None, 6))
    weights = weights_by_path(head)
    assert weights["hidden0/kernel"].shape == (6, 16)
    assert weights["hidden1/kernel"].shape == (16, 8)
    assert weights["output/kernel"].shape == (8, 4)
    # Hidden Dense layers have no bias (BatchNorm's offset replaces it), nor has the output
    # layer when BatchNorm follows it.
    assert not any(name.endswith("bias") for name in weights)
    assert head.compute_output_shape((None, 6)) == (None, 4)
    plain = ProjectionHead((16, 4))
    plain.build((None, 6))
    assert "output/bias" in weights_by_path(plain)
    assert not any("output_batch_norm" in name for name in weights_by_path(plain))


def test_hidden_layer_is_rectified_and_batch_normalised():
    # A 1-wide output over a hidden layer: with an all-ones output kernel, the output is the
    # sum of the hidden activations, which are >= 0 after the ReLU. In training mode each
    # hidden unit is batch-normalised (mean 0, variance ~1 before the ReLU), so about half
    # of the values are zeroed.
    head = ProjectionHead((64, 1))
    features = np.random.default_rng(0).normal(3.0, 5.0, size=(256, 8)).astype("float32")
    head.build((None, 8))
    weight(head, "output/kernel").assign(np.ones((64, 1), "float32"))
    weight(head, "output/bias").assign(np.zeros((1,), "float32"))
    assert head(features, training=True).numpy().min() >= 0.0
    weights = weights_by_path(head)
    pre_activation = features @ weights["hidden0/kernel"]
    pre_activation = (pre_activation - pre_activation.mean(0)) / np.sqrt(
        pre_activation.var(0) + 1e-3
    )
    expected = np.maximum(pre_activation, 0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head(features, training=True).numpy(), expected, rtol=1e-4)
    assert 0.3 < (pre_activation > 0).mean() < 0.7


def test_output_batch_norm_standardises_the_output_in_training():
    head = ProjectionHead((32, 6), output_batch_norm=True)
    features = np.random.default_rng(2).normal(size=(128, 10)).astype("float32")
    outputs = head(features, training=True).numpy()
    np.testing.assert_allclose(outputs.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(outputs.std(axis=0), 1.0, atol=1e-2)


def test_sync_batch_norm_flag_reaches_every_batch_norm():
    head = ProjectionHead((8, 8, 4), output_batch_norm=True, sync_batch_norm=True)
    head.build((None, 3))
    norms = [
        layer
        for layer in head._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 3 and all(layer.synchronized for layer in norms)
    features = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    assert head(features, training=True).shape == (4, 4)  # no strategy: a plain BatchNorm


def test_get_config_round_trip():
    head = ProjectionHead((16, 8), output_batch_norm=True, sync_batch_norm=True, name="proj")
    config = head.get_config()
    assert config["dims"] == (16, 8)
    assert config["output_batch_norm"] is True and config["sync_batch_norm"] is True
    assert config["name"] == "proj"
    assert ProjectionHead.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert isinstance(restored, ProjectionHead)
    assert restored.get_config() == config
    # Same weights, same outputs.
    features = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
    head.build((None, 7))
    restored.build((None, 7))
    restored.set_weights(head.get_weights())
    np.testing.assert_allclose(
        restored(features, training=False).numpy(), head(features, training=False).numpy()
    )
    assert ProjectionHead(12).dims == (12,)


@pytest.mark.parametrize("dims", [(), (0,), (16, -1), (16.0, 8), "abc"])
def test_bad_dims_raise(dims):
    with pytest.raises(ValueError, match=r"`dims` must be a positive integer or a non-empty seq"):
        ProjectionHead(dims)


@pytest.mark.parametrize("dims", [(True, 4), None, 16.0])
def test_boolean_and_non_iterable_dims_raise(dims):
    with pytest.raises((ValueError, TypeError), match=r"`dims`.*Received: dims="):
        ProjectionHead(dims)
