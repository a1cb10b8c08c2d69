"""Tests of `EmbeddingMemory`, the cross-batch memory's queue: a numpy ring buffer is the
reference for enqueue (wrap-around included), `contents` masks the slots about to be
overwritten, and a batch larger than the queue is refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.pair_batch import EMPTY_LABEL
from keras_siamese.models.embedding_memory import EmbeddingMemory

DIMS = 3


class RingBuffer:
    """The reference: a plain numpy first-in first-out queue with a write pointer."""

    def __init__(self, size):
        self.embeddings = np.zeros((size, DIMS), np.float32)
        self.labels = np.full(size, EMPTY_LABEL, np.int32)
        self.pointer = 0

    def enqueue(self, embeddings, labels):
        for row, label in zip(embeddings, labels, strict=True):
            self.embeddings[self.pointer] = row
            self.labels[self.pointer] = label
            self.pointer = (self.pointer + 1) % len(self.labels)


def built_memory(size):
    memory = EmbeddingMemory(size)
    memory.build((None, DIMS))
    return memory


def batch(count, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, DIMS)).astype("float32"), rng.integers(0, 4, count)


def assert_same_state(memory, reference):
    np.testing.assert_array_equal(memory.embeddings.numpy(), reference.embeddings)
    np.testing.assert_array_equal(memory.labels.numpy(), reference.labels)
    assert int(memory.pointer.numpy()) == reference.pointer


def test_starts_empty_with_non_trainable_state():
    memory = built_memory(5)
    assert memory.embeddings.shape == (5, DIMS)
    np.testing.assert_array_equal(memory.labels.numpy(), [EMPTY_LABEL] * 5)
    assert int(memory.pointer.numpy()) == 0
    assert not memory.trainable_weights
    assert len(memory.non_trainable_weights) == 3


@pytest.mark.parametrize("graph", [False, True])
def test_enqueue_wraps_around_like_a_ring_buffer(graph):
    memory, reference = built_memory(5), RingBuffer(5)
    enqueue = tf.function(memory.enqueue) if graph else memory.enqueue
    for step, count in enumerate([2, 3, 4, 1, 5, 3]):  # wraps at steps 2, 4 and 5
        embeddings, labels = batch(count, seed=step)
        enqueue(tf.constant(embeddings), tf.constant(labels))
        reference.enqueue(embeddings, labels)
        assert_same_state(memory, reference)


def test_enqueue_keeps_no_gradient_and_stores_float32():
    memory = built_memory(4)
    embeddings = tf.Variable(np.ones((2, DIMS), np.float64))
    with tf.GradientTape() as tape:
        memory.enqueue(embeddings * 2.0, tf.constant([1, 2]))
        total = tf.reduce_sum(memory.embeddings)
    assert tape.gradient(total, embeddings) is None
    assert memory.embeddings.dtype == "float32"
    np.testing.assert_array_equal(memory.embeddings.numpy()[:2], 2.0)


@pytest.mark.parametrize("incoming", [1, 3, 5])
def test_contents_masks_the_slots_about_to_be_overwritten(incoming):
    memory, reference = built_memory(5), RingBuffer(5)
    for step, count in enumerate([4, 3]):  # pointer 2; slots 2, 3 hold the oldest rows
        embeddings, labels = batch(count, seed=step)
        memory.enqueue(embeddings, labels)
        reference.enqueue(embeddings, labels)
    for value in (incoming, tf.constant(incoming)):
        embeddings, labels = memory.contents(value)
        leaving = [(reference.pointer + k) % 5 for k in range(incoming)]
        expected = reference.labels.copy()
        expected[leaving] = EMPTY_LABEL
        np.testing.assert_array_equal(labels.numpy(), expected)
        np.testing.assert_array_equal(embeddings.numpy(), reference.embeddings)
    assert_same_state(memory, reference)  # reading changes nothing


def test_contents_in_a_graph_with_a_dynamic_batch():
    memory = built_memory(4)
    memory.enqueue(*batch(4, seed=0))  # full, pointer back at 0
    contents = tf.function(
        lambda labels: memory.contents(tf.shape(labels)[0])[1],
        input_signature=[tf.TensorSpec((None,), tf.int32)],
    )
    labels = memory.labels.numpy()
    np.testing.assert_array_equal(contents(tf.zeros(3, tf.int32)), [-1, -1, -1, labels[3]])


def test_a_batch_larger_than_the_memory_is_refused():
    memory = built_memory(4)
    with pytest.raises(ValueError, match="memory_size=4 for a global batch of 5"):
        memory.contents(5)
    with pytest.raises(ValueError, match="memory_size=4 for a global batch of 5"):
        memory.enqueue(*batch(5, seed=0))
    np.testing.assert_array_equal(memory.labels.numpy(), [EMPTY_LABEL] * 4)  # nothing written


def test_a_dynamic_batch_larger_than_the_memory_fails_in_a_graph():
    memory = built_memory(4)
    enqueue = tf.function(
        memory.enqueue,
        input_signature=[tf.TensorSpec((None, DIMS), tf.float32), tf.TensorSpec((None,), tf.int32)],
    )
    embeddings, labels = batch(3, seed=0)
    enqueue(tf.constant(embeddings), tf.constant(labels, tf.int32))  # fits
    embeddings, labels = batch(5, seed=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="memory_size=4"):
        enqueue(tf.constant(embeddings), tf.constant(labels, tf.int32))
    assert int(memory.pointer.numpy()) == 3  # nothing written


@pytest.mark.parametrize("memory_size, error", [(0, ValueError), (2.5, TypeError)])
def test_bad_memory_size_raises(memory_size, error):
    with pytest.raises(error, match="memory_size"):
        EmbeddingMemory(memory_size)


def test_config_round_trip():
    memory = EmbeddingMemory(7, name="queue")
    restored = EmbeddingMemory.from_config(memory.get_config())
    assert (restored.memory_size, restored.name) == (7, "queue")
    serialized = keras.saving.serialize_keras_object(memory)
    assert keras.saving.deserialize_keras_object(serialized).memory_size == 7
