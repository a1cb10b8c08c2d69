"""Tests of keras_siamese.sampling: pairs, P x K batches and class splits."""

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import sampling


def indexed_examples(labels):
    """Images whose single pixel is the example's index, so outputs can be traced back."""
    labels = np.asarray(labels, np.int64)
    images = np.arange(len(labels), dtype=np.int32).reshape(-1, 1, 1, 1)
    return images, labels


def all_pairs(dataset):
    """`(first_indices, second_indices, labels)` of one pass over a make_pairs dataset."""
    firsts, seconds, labels = [], [], []
    for (first, second), label in dataset.batch(1024):
        firsts.append(first.numpy().ravel())
        seconds.append(second.numpy().ravel())
        labels.append(label.numpy())
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(labels)


# ---------------------------------------------------------------------------------------
# make_pairs
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_make_pairs_positive_fraction_and_labels(fraction):
    labels = np.random.default_rng(0).integers(0, 5, 700)
    images, labels = indexed_examples(labels)
    pairs = sampling.make_pairs((images, labels), fraction, seed=1)
    assert int(pairs.batch(64, drop_remainder=True).cardinality()) == 700 // 64  # known epoch
    first, second, same = all_pairs(pairs)
    assert same.dtype == np.int32
    # Every example is the first image of exactly one pair; never paired with itself.
    np.testing.assert_array_equal(np.sort(first), np.arange(700))
    assert np.all(first != second)
    # Labels are right, and exactly floor(n * fraction) of the first n pairs are positive.
    np.testing.assert_array_equal(same, labels[first] == labels[second])
    expected = np.floor(np.arange(1, 701) * fraction)
    np.testing.assert_array_equal(np.cumsum(same), expected)


def test_make_pairs_partners_are_spread_over_classes_and_members():
    images, labels = indexed_examples(np.repeat(np.arange(4), 50))
    first, second, same = all_pairs(sampling.make_pairs((images, labels), 0.5, seed=3))
    negatives = second[same == 0]
    assert set(labels[negatives]) == {0, 1, 2, 3}
    assert len(np.unique(second)) > 100  # partners drawn from the whole class, not a few items


def test_make_pairs_single_member_class_only_makes_negatives():
    images, labels = indexed_examples([0, 0, 0, 1, 1, 1, 2])  # class 2: one example
    for seed in range(5):
        first, second, same = all_pairs(sampling.make_pairs((images, labels), 1.0, seed=seed))
        np.testing.assert_array_equal(same, labels[first] == labels[second])
        assert same[first == 6].tolist() == [0]
        assert same[first != 6].all()


def test_make_pairs_is_deterministic_with_a_seed_and_new_each_epoch():
    images, labels = indexed_examples(np.random.default_rng(1).integers(0, 3, 200))
    pairs = sampling.make_pairs((images, labels), 0.5, seed=7)
    epoch_1, epoch_2 = all_pairs(pairs), all_pairs(pairs)
    again = all_pairs(sampling.make_pairs((images, labels), 0.5, seed=7))
    for a, b in zip(epoch_1, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epoch_1[1], epoch_2[1])


def test_make_pairs_from_a_dataset_equals_from_arrays():
    images, labels = indexed_examples(np.random.default_rng(2).integers(0, 4, 100))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    from_dataset = all_pairs(sampling.make_pairs(dataset, 0.4, seed=0))
    from_arrays = all_pairs(sampling.make_pairs((images, labels), 0.4, seed=0))
    for a, b in zip(from_dataset, from_arrays, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "examples, keywords, error, match",
    [
        (
            (np.zeros((4, 2)), np.array([0, 0, 1, 1])),
            {"positive_fraction": 1.5},
            ValueError,
            "positive_fraction=1.5",
        ),
        ((np.zeros((3, 2)), np.array([0, 1, 2])), {}, ValueError, "No class has two examples"),
        ((np.zeros((3, 2)), np.array([1, 1, 1])), {}, ValueError, "one class"),
        ((np.zeros((4, 2)), np.eye(4, dtype=int)), {}, ValueError, r"labels.shape=\(4, 4\)"),
        ((np.zeros((4, 2)), np.zeros(4, "float32")), {}, TypeError, "integer class labels"),
        ((np.zeros((4, 2)), np.array([0, 0, 1, 1])), {"seed": 1.5}, TypeError, "seed=1.5"),
        (np.zeros((4, 2)), {}, TypeError, "tuple `\\(images, labels\\)`"),
    ],
)
def test_make_pairs_bad_input_raises(examples, keywords, error, match):
    with pytest.raises(error, match=match):
        sampling.make_pairs(examples, **keywords)


def test_batched_or_infinite_dataset_raises():
    images, labels = indexed_examples([0, 0, 1, 1])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    with pytest.raises(ValueError, match="unbatch"):
        sampling.make_pairs(dataset.batch(2))
    with pytest.raises(ValueError, match="must be finite"):
        sampling.class_balanced_batches(dataset.repeat(), 2, 2)


# ---------------------------------------------------------------------------------------
# class_balanced_batches
# ---------------------------------------------------------------------------------------


def test_class_balanced_batches_hold_p_classes_of_k_distinct_examples():
    labels = np.random.default_rng(4).integers(10, 16, 300)  # class ids need not start at 0
    images, labels = indexed_examples(labels)
    batches = list(sampling.class_balanced_batches((images, labels), 4, 5, seed=0))
    assert len(batches) == 300 // 20
    for batch_images, batch_labels in batches:
        indices, batch_labels = batch_images.numpy().ravel(), batch_labels.numpy()
        assert batch_labels.shape == (20,)
        np.testing.assert_array_equal(labels[indices], batch_labels)
        classes, counts = np.unique(batch_labels, return_counts=True)
        assert len(classes) == 4 and np.all(counts == 5)
        assert len(np.unique(indices)) == 20  # distinct examples (every class has >= 5)


def test_class_balanced_batches_small_class_repeats_all_its_members():
    images, labels = indexed_examples([0] * 10 + [1] * 2)
    batches = sampling.class_balanced_batches((images, labels), 2, 4, seed=1)
    for batch_images, batch_labels in batches:
        indices = batch_images.numpy().ravel()
        small = indices[batch_labels.numpy() == 1]
        assert len(small) == 4 and set(small) == {10, 11}


def test_class_balanced_batches_are_deterministic_and_new_each_epoch():
    images, labels = indexed_examples(np.repeat(np.arange(5), 20))
    batches = sampling.class_balanced_batches((images, labels), 3, 4, seed=5)

    def epoch(dataset):
        return np.concatenate([x.numpy().ravel() for x, _ in dataset])

    first, second = epoch(batches), epoch(batches)
    again = epoch(sampling.class_balanced_batches((images, labels), 3, 4, seed=5))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(
    "classes_per_batch, samples_per_class, error, match",
    [
        (4, 2, ValueError, "classes_per_batch=4"),
        (0, 2, ValueError, "classes_per_batch=0"),
        (2, 1, ValueError, "samples_per_class=1"),
        (2.0, 2, TypeError, "classes_per_batch=2.0"),
    ],
)
def test_class_balanced_batches_bad_arguments_raise(
    classes_per_batch, samples_per_class, error, match
):
    examples = indexed_examples([0, 0, 1, 1, 2, 2])
    with pytest.raises(error, match=match):
        sampling.class_balanced_batches(examples, classes_per_batch, samples_per_class)


# ---------------------------------------------------------------------------------------
# split_classes
# ---------------------------------------------------------------------------------------


def test_split_classes_arrays_and_dataset_agree():
    images, labels = indexed_examples(np.random.default_rng(6).integers(0, 10, 200))
    (seen_images, seen_labels), (unseen_images, unseen_labels) = sampling.split_classes(
        (images, labels), range(7)
    )
    assert set(seen_labels) <= set(range(7)) and set(unseen_labels) <= {7, 8, 9}
    assert len(seen_labels) + len(unseen_labels) == 200
    np.testing.assert_array_equal(labels[seen_images.ravel()], seen_labels)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    seen, unseen = sampling.split_classes(dataset, range(7))
    np.testing.assert_array_equal([int(y) for _, y in seen], seen_labels)
    unseen_indices = [int(x.numpy().ravel()[0]) for x, _ in unseen]
    np.testing.assert_array_equal(unseen_indices, unseen_images.ravel())


def test_split_classes_bad_input_raises():
    examples = indexed_examples([0, 1, 2])
    with pytest.raises(ValueError, match="classes=\\[\\]"):
        sampling.split_classes(examples, [])
    with pytest.raises(ValueError, match="No example is of the given classes"):
        sampling.split_classes(examples, [5])
    with pytest.raises(TypeError, match="integer class ids"):
        sampling.split_classes(examples, ["shirt"])
