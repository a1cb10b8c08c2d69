"""`seed=` means the result depends on that seed alone (issue 22, item 7).

`sampling.make_pairs` and `sampling.class_balanced_batches` used seeded tf.data ops, which
combine the op seed with TensorFlow's global seed: the same `seed=0` gave other pairs after
`tf.random.set_seed` and changed between two calls in one process. Their draws are now
stateless, keyed by (seed, epoch).
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import datasets, sampling
from keras_siamese.datasets import streaming


def labelled_examples():
    """60 examples of 6 classes whose single pixel is the example's index."""
    images = np.arange(60, dtype=np.int32).reshape(-1, 1, 1, 1)
    return images, np.arange(60, dtype=np.int64) % 6


def epoch(dataset) -> np.ndarray:
    """One pass over a pairs or batches dataset as one array of example indices."""
    parts = []
    for x, _ in dataset:
        for images in x if isinstance(x, tuple) else (x,):
            parts.append(np.ravel(images.numpy()))
    return np.concatenate(parts)


def make_pairs(seed):
    return sampling.make_pairs(labelled_examples(), 0.5, seed=seed).batch(16)


def make_batches(seed):
    return sampling.class_balanced_batches(labelled_examples(), 3, 4, seed=seed)


BUILDERS = pytest.mark.parametrize("build", [make_pairs, make_batches], ids=["pairs", "batches"])


def unrelated_seeded_work():
    """Seeded ops of the kinds that used to shift the datasets' seeds."""
    tf.random.uniform([3], seed=4)
    list(tf.data.Dataset.range(10).shuffle(10, seed=4))
    tf.data.Dataset.random(seed=4).take(2)


@BUILDERS
def test_the_global_seed_does_not_change_the_draws(build):
    tf.random.set_seed(1)
    first = [epoch(d) for d in [build(0)] * 2]
    keras.utils.set_random_seed(12345)
    again = build(0)
    second = [epoch(again), epoch(again)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@BUILDERS
def test_two_calls_in_one_process_give_the_same_draws(build):
    first = epoch(build(3))
    unrelated_seeded_work()
    np.testing.assert_array_equal(first, epoch(build(3)))


@BUILDERS
def test_other_seeds_and_other_epochs_differ(build):
    dataset = build(0)
    epoch_0, epoch_1 = epoch(dataset), epoch(dataset)
    assert not np.array_equal(epoch_0, epoch_1)
    assert not np.array_equal(epoch_0, epoch(build(1)))


@BUILDERS
def test_a_repeated_dataset_draws_each_epoch_by_its_number(build):
    dataset = build(5)
    epochs = [epoch(dataset), epoch(dataset)]
    repeated = epoch(build(5).repeat(2))
    np.testing.assert_array_equal(repeated, np.concatenate(epochs))


def test_no_seed_follows_the_global_seed():
    keras.utils.set_random_seed(7)
    first = epoch(make_pairs(None))
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(first, epoch(make_pairs(None)))


# The seeded readers of `datasets` and fine-tuning's batches (issue 22, item 7, continued):
# they used `shuffle(seed=...)`, which also mixes in the global seed. Their orders are now
# stateless permutations keyed by (seed, epoch).


def index_images(count=24):
    """`count` one-pixel uint8 images whose pixel is the image's index."""
    return np.arange(count, dtype=np.uint8).reshape(-1, 1, 1, 1)


def endless_batches(seed):
    """The first two epochs (6 batches of 4 of 12 examples) of the endless dataset."""
    return datasets.shuffled_batches(index_images(12), 4, seed=seed).take(6)


def one_epoch_batches(seed):
    return datasets.shuffled_batches((index_images(12), np.arange(12)), 4, seed=seed, repeat=False)


def streamed(seed):
    elements = {"path": np.array([f"file-{i}" for i in range(16)]), "index": np.arange(16)}
    return streaming.stream(
        elements, lambda element: element["index"], None, 4, True, seed, "raise"
    )


def write_records(directory, count=24, shards=3):
    """Record i (a 1x1 PNG of value i, with int64 feature "index" = i) in shard i % shards."""
    paths = [str(directory / f"part-{shard}.tfrecord") for shard in range(shards)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    for index in range(count):
        png = tf.io.encode_png(tf.fill([1, 1, 1], tf.constant(index, tf.uint8))).numpy()
        feature = {
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
            "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        writers[index % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return str(directory / "part-*.tfrecord")


@pytest.fixture(scope="module")
def records_pattern(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("records"))


fine_tune = importlib.import_module("keras_siamese.evaluation.fine_tune")  # not the function


class _Recorder:
    """Stands in for the trainer of `fine_tune._fit`: keeps the dataset it is fitted on."""

    def compile(self, **kwargs):
        pass

    def fit(self, dataset, **kwargs):
        self.dataset = dataset


def fine_tune_batches(seed):
    recorder = _Recorder()
    examples = (np.arange(12, dtype=np.uint8).reshape(-1, 1, 1, 1), np.arange(12) % 3)
    fine_tune._fit(
        recorder, examples, 4, 0.1, 0.9, 2, seed, progress=False, description="fine-tune"
    )
    return recorder.dataset


def flat(dataset) -> np.ndarray:
    """One iteration over the dataset as the flat sequence of its images' values."""
    parts = []
    for element in dataset:
        images = element[0] if isinstance(element, tuple) else element
        parts.append(np.ravel(images.numpy()))
    return np.concatenate(parts)


def two_epochs(dataset) -> list[np.ndarray]:
    """Two iterations over the dataset (one, twice over an endless dataset's `take`)."""
    return [flat(dataset), flat(dataset)]


READERS = pytest.mark.parametrize(
    "build",
    [one_epoch_batches, streamed, fine_tune_batches],
    ids=["shuffled_batches", "stream", "fine_tune"],
)


@READERS
def test_readers_ignore_the_global_seed_and_earlier_seeded_ops(build):
    tf.random.set_seed(1)
    first = two_epochs(build(0))
    keras.utils.set_random_seed(12345)
    unrelated_seeded_work()
    second = two_epochs(build(0))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@READERS
def test_readers_differ_by_seed_and_by_epoch(build):
    epoch_0, epoch_1 = two_epochs(build(0))
    assert sorted(epoch_0) == sorted(epoch_1)
    assert not np.array_equal(epoch_0, epoch_1)
    assert not np.array_equal(epoch_0, flat(build(1)))


def test_endless_batches_ignore_the_global_seed_and_reshuffle_each_epoch():
    tf.random.set_seed(1)
    first = flat(endless_batches(4))
    keras.utils.set_random_seed(99)
    unrelated_seeded_work()
    np.testing.assert_array_equal(first, flat(endless_batches(4)))
    assert sorted(first[:12]) == sorted(first[12:]) == list(range(12))
    assert not np.array_equal(first[:12], first[12:])
    assert not np.array_equal(first, flat(endless_batches(5)))


def test_endless_batches_skip_lands_on_the_nth_batch():
    dataset = datasets.shuffled_batches(index_images(10), 3, seed=2)
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    batches = [batch.numpy() for batch in dataset.take(9)]
    for n in (0, 4, 7):
        np.testing.assert_array_equal(next(iter(dataset.skip(n))).numpy(), batches[n])


def test_one_epoch_cardinality_is_kept():
    assert one_epoch_batches(0).cardinality() == 3
    assert streamed(0).cardinality() == 4


def test_tfrecords_ignore_the_global_seed_and_differ_by_seed_and_epoch(records_pattern):
    def build(seed):
        return datasets.from_tfrecords(
            records_pattern, None, channels=1, seed=seed, shuffle_buffer_size=5
        )

    tf.random.set_seed(1)
    first = two_epochs(build(0))
    keras.utils.set_random_seed(12345)
    unrelated_seeded_work()
    second = two_epochs(build(0))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(first[0]) == sorted(first[1]) == list(range(24))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], flat(build(1)))
