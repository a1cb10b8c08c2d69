"""`datasets.shuffled_batches`: every example once per epoch, reshuffled, structure kept."""

import numpy as np
import pytest

from keras_siamese import datasets


def epochs_of(dataset, batches_per_epoch, epochs):
    iterator = iter(dataset)
    return [[next(iterator) for _ in range(batches_per_epoch)] for _ in range(epochs)]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    images = np.arange(40, dtype="uint8").reshape(10, 2, 2, 1)
    dataset = datasets.shuffled_batches(images, 5, seed=0)
    first, second = epochs_of(dataset, 2, 2)
    orders = [
        np.concatenate([batch[:, 0, 0, 0].numpy() // 4 for batch in e]) for e in (first, second)
    ]
    for order in orders:
        assert sorted(order) == list(range(10))
    assert not np.array_equal(orders[0], orders[1])  # reshuffled
    np.testing.assert_array_equal(first[0].numpy(), images[orders[0][:5]])  # exact pixels


def test_tuples_stay_aligned_and_the_partial_batch_is_dropped():
    images = np.arange(7, dtype="int64")[:, None] * 10
    labels = np.arange(7, dtype="int64")
    batches = list(datasets.shuffled_batches((images, labels), 3, seed=1, repeat=False))
    assert len(batches) == 2  # 7 // 3
    for batch_images, batch_labels in batches:
        np.testing.assert_array_equal(batch_images.numpy()[:, 0], 10 * batch_labels.numpy())


def test_same_seed_same_order():
    images = np.arange(12, dtype="float32")
    a = [b.numpy() for b in datasets.shuffled_batches(images, 4, seed=3, repeat=False)]
    b = [b.numpy() for b in datasets.shuffled_batches(images, 4, seed=3, repeat=False)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


@pytest.mark.parametrize(
    "arrays, batch_size, match",
    [
        (np.zeros((0, 2)), 1, r"`arrays`.*Received lengths \[0\]"),
        ((np.zeros((3, 2)), np.zeros(4)), 1, r"`arrays`.*Received lengths \[3, 4\]"),
        (np.zeros((3, 2)), 4, r"`batch_size` must be an integer in \[1, 3\].*batch_size=4"),
        (np.zeros((3, 2)), 0, r"`batch_size`.*batch_size=0"),
        (np.zeros((3, 2)), 2.0, r"`batch_size`.*batch_size=2.0"),
    ],
)
def test_bad_arguments(arrays, batch_size, match):
    with pytest.raises(ValueError, match=match):
        datasets.shuffled_batches(arrays, batch_size)
