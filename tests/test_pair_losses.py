"""Tests of the pair losses (multi-similarity, circle, supervised contrastive, in-batch
contrastive) and of the multi-similarity miner, against float64 loops written from
pytorch-metric-learning's (PML) formulas, reducers and miner rule."""

import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process

from keras_siamese.losses.batch_contrastive import BatchContrastiveLoss, batch_contrastive
from keras_siamese.losses.circle import CircleLoss, circle
from keras_siamese.losses.multi_similarity import MultiSimilarityLoss, multi_similarity
from keras_siamese.losses.pair_batch import EMPTY_LABEL, pair_batch
from keras_siamese.losses.pair_miner import MultiSimilarityMiner, multi_similarity_miner
from keras_siamese.losses.supervised_contrastive import (
    SupervisedContrastiveLoss,
    supervised_contrastive,
)

# ---------------------------------------------------------------------------------------
# References: plain loops over anchors and pairs in float64
# ---------------------------------------------------------------------------------------


def unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference_pairs(embeddings, labels, memory=None):
    """Similarities, distances and each anchor's positive and negative reference columns.

    The references are the batch followed by the memory rows that are not empty.
    """
    labels = [int(label) for label in labels]
    anchors = unit(embeddings)
    references, reference_labels = anchors, list(labels)
    if memory is not None:
        filled = [k for k, label in enumerate(memory[1]) if label != EMPTY_LABEL]
        references = np.concatenate([anchors, unit(np.asarray(memory[0])[filled])])
        reference_labels += [int(memory[1][k]) for k in filled]
    columns = range(len(reference_labels))
    positives = [
        [j for j in columns if reference_labels[j] == label and j != i]
        for i, label in enumerate(labels)
    ]
    negatives = [[j for j in columns if reference_labels[j] != label] for label in labels]
    distances = np.linalg.norm(anchors[:, None, :] - references[None, :, :], axis=-1)
    return types.SimpleNamespace(
        similarities=anchors @ references.T,
        distances=distances,
        positives=positives,
        negatives=negatives,
    )


def too_few_pairs(positives, negatives):
    """PML's GenericPairLoss: at most one positive and one negative pair -> loss 0."""
    return sum(map(len, positives)) <= 1 and sum(map(len, negatives)) <= 1


def logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))


def mean_of_nonzero(values):
    """PML's AvgNonZeroReducer."""
    nonzero = [value for value in values if value > 0]
    return float(np.mean(nonzero)) if nonzero else 0.0


def reference_multi_similarity(pairs, positives, negatives, alpha=2.0, beta=50.0, base=0.5):
    if too_few_pairs(positives, negatives):
        return 0.0
    s = pairs.similarities
    losses = []
    for i in range(len(s)):
        positive = math.log1p(sum(math.exp(-alpha * (s[i, p] - base)) for p in positives[i]))
        negative = math.log1p(sum(math.exp(beta * (s[i, n] - base)) for n in negatives[i]))
        losses.append(positive / alpha + negative / beta)
    return float(np.mean(losses))  # MeanReducer: every anchor counts


def reference_circle(pairs, positives, negatives, margin=0.4, gamma=80.0, weights_from=None):
    if too_few_pairs(positives, negatives):
        return 0.0
    s = pairs.similarities
    w = s if weights_from is None else weights_from  # the detached weights
    losses = []
    for i in range(len(s)):
        if not positives[i] or not negatives[i]:
            losses.append(0.0)
            continue
        positive = logsumexp(
            [-gamma * max(1 + margin - w[i, p], 0) * (s[i, p] - (1 - margin)) for p in positives[i]]
        )
        negative = logsumexp(
            [gamma * max(w[i, n] + margin, 0) * (s[i, n] - margin) for n in negatives[i]]
        )
        losses.append(np.logaddexp(0.0, positive + negative))  # softplus
    return mean_of_nonzero(losses)


def reference_supervised_contrastive(pairs, positives, negatives, temperature=0.1):
    if too_few_pairs(positives, negatives) or not any(positives) or not any(negatives):
        return 0.0
    s = pairs.similarities
    losses = []
    for i in range(len(s)):
        if not positives[i]:
            losses.append(0.0)
            continue
        denominator = logsumexp([s[i, j] / temperature for j in positives[i] + negatives[i]])
        losses.append(-np.mean([s[i, p] / temperature - denominator for p in positives[i]]))
    return mean_of_nonzero(losses)


def reference_batch_contrastive(
    pairs, positives, negatives, positive_margin=0.0, negative_margin=1.0
):
    if too_few_pairs(positives, negatives):
        return 0.0
    d = pairs.distances
    positive = [max(d[i, p] - positive_margin, 0) for i, ps in enumerate(positives) for p in ps]
    negative = [max(negative_margin - d[i, n], 0) for i, ns in enumerate(negatives) for n in ns]
    return mean_of_nonzero(positive) + mean_of_nonzero(negative)


def reference_miner(pairs, epsilon=0.1):
    """PML's MultiSimilarityMiner: per row, sort with float32 sentinels and threshold."""
    positives, negatives = pairs.positives, pairs.negatives
    if not any(positives) or not any(negatives):
        return [[] for _ in positives], [[] for _ in negatives]
    big = float(np.finfo(np.float32).max)
    kept_positives, kept_negatives = [], []
    for i, row in enumerate(pairs.similarities):
        positive_row = np.array([row[j] if j in positives[i] else big for j in range(len(row))])
        negative_row = np.array([row[j] if j in negatives[i] else -big for j in range(len(row))])
        positive_order, negative_order = np.argsort(positive_row), np.argsort(negative_row)
        positive_sorted, negative_sorted = (
            positive_row[positive_order],
            negative_row[negative_order],
        )
        kept_positives.append(
            sorted(
                positive_order[k]
                for k in range(len(row))
                if positive_sorted[k] - epsilon < negative_sorted[-1]
            )
        )
        kept_negatives.append(
            sorted(
                negative_order[k]
                for k in range(len(row))
                if negative_sorted[k] + epsilon > positive_sorted[0]
            )
        )
    return kept_positives, kept_negatives


def mask_lists(mask):
    return [list(np.flatnonzero(row)) for row in np.asarray(mask)]


# name: (function, class, reference, non-default hyperparameters)
LOSSES = {
    "multi_similarity": (
        multi_similarity,
        MultiSimilarityLoss,
        reference_multi_similarity,
        {"alpha": 3.0, "beta": 20.0, "base": 0.3},
    ),
    "circle": (circle, CircleLoss, reference_circle, {"margin": 0.25, "gamma": 32.0}),
    "supervised_contrastive": (
        supervised_contrastive,
        SupervisedContrastiveLoss,
        reference_supervised_contrastive,
        {"temperature": 0.5},
    ),
    "batch_contrastive": (
        batch_contrastive,
        BatchContrastiveLoss,
        reference_batch_contrastive,
        {"positive_margin": 0.2, "negative_margin": 1.3},
    ),
}


def random_batch(seed, count=10, dims=4, classes=3):
    """Repeated labels, and label `classes` once: an anchor without positives."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(count, dims)).astype("float32")
    labels = rng.integers(0, classes, count)
    labels[0] = classes
    return embeddings, labels


def random_memory(seed, size=6, dims=4, classes=3):
    """Memory rows, two of them empty (EMPTY_LABEL, with garbage embeddings)."""
    rng = np.random.default_rng(seed + 100)
    embeddings = rng.normal(size=(size, dims)).astype("float32")
    labels = rng.integers(0, classes, size)
    labels[[1, 4]] = EMPTY_LABEL
    return embeddings, labels


def assert_close(actual, expected, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(float(actual), expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------
# Values against the references
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("seed", range(3))
def test_loss_matches_numpy_reference(name, seed):
    function, _, reference, hyperparameters = LOSSES[name]
    embeddings, labels = random_batch(seed)
    pairs = reference_pairs(embeddings, labels)
    assert not pairs.positives[0]  # the singleton anchor
    for parameters in ({}, hyperparameters):
        loss = function(embeddings, labels, **parameters)
        assert loss.dtype == tf.float32 and loss.shape == ()
        expected = reference(pairs, pairs.positives, pairs.negatives, **parameters)
        assert expected > 0
        assert_close(loss, expected)


@pytest.mark.parametrize("name", LOSSES)
def test_degenerate_batches_match_reference(name):
    function, _, reference, _ = LOSSES[name]
    embeddings, _ = random_batch(5, count=6)
    # One class (no negatives), all different (no positives), one pair of a class plus
    # singletons, and a single positive pair with a single negative (PML's "too few" rule).
    cases = [np.zeros(6, int), np.arange(6), np.array([0, 0, 1, 2, 3, 4])]
    for labels in cases:
        pairs = reference_pairs(embeddings, labels)
        expected = reference(pairs, pairs.positives, pairs.negatives)
        assert_close(function(embeddings, labels), expected)
    memory = (embeddings[1:3], np.array([0, 1]))
    assert float(function(embeddings[:1], np.array([0]), memory=memory)) == 0.0
    # Circle and SupCon give 0 without negatives; SupCon without positives too.
    if name in ("circle", "supervised_contrastive"):
        assert float(function(embeddings, cases[0])) == 0.0
        assert float(function(embeddings, cases[1])) == 0.0


def test_multi_similarity_analytic_case():
    # Unit vectors with cosines 0.8 (both positive pairs), 0.6, 0 and -0.6 (negatives).
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], "float32")
    labels = np.array([0, 0, 1, 1])
    positive = 0.5 * math.log(1 + math.exp(-2 * 0.3))
    negative_0 = math.log(1 + math.exp(-25) + math.exp(-55)) / 50  # anchors 0 and 3
    negative_1 = math.log(1 + math.exp(5) + math.exp(-25)) / 50  # anchors 1 and 2
    expected = positive + (negative_0 + negative_1) / 2
    assert_close(multi_similarity(embeddings, labels), expected, rtol=1e-6)
    # With epsilon 0.3 the miner keeps (1, 0), (2, 3), (1, 2) and (2, 1): anchors 0 and 3
    # keep nothing but still count in the mean.
    mined = multi_similarity(embeddings, labels, miner=MultiSimilarityMiner(0.3))
    assert_close(mined, (positive + math.log(1 + math.exp(5)) / 50) / 2, rtol=1e-6)


def test_circle_analytic_case():
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], "float32")
    labels = np.array([0, 0, 1, 1])
    # Positive 0.8: -80 * (1.4 - 0.8) * (0.8 - 0.6) = -9.6. Negatives: 0 -> 80 * 0.4 * -0.4
    # = -12.8; -0.6 -> weight [-0.2]_+ = 0, logit 0; 0.6 -> 80 * 1.0 * 0.2 = 16.
    loss_0 = math.log1p(math.exp(-9.6 + math.log(math.exp(-12.8) + 1.0)))
    loss_1 = math.log1p(math.exp(-9.6 + math.log(math.exp(16.0) + math.exp(-12.8))))
    assert_close(circle(embeddings, labels), (loss_0 + loss_1) / 2, rtol=1e-6)


def test_supervised_contrastive_analytic_case():
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], "float32")
    labels = np.array([0, 0, 1, 1])
    # Logits s / 0.1: positive 8; negatives 0 and -6 (anchors 0, 3), 6 and 0 (anchors 1, 2).
    loss_0 = math.log(1 + math.exp(-8) + math.exp(-14))
    loss_1 = math.log(1 + math.exp(-2) + math.exp(-8))
    assert_close(supervised_contrastive(embeddings, labels), (loss_0 + loss_1) / 2, rtol=1e-6)


def test_batch_contrastive_analytic_case():
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], "float32")
    labels = np.array([0, 0, 1, 1])
    # Positives at d = sqrt(2 - 1.6); of the 8 negative pairs only the two at cosine 0.6
    # (d = sqrt(0.8)) are inside the margin 1: AvgNonZero averages over those two.
    expected = math.sqrt(0.4) + (1 - math.sqrt(0.8))
    assert_close(batch_contrastive(embeddings, labels), expected, rtol=1e-6)
    # Margins past every distance: each positive pair costs d - 0.1, each negative 2.5 - d.
    pairs = reference_pairs(embeddings, labels)
    negatives = [2.5 - pairs.distances[i, n] for i in range(4) for n in pairs.negatives[i]]
    expected = math.sqrt(0.4) - 0.1 + np.mean(negatives)
    assert_close(batch_contrastive(embeddings, labels, 0.1, 2.5), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------


def numeric_gradient(loss_of, embeddings, step=1e-6):
    gradient = np.zeros_like(embeddings)
    for index in np.ndindex(*embeddings.shape):
        shifted = [embeddings.copy(), embeddings.copy()]
        shifted[0][index] += step
        shifted[1][index] -= step
        gradient[index] = (loss_of(shifted[0]) - loss_of(shifted[1])) / (2 * step)
    return gradient


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(name):
    function, _, reference, _ = LOSSES[name]
    embeddings = np.random.default_rng(11).normal(size=(6, 3))
    labels = np.array([0, 0, 0, 1, 1, 2])  # anchor 5 has no positive
    fixed = reference_pairs(embeddings, labels).similarities

    def loss_of(values):
        pairs = reference_pairs(values, labels)
        # Circle's weights are constants of the gradient (PML's .detach()).
        extra = {"weights_from": fixed} if name == "circle" else {}
        return reference(pairs, pairs.positives, pairs.negatives, **extra)

    variable = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        loss = function(variable, labels)
    gradient = tape.gradient(loss, variable).numpy()
    expected = numeric_gradient(loss_of, embeddings)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(gradient, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())


def test_batch_contrastive_gradient_is_finite_for_identical_embeddings():
    embeddings = tf.Variable([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    with tf.GradientTape() as tape:
        loss = batch_contrastive(embeddings, np.array([0, 0, 1, 1]))
    assert np.isfinite(tape.gradient(loss, embeddings).numpy()).all()


# ---------------------------------------------------------------------------------------
# Memory and miner
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_memory_rows_are_extra_references(name):
    function, _, reference, hyperparameters = LOSSES[name]
    embeddings, labels = random_batch(2, count=8)
    memory = random_memory(2)
    pairs = reference_pairs(embeddings, labels, memory)
    expected = reference(pairs, pairs.positives, pairs.negatives, **hyperparameters)
    loss = function(embeddings, labels, memory=memory, **hyperparameters)
    assert_close(loss, expected)
    assert abs(float(loss) - float(function(embeddings, labels, **hyperparameters))) > 1e-4
    # Empty rows are ignored whatever they hold.
    moved = (memory[0] + 5.0 * (memory[1] == EMPTY_LABEL)[:, None], memory[1])
    assert_close(function(embeddings, labels, memory=moved, **hyperparameters), float(loss))
    # The class's compute takes the memory too.
    loss_fn = LOSSES[name][1](**hyperparameters)
    assert_close(loss_fn.compute(embeddings, labels, memory=memory), float(loss))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("epsilon", [0.1, 0.4])
def test_miner_matches_pml_rule(seed, epsilon):
    embeddings, labels = random_batch(seed, count=12)
    memory = random_memory(seed) if seed % 2 else None
    mined = multi_similarity_miner(pair_batch(embeddings, labels, memory), epsilon=epsilon)
    pairs = reference_pairs(embeddings, labels, memory)
    kept_positives, kept_negatives = reference_miner(pairs, epsilon)
    # Drop the empty memory columns: the reference never has them.
    columns = np.arange(len(labels))
    if memory is not None:
        columns = np.r_[columns, len(labels) + np.flatnonzero(memory[1] != EMPTY_LABEL)]
    assert mask_lists(mined.positive.numpy()[:, columns]) == kept_positives
    assert mask_lists(mined.negative.numpy()[:, columns]) == kept_negatives
    assert not kept_positives[0]  # no positive: keeps no negative either
    assert not kept_negatives[0]
    assert 0 < sum(map(len, kept_positives)) <= sum(map(len, pairs.positives))
    assert 0 < sum(map(len, kept_negatives)) < sum(map(len, pairs.negatives))


def test_miner_keeps_nothing_without_positives_or_negatives():
    embeddings, _ = random_batch(1, count=6)
    for labels in (np.zeros(6, int), np.arange(6)):
        mined = MultiSimilarityMiner()(pair_batch(embeddings, labels))
        assert not mined.positive.numpy().any() and not mined.negative.numpy().any()


@pytest.mark.parametrize("name", LOSSES)
def test_loss_with_miner_matches_reference(name):
    function, loss_class, reference, hyperparameters = LOSSES[name]
    if name == "circle":
        # At gamma 32 or 80 the log-sum-exps are the hard pairs' that the miner keeps: the
        # easy pairs' terms vanish in float32. A small gamma shows the miner's effect.
        hyperparameters = {"margin": 0.25, "gamma": 2.0}
    embeddings, labels = random_batch(4, count=12)
    pairs = reference_pairs(embeddings, labels)
    kept = reference_miner(pairs, 0.2)
    expected = reference(pairs, *kept, **hyperparameters)
    miner = MultiSimilarityMiner(0.2)
    loss = function(embeddings, labels, miner=miner, **hyperparameters)
    assert_close(loss, expected)
    unmined = float(function(embeddings, labels, **hyperparameters))
    assert abs(float(loss) - unmined) > 1e-4
    # The class with the miner, and any callable PairBatch -> PairBatch.
    loss_fn = loss_class(miner=miner, **hyperparameters)
    assert_close(loss_fn(labels, embeddings), expected)
    same = function(
        embeddings, labels, miner=lambda p: multi_similarity_miner(p, 0.2), **hyperparameters
    )
    assert_close(same, expected)


# ---------------------------------------------------------------------------------------
# Classes: Keras call, graph mode, config
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_class_matches_function_in_eager_and_graph_mode(name):
    function, loss_class, _, hyperparameters = LOSSES[name]
    embeddings, labels = random_batch(6)
    expected = float(function(embeddings, labels, **hyperparameters))
    loss_fn = loss_class(**hyperparameters)
    assert not loss_fn.uses_proxies
    assert_close(loss_fn(labels, embeddings), expected)
    graph = tf.function(
        loss_fn.compute,
        input_signature=[tf.TensorSpec((None, 4)), tf.TensorSpec((None,), tf.int64)],
    )
    assert_close(graph(embeddings, labels), expected)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("miner", [None, MultiSimilarityMiner(0.3)])
def test_config_round_trip(name, miner):
    _, loss_class, _, hyperparameters = LOSSES[name]
    embeddings, labels = random_batch(7)
    loss_fn = loss_class(**hyperparameters, miner=miner, name="custom")
    config = loss_fn.get_config()
    assert {*hyperparameters, "miner", "name", "reduction", "dtype"} <= set(config)
    restored = [
        loss_class.from_config(config),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss_fn)),
    ]
    for other in restored:
        assert type(other) is loss_class and other.name == "custom"
        assert other.get_config() == config
        assert type(other.miner) is type(miner)
        assert_close(other(labels, embeddings), float(loss_fn(labels, embeddings)), 0, 0)


def test_miner_config_round_trip():
    miner = MultiSimilarityMiner(epsilon=0.25)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(miner))
    assert isinstance(restored, MultiSimilarityMiner) and restored.epsilon == 0.25
    assert MultiSimilarityMiner.from_config(miner.get_config()).epsilon == 0.25


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

GOOD = (np.ones((4, 3), "float32"), np.array([0, 0, 1, 1]))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize(
    "embeddings, labels, keywords, error, match",
    [
        (np.ones((4, 3, 1)), GOOD[1], {}, ValueError, r"embeddings.shape=\(4, 3, 1\)"),
        (GOOD[0], np.ones((4, 2), int), {}, ValueError, r"labels.shape=\(4, 2\)"),
        (GOOD[0], np.array([0, 1, 1]), {}, ValueError, "same batch size"),
        (GOOD[0], np.array([0.0, 0, 1, 1]), {}, ValueError, "labels.dtype=float64"),
        (*GOOD, {"miner": "hard"}, TypeError, "miner='hard'"),
        (*GOOD, {"miner": lambda pairs: pairs.positive}, TypeError, "must return a `PairBatch`"),
        (*GOOD, {"memory": np.ones((2, 3))}, TypeError, "memory"),
        (*GOOD, {"memory": (np.ones((2, 5)), [0, 1])}, ValueError, r"memory\[0\].shape"),
        (*GOOD, {"memory": (np.ones((2, 3)), [0, 1, 1])}, ValueError, r"memory\[1\].shape"),
        (*GOOD, {"memory": (np.ones((2, 3)), [0.0, 1.0])}, ValueError, "memory.*float32"),
    ],
)
def test_bad_input_raises(name, embeddings, labels, keywords, error, match):
    with pytest.raises(error, match=match):
        LOSSES[name][0](embeddings, labels, **keywords)


@pytest.mark.parametrize(
    "name, keywords, error, match",
    [
        ("multi_similarity", {"alpha": 0.0}, ValueError, "alpha=0"),
        ("multi_similarity", {"beta": -1}, ValueError, "beta=-1"),
        ("multi_similarity", {"base": 2.0}, ValueError, "base=2"),
        ("multi_similarity", {"alpha": "2"}, TypeError, "alpha='2'"),
        ("circle", {"margin": -0.1}, ValueError, "margin=-0.1"),
        ("circle", {"gamma": 0}, ValueError, "gamma=0"),
        ("circle", {"gamma": float("inf")}, ValueError, "gamma=inf"),
        ("supervised_contrastive", {"temperature": -0.1}, ValueError, "temperature=-0.1"),
        ("supervised_contrastive", {"temperature": None}, TypeError, "temperature=None"),
        ("batch_contrastive", {"positive_margin": -1.0}, ValueError, "positive_margin=-1"),
        ("batch_contrastive", {"negative_margin": float("nan")}, ValueError, "negative_margin"),
    ],
)
def test_bad_hyperparameters_raise_in_function_and_class(name, keywords, error, match):
    function, loss_class, _, _ = LOSSES[name]
    with pytest.raises(error, match=match):
        function(*GOOD, **keywords)
    with pytest.raises(error, match=match):
        loss_class(**keywords)


def test_bad_miner_arguments_raise():
    with pytest.raises(ValueError, match="epsilon=-0.1"):
        MultiSimilarityMiner(epsilon=-0.1)
    with pytest.raises(TypeError, match="epsilon='0.1'"):
        multi_similarity_miner(pair_batch(*GOOD), epsilon="0.1")
    with pytest.raises(TypeError, match="PairBatch"):
        multi_similarity_miner(np.ones((4, 4)))
    with pytest.raises(TypeError, match="miner=3"):
        CircleLoss(miner=3)
    with pytest.raises(ValueError, match="takes no `proxies`"):
        CircleLoss().compute(*GOOD, proxies=np.ones((2, 3)))


# ---------------------------------------------------------------------------------------
# Replicas: the per-replica values sum to the one-device loss and gradients
# ---------------------------------------------------------------------------------------


@in_replica_process
def test_replicas_sum_to_one_device_loss_and_gradients():
    from keras_siamese import distribute

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    embeddings, labels = random_batch(8, count=9)
    split = 5  # uneven: 5 rows on replica 0, 4 on replica 1
    rows = [(embeddings[:split], labels[:split]), (embeddings[split:], labels[split:])]
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tuple(map(tf.constant, rows[context.replica_id_in_sync_group]))
    )
    mined = {"miner": MultiSimilarityMiner(0.2), "memory": random_memory(8)}
    cases = [(name, keywords) for name in LOSSES for keywords in ({}, mined)]

    def step(local_embeddings, local_labels):
        results = []
        for name, keywords in cases:  # one graph for every case: one trace
            with tf.GradientTape() as tape:
                tape.watch(local_embeddings)
                loss = LOSSES[name][0](local_embeddings, local_labels, **keywords)
                scaled = distribute.scale_for_replicas(loss)
            results.append((scaled, tape.gradient(scaled, local_embeddings)))
        return results

    per_replica = tf.function(lambda e, y: strategy.run(step, (e, y)))(*values)
    for (name, keywords), (scaled, gradients) in zip(cases, per_replica, strict=True):
        total = sum(float(x) for x in strategy.experimental_local_results(scaled))
        gathered = np.concatenate(
            [x.numpy() for x in strategy.experimental_local_results(gradients)]
        )
        variable = tf.Variable(embeddings)
        with tf.GradientTape() as tape:
            expected = LOSSES[name][0](variable, labels, **keywords)
        expected_gradient = tape.gradient(expected, variable).numpy()
        message = f"{name} {sorted(keywords)}"
        np.testing.assert_allclose(total, float(expected), rtol=1e-5, err_msg=message)
        # float32 sums in another order, scaled by circle's gamma: 1e-4 of the largest.
        atol = 1e-4 * np.abs(expected_gradient).max()
        np.testing.assert_allclose(
            gathered, expected_gradient, rtol=1e-4, atol=atol, err_msg=message
        )
