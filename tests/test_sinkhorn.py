"""Tests of SwAV's Sinkhorn-Knopp codes: marginals, equipartition, lightly's formula, masks."""

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.sinkhorn import sinkhorn


def lightly_sinkhorn(out, iterations=3, epsilon=0.05):
    """lightly 1.6.0 `sinkhorn` (gather_distributed=False) in numpy.

    `Q = exp(out / epsilon).T` (prototypes x samples) divided by its sum; each iteration
    divides the rows by their sums, then the columns by their sums and by B; finally Q * B,
    transposed back.
    """
    q = np.exp(np.asarray(out, "float64") / epsilon).T
    q /= q.sum()
    batch = q.shape[1]
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= q.sum(axis=0, keepdims=True)
        q /= batch
    return (q * batch).T


def scaling_vectors_sinkhorn(scores, iterations=3, epsilon=0.05):
    """Sinkhorn-Knopp as scaling vectors: `Q = diag(u) P diag(v)` with marginals 1/K and 1/B."""
    kernel = np.exp(np.asarray(scores, "float64").T / epsilon)  # (K, B)
    kernel /= kernel.sum()
    prototypes, batch = kernel.shape
    u, v = np.ones(prototypes), np.ones(batch)
    for _ in range(iterations):
        u = (1.0 / prototypes) / (kernel @ v)
        v = (1.0 / batch) / (kernel.T @ u)
    return (u[:, None] * kernel * v[None, :]).T * batch


def cosine_scores(batch, prototypes, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, 8))
    c = rng.normal(size=(8, prototypes))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=0, keepdims=True)
    return (z @ c).astype("float32")


@pytest.mark.parametrize("iterations, epsilon", [(1, 0.05), (3, 0.05), (3, 0.5), (10, 0.1)])
def test_codes_match_lightly_and_the_scaling_vector_form(iterations, epsilon):
    scores = cosine_scores(16, 6, seed=0)
    codes = sinkhorn(scores, iterations=iterations, epsilon=epsilon).numpy()
    np.testing.assert_allclose(
        codes, lightly_sinkhorn(scores, iterations, epsilon), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        codes, scaling_vectors_sinkhorn(scores, iterations, epsilon), rtol=1e-4, atol=1e-7
    )


def test_rows_sum_to_one_and_columns_to_batch_over_prototypes():
    scores = cosine_scores(32, 8, seed=1)
    codes = sinkhorn(scores, iterations=3).numpy()
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)  # exact after the last step
    # Three iterations approach the equipartition B / K; many reach it.
    softmax = tf.nn.softmax(scores / 0.05).numpy()
    gap, softmax_gap = (np.abs(q.sum(axis=0) - 32 / 8).max() for q in (codes, softmax))
    assert gap < 0.5 * softmax_gap, (gap, softmax_gap)
    converged = sinkhorn(scores, iterations=200).numpy()
    np.testing.assert_allclose(converged.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(converged.sum(axis=0), 32 / 8, rtol=1e-3)
    assert (codes >= 0).all()


def test_a_batch_one_prototype_would_take_is_spread_over_all_prototypes():
    # Every sample is most similar to prototype 0: a softmax assigns the whole batch to it.
    rng = np.random.default_rng(2)
    scores = rng.uniform(-0.5, 0.5, size=(32, 4)).astype("float32")
    scores[:, 0] = 0.9
    softmax = tf.nn.softmax(scores / 0.05).numpy()
    assert (softmax.argmax(axis=1) == 0).all() and softmax[:, 0].sum() > 31
    codes = sinkhorn(scores, iterations=3, epsilon=0.05).numpy()
    totals = codes.sum(axis=0)  # B / K = 8 each at equipartition; 32 on prototype 0 before
    assert totals[0] < 12.0 and totals.min() > 4.0, totals
    assert sorted(set(codes.argmax(axis=1))) == [0, 1, 2, 3]


def test_the_analytic_balanced_case():
    # Scores s * I (B = K): exp(S / eps) has equal row and column sums, so the codes are its
    # rows normalised: e^(s/eps) / (e^(s/eps) + K - 1) on the diagonal.
    codes = sinkhorn(0.2 * np.eye(5, dtype="float32"), iterations=3, epsilon=0.1).numpy()
    diagonal = np.exp(2.0) / (np.exp(2.0) + 4)
    np.testing.assert_allclose(np.diag(codes), diagonal, rtol=1e-5)
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-6)


def test_epsilon_sharpens_and_large_scores_do_not_overflow():
    scores = cosine_scores(16, 6, seed=3)

    def entropy(codes):
        return float(-np.sum(codes * np.log(np.maximum(codes, 1e-30))))

    sharp, smooth = (sinkhorn(scores, epsilon=e).numpy() for e in (0.02, 0.5))
    assert entropy(sharp) < entropy(smooth)
    huge = sinkhorn(1000.0 * scores, epsilon=0.05).numpy()  # exp(20000) without the shift
    assert np.isfinite(huge).all() and (huge >= 0).all()


def test_masked_rows_get_no_codes_and_do_not_count():
    scores = cosine_scores(12, 5, seed=4)
    mask = np.array([True] * 8 + [False] * 4)
    codes = sinkhorn(scores, mask=mask).numpy()
    np.testing.assert_array_equal(codes[8:], 0.0)
    np.testing.assert_allclose(codes[:8], sinkhorn(scores[:8]).numpy(), rtol=1e-5, atol=1e-7)
    assert np.isfinite(sinkhorn(scores, mask=np.zeros(12, bool)).numpy()).all()


def test_codes_are_constants_for_the_gradient():
    scores = tf.Variable(cosine_scores(8, 4, seed=5))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(sinkhorn(scores) * tf.range(4, dtype=tf.float32))
    assert tape.gradient(total, scores) is None


def test_in_a_graph_with_an_unknown_batch_size():
    scores = cosine_scores(16, 6, seed=6)
    graph = tf.function(sinkhorn, input_signature=[tf.TensorSpec((None, 6), tf.float32)])
    np.testing.assert_allclose(
        graph(scores).numpy(), lightly_sinkhorn(scores), rtol=1e-4, atol=1e-7
    )


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(scores=np.ones(4, "float32")), ValueError, r"`scores` must have rank 2.*\(4,\)"),
        (dict(iterations=0), ValueError, r"`sinkhorn_iterations` must be an integer >= 1"),
        (dict(iterations=2.0), TypeError, r"`sinkhorn_iterations` must be an integer"),
        (dict(epsilon=0.0), ValueError, r"`epsilon` must be finite and > 0. Received: epsilon=0"),
        (dict(epsilon="0.05"), TypeError, r"`epsilon` must be a number"),
        (dict(mask=np.ones((4, 1), bool)), ValueError, r"`mask` must have rank 1.*\(4, 1\)"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    arguments.setdefault("scores", np.ones((4, 3), "float32"))
    with pytest.raises(error, match=match):
        sinkhorn(**arguments)
