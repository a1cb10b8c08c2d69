"""`EmbeddingMemory`: the queue of past embeddings and labels of a cross-batch memory (XBM)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import distribute, validation
from keras_siamese.losses.pair_batch import EMPTY_LABEL
from keras_siamese.models import queue_capacity


@keras.saving.register_keras_serializable(package="keras_siamese")
class EmbeddingMemory(keras.layers.Layer):
    """A first-in first-out queue of the global batch's embeddings and labels.

    The state of `keras_siamese.losses.CrossBatchMemory` inside a `SiameseNetwork`:
    non-trainable variables `embeddings (memory_size, dims)`, `labels (memory_size,)`
    (`EMPTY_LABEL`, -1, where nothing was written yet) and `pointer` (the next slot),
    saved and restored with the model. Every replica enqueues the gathered global batch,
    replica 0's rows first, so all replicas hold the same queue, as one device would.

    Args:
        memory_size: slots of the queue, at least one global batch.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> memory = EmbeddingMemory(4)
        >>> memory.build((None, 2))
        >>> memory.enqueue(tf.ones((3, 2)), tf.constant([0, 1, 1]))
        >>> memory.labels.numpy().tolist()
        [0, 1, 1, -1]
    """

    def __init__(self, memory_size: int, **kwargs):
        memory_size = validation.check_integer("memory_size", memory_size)
        super().__init__(**kwargs)
        self.memory_size = memory_size

    def build(self, input_shape):
        dims = int(input_shape[-1])
        options = {"trainable": False, "aggregation": "only_first_replica"}
        self.embeddings = self.add_weight(
            shape=(self.memory_size, dims), initializer="zeros", name="embeddings", **options
        )
        self.labels = self.add_weight(
            shape=(self.memory_size,),
            initializer=keras.initializers.Constant(EMPTY_LABEL),
            dtype="int32",
            name="labels",
            **options,
        )
        self.pointer = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="pointer", **options
        )
        self.built = True

    def _slots(self, count) -> tf.Tensor:
        return (self.pointer + tf.range(tf.cast(count, tf.int64), dtype=tf.int64)) % (
            self.memory_size
        )

    def check_fits(self, count) -> list:
        """Checks that a global batch of `count` rows fits in the memory.

        Args:
            count: rows of the global batch: an int, a tensor, or None (unknown: no check).

        Returns:
            `[]` when the count is known here; for a count known only when the graph runs
            (a dataset's last, partial batch), the assertion to run before any update.

        Raises:
            ValueError: for a known count larger than `memory_size`.
        """
        message = (
            "The cross-batch memory must hold at least one global batch. Received: "
            f"memory_size={self.memory_size} for a global batch of {{}}; pass a larger "
            "`memory_size` or use smaller batches"
        )
        return queue_capacity.batch_fits(count, self.memory_size, message)

    def contents(self, incoming: int | tf.Tensor):
        """`(embeddings, labels)` of the queue without the `incoming` slots to be overwritten.

        With the current global batch as references beside them, an anchor meets the
        `memory_size` most recent embeddings, the current batch included.

        Args:
            incoming: rows of the global batch about to be enqueued.

        Returns:
            The embeddings and the labels (`EMPTY_LABEL` in the slots left out).
        """
        self.check_fits(incoming if isinstance(incoming, int) else None)
        leaving = tf.scatter_nd(
            self._slots(incoming)[:, None],
            tf.ones_like(self._slots(incoming), tf.bool),
            (self.memory_size,),
        )
        labels = tf.where(leaving, tf.constant(EMPTY_LABEL, tf.int32), self.labels)
        return tf.identity(self.embeddings), labels

    def enqueue(self, embeddings, labels) -> None:
        """Writes this step's global batch (gathered over replicas) over the oldest slots.

        Args:
            embeddings: `(batch, dims)` embeddings of this replica (no gradient is kept).
            labels: `(batch,)` integer labels.

        Raises:
            ValueError: if the global batch is larger than the memory.
        """
        embeddings = distribute.all_gather(tf.stop_gradient(tf.cast(embeddings, tf.float32)))
        labels = distribute.all_gather(tf.cast(labels, tf.int32))
        count = tf.shape(labels)[0] if embeddings.shape[0] is None else embeddings.shape[0]
        with tf.control_dependencies(self.check_fits(count)):  # nothing written if too many
            slots = self._slots(tf.shape(labels)[0])[:, None]
        self.embeddings.assign(tf.tensor_scatter_nd_update(self.embeddings, slots, embeddings))
        self.labels.assign(tf.tensor_scatter_nd_update(self.labels, slots, labels))
        count = tf.cast(tf.shape(labels)[0], tf.int64)
        self.pointer.assign((self.pointer + count) % self.memory_size)

    def call(self, inputs):
        return inputs

    def get_config(self) -> dict:
        config = super().get_config()
        config["memory_size"] = self.memory_size
        return config
