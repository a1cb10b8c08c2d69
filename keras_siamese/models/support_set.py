"""`SupportSet`: NNCLR's queue of past projections and its nearest-neighbour lookup."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import distribute, validation
from keras_siamese.models import queue_capacity


@keras.saving.register_keras_serializable(package="keras_siamese")
class SupportSet(keras.layers.Layer):
    """A first-in first-out queue of L2-normalised projections, searched by cosine similarity.

    The support set Q of NNCLR (Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548,
    section 3.2): "We implement our support set as a queue (i.e., first-in-first-out) ...
    We update it at the end of each training step by taking the n (batch size) embeddings
    from the current training step and concatenating them at the end of the queue. We
    discard the oldest n elements from the queue." Its state is three non-trainable
    variables, saved and restored with the model: `embeddings (size, dims)`, `filled` (how
    many slots hold a projection) and `pointer` (the next slot). Every replica enqueues the
    gathered global batch, replica 0's rows first, so all replicas hold one queue, as one
    device would (`aggregation="only_first_replica"`, like `EmbeddingMemory`).

    The paper starts the queue from a random matrix; here slots never written are never
    chosen, and an empty set returns the queries themselves (`nearest_neighbours`), so
    NNCLR's first step contrasts each projection with the other view's prediction, as
    SimCLR with a predictor would.

    Args:
        size: slots of the queue (NNCLR's `support_set_size`), at least one global batch.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for a `size` below 1; at `enqueue`, for a global batch larger than it.
        TypeError: for a `size` that is not an integer.

    Example:
        >>> support = SupportSet(4)
        >>> support.build((None, 2))
        >>> support.enqueue(tf.constant([[3.0, 0.0], [0.0, -2.0]]))
        >>> support.nearest_neighbours(tf.constant([[0.1, -1.0]])).numpy().tolist()
        [[0.0, -1.0]]
    """

    def __init__(self, size: int, **kwargs):
        size = validation.check_integer("size", size)
        super().__init__(**kwargs)
        self.size = size

    def build(self, input_shape):
        dims = int(input_shape[-1])
        options = {"trainable": False, "aggregation": "only_first_replica"}
        self.embeddings = self.add_weight(
            shape=(self.size, dims), initializer="zeros", name="embeddings", **options
        )
        self.filled = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="filled", **options
        )
        self.pointer = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", name="pointer", **options
        )
        self.built = True

    def nearest_neighbours(self, z) -> tf.Tensor:
        """The support-set row of highest cosine similarity with each row of `z`.

        Only filled slots are candidates; ties go to the lowest slot. While the set is
        empty (before the first `enqueue`) the L2-normalised `z` itself is returned. No
        gradient flows through the result (the paper's stop-gradient on NN(z, Q)).

        Args:
            z: `(n, dims)` projections (normalised here).

        Returns:
            `(n, dims)` float32 unit vectors, without gradient.
        """
        z = tf.math.l2_normalize(tf.cast(z, tf.float32), axis=1)
        similarities = tf.matmul(z, self.embeddings, transpose_b=True)
        candidates = tf.range(self.size, dtype=tf.int64) < self.filled
        similarities = tf.where(candidates[None, :], similarities, float("-inf"))
        neighbours = tf.gather(self.embeddings, tf.argmax(similarities, axis=1))
        return tf.stop_gradient(tf.where(self.filled > 0, neighbours, z))

    def check_fits(self, count) -> list:
        """Checks that a global batch of `count` rows fits in the queue.

        Args:
            count: rows of the global batch: an int, a tensor, or None (unknown: no check).

        Returns:
            `[]` when the count is known here; for a count known only when the graph runs
            (a dataset's last, partial batch), the assertion to run before the write.

        Raises:
            ValueError: for a known count larger than `size`.
        """
        message = (
            "NNCLR's support set must hold at least one global batch. Received: "
            f"support_set_size={self.size} for a global batch of {{}}; pass a larger "
            "`support_set_size` or use smaller batches"
        )
        return queue_capacity.batch_fits(count, self.size, message)

    def enqueue(self, z) -> None:
        """Writes this step's global batch (gathered over replicas) over the oldest slots.

        Args:
            z: `(n, dims)` projections of this replica (normalised here; no gradient kept).

        Raises:
            ValueError: if the global batch is larger than the queue.
        """
        z = tf.math.l2_normalize(tf.stop_gradient(tf.cast(z, tf.float32)), axis=1)
        z = distribute.all_gather(z)
        count = tf.shape(z, out_type=tf.int64)[0]
        with tf.control_dependencies(self.check_fits(z.shape[0] or count)):  # or no write
            count = tf.identity(count)
            slots = (self.pointer + tf.range(count, dtype=tf.int64)) % self.size
        self.embeddings.assign(tf.tensor_scatter_nd_update(self.embeddings, slots[:, None], z))
        self.pointer.assign((self.pointer + count) % self.size)
        self.filled.assign(tf.minimum(self.filled + count, self.size))

    def call(self, inputs):
        return inputs

    def get_config(self) -> dict:
        config = super().get_config()
        config["size"] = self.size
        return config
