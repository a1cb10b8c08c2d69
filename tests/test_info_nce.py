"""Tests of `info_nce` / `InfoNCE` (MoCo): numpy references, analytic cases, gradients, checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.info_nce import InfoNCE, info_nce


def normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cross_entropy(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(log_softmax[np.arange(len(labels)), labels])


def lightly_memory_bank_loss(out0, out1, bank, temperature):
    """lightly 1.6.0's NTXentLoss(memory_bank_size=K) given its bank, from its documented
    formula: normalise out0 and out1 (the bank holds normalised keys, shape (dims, K)),
    logits = [out0 . out1, out0 @ bank] / T, cross-entropy with the positive at index 0."""
    out0, out1 = normalize(out0), normalize(out1)
    positive = np.einsum("nc,nc->n", out0, out1)[:, None]
    negative = np.einsum("nc,ck->nk", out0, bank)
    logits = np.concatenate([positive, negative], axis=1) / temperature
    return cross_entropy(logits, np.zeros(len(out0), int))


def moco_v3_loss(query, key, temperature):
    """MoCo v3's contrastive loss (Chen et al. 2021, Algorithm 1) without its 2T factor."""
    logits = normalize(query) @ normalize(key).T / temperature
    return cross_entropy(logits, np.arange(len(query)))


def test_info_nce_with_negatives_matches_lightly_memory_bank_formula():
    rng = np.random.default_rng(0)
    query, key = rng.normal(size=(2, 6, 5))
    queue = normalize(rng.normal(size=(11, 5)))
    expected = lightly_memory_bank_loss(query, key, queue.T, 0.2)
    loss, logits, labels = info_nce(
        query.astype("float32"), key.astype("float32"), queue.astype("float32"),
        temperature=0.2, return_logits=True,
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert tuple(logits.shape) == (6, 12) and labels.numpy().tolist() == [0] * 6
    # Negatives are normalised inside: a scaled queue gives the same loss.
    scaled = info_nce(query.astype("float32"), key.astype("float32"), 7.0 * queue, 0.2)
    np.testing.assert_allclose(float(scaled), expected, rtol=1e-5)


def test_info_nce_in_batch_matches_moco_v3_formula():
    rng = np.random.default_rng(1)
    query, key = rng.normal(size=(2, 8, 4))
    loss, logits, labels = info_nce(
        query.astype("float32"), key.astype("float32"), temperature=0.5, return_logits=True
    )
    np.testing.assert_allclose(float(loss), moco_v3_loss(query, key, 0.5), rtol=1e-5)
    assert tuple(logits.shape) == (8, 8) and labels.numpy().tolist() == list(range(8))


def test_info_nce_analytic_cases():
    temperature = 0.2
    identity = np.eye(6, dtype="float32")
    query = identity[:2]
    # The key equals the query; the K negatives are orthogonal to it: logits [1/T, 0, ...].
    loss = info_nce(query, 3.0 * query, identity[2:], temperature)
    expected = np.log(1.0 + 4 * np.exp(-1.0 / temperature))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    # In-batch keys: orthonormal queries, each key its query: n - 1 logits of 0.
    loss = info_nce(identity[:5], identity[:5], temperature=temperature)
    np.testing.assert_allclose(float(loss), np.log(1.0 + 4 * np.exp(-1.0 / temperature)), rtol=1e-6)
    # Every candidate identical: a uniform softmax over the n candidates.
    ones = np.ones((4, 3), "float32")
    np.testing.assert_allclose(float(info_nce(ones, ones, temperature=0.7)), np.log(4.0), rtol=1e-6)


@pytest.mark.parametrize("with_negatives", [True, False])
def test_info_nce_gradients_match_finite_differences(with_negatives):
    rng = np.random.default_rng(2)
    query, key = rng.normal(size=(2, 4, 3))
    queue = rng.normal(size=(5, 3)) if with_negatives else None

    def reference(q, k, negatives):
        if negatives is None:
            return moco_v3_loss(q, k, 0.5)
        return lightly_memory_bank_loss(q, k, normalize(negatives).T, 0.5)

    inputs = [query, key] + ([queue] if with_negatives else [])
    variables = [tf.Variable(value.astype("float32")) for value in inputs]
    with tf.GradientTape() as tape:
        loss = info_nce(*variables[:2], variables[2] if with_negatives else None, 0.5)
    gradients = tape.gradient(loss, variables)
    step = 1e-6
    for index, value in enumerate(inputs):
        numeric = np.zeros_like(value)
        for position in np.ndindex(value.shape):
            plus, minus = [v.copy() for v in inputs], [v.copy() for v in inputs]
            plus[index][position] += step
            minus[index][position] -= step
            numeric[position] = (
                reference(*plus[:2], plus[2] if with_negatives else None)
                - reference(*minus[:2], minus[2] if with_negatives else None)
            ) / (2 * step)
        np.testing.assert_allclose(gradients[index].numpy(), numeric, rtol=2e-3, atol=2e-5)


def test_info_nce_class_config_round_trip_and_value():
    rng = np.random.default_rng(3)
    query, key = rng.normal(size=(2, 6, 4)).astype("float32")
    loss_fn = InfoNCE(temperature=0.3)
    np.testing.assert_allclose(float(loss_fn(key, query)), moco_v3_loss(query, key, 0.3), rtol=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss_fn))
    assert isinstance(restored, InfoNCE) and restored.temperature == 0.3
    assert restored.get_config() == loss_fn.get_config()


@pytest.mark.parametrize(
    "query_shape, key_shape, negatives_shape, match",
    [
        ((4,), (4,), None, r"Argument `query` must have rank 2.*Received: query.shape=\(4,\)"),
        ((4, 3), (4, 2), None, r"same shape.*query.shape=\(4, 3\), key.shape=\(4, 2\)"),
        ((4, 3), (4, 3), (5,), r"`negatives` must have rank 2.*negatives.shape=\(5,\)"),
        ((4, 3), (4, 3), (5, 2), r"`negatives` must have the queries' size.*\(5, 2\)"),
        ((1, 3), (1, 3), None, r"at least 2 queries.*query.shape=\(1, 3\)"),
    ],
)
def test_info_nce_bad_shapes_raise(query_shape, key_shape, negatives_shape, match):
    negatives = None if negatives_shape is None else np.ones(negatives_shape, "float32")
    with pytest.raises(ValueError, match=match):
        info_nce(np.ones(query_shape, "float32"), np.ones(key_shape, "float32"), negatives)


@pytest.mark.parametrize(
    "temperature, error, match",
    [
        (0.0, ValueError, r"`temperature` must be finite and > 0. Received: temperature=0.0"),
        (float("inf"), ValueError, r"Received: temperature=inf"),
        ("0.2", TypeError, r"`temperature` must be a number"),
    ],
)
def test_info_nce_bad_temperature_raises(temperature, error, match):
    ones = np.ones((4, 3), "float32")
    with pytest.raises(error, match=match):
        info_nce(ones, ones, temperature=temperature)
    with pytest.raises(error, match=match):
        InfoNCE(temperature=temperature)
