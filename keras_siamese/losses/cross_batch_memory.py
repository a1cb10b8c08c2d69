"""`CrossBatchMemory` (XBM): any pair loss scored against the embeddings of past batches too."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.losses.metric_loss import MetricLoss


@keras.saving.register_keras_serializable(package="keras_siamese")
class CrossBatchMemory(MetricLoss):
    """A pair loss whose anchors also meet the embeddings of past batches (XBM).

    "The embeddings of past iterations drift slowly ... we can use them as an
    approximation of the current embeddings" (Wang et al. 2020, "Cross-Batch Memory for
    Embedding Learning"): a queue of the last `memory_size` embeddings and labels of the
    global batch is kept, and each anchor of a batch is scored against the current global
    batch and the queue, so a small batch sees as many pairs as a large one. As in
    pytorch-metric-learning's `CrossBatchMemory`, the references are the `memory_size` most
    recent embeddings including the current batch (no gradient flows into the queue) and an
    anchor is never paired with itself.

    The queue is state of the model that trains with it: `SiameseNetwork(loss=
    CrossBatchMemory(...))` keeps it as non-trainable variables (saved with the model,
    gathered over the replicas so every replica holds the same global queue, left out of
    the export). Used alone, `compute(embeddings, labels, memory=(embeddings, labels))`
    takes the queue's contents; the Keras `call` has no state and refuses to run.

    Args:
        loss: a pair loss (`MultiSimilarityLoss`, `CircleLoss`, `SupervisedContrastiveLoss`,
            `BatchContrastiveLoss`), or its config.
        memory_size: embeddings kept, at least one global batch.
        name: name of the loss.

    Raises:
        TypeError: for a `loss` that is not a pair loss of keras_siamese (a proxy loss has
            its class weights instead of a memory).
        ValueError: for a `memory_size` that is not a positive integer.

    Example:
        >>> loss = CrossBatchMemory(keras_siamese.losses.MultiSimilarityLoss(), 4096)
        >>> model = keras_siamese.SiameseNetwork(encoder, loss=loss, embedding_dim=64)
    """

    def __init__(self, loss: MetricLoss | dict, memory_size: int = 1024, name: str = "xbm"):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, MetricLoss) or loss.uses_proxies:
            raise TypeError(
                "Argument `loss` of CrossBatchMemory must be a pair loss of keras_siamese.losses "
                "(MultiSimilarityLoss, CircleLoss, SupervisedContrastiveLoss, "
                f"BatchContrastiveLoss). Received: loss={loss!r}"
            )
        memory_size = validation.check_integer("memory_size", memory_size)
        super().__init__(name=name)
        self.loss = loss
        self.memory_size = memory_size

    def compute(self, embeddings, labels, proxies=None, memory=None) -> tf.Tensor:
        """The wrapped loss of `embeddings` against the global batch and `memory`."""
        return self.loss.compute(embeddings, labels, memory=memory)

    def call(self, y_true, y_pred):
        raise TypeError(
            "CrossBatchMemory keeps a queue of past embeddings, which a stateless Keras loss "
            "cannot hold: train with keras_siamese.SiameseNetwork(loss=CrossBatchMemory(...)), "
            "or call compute(embeddings, labels, memory=(memory_embeddings, memory_labels))"
        )

    def get_config(self) -> dict:
        return {
            "loss": keras.saving.serialize_keras_object(self.loss),
            "memory_size": self.memory_size,
            "name": self.name,
        }
