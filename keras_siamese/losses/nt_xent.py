"""NT-Xent, the contrastive loss of SimCLR: `nt_xent` and `NTXent`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, validation
from keras_siamese.losses._checks import _check_same_shape_pair, _static_shape

if TYPE_CHECKING:
    import numpy as np

# A logit so negative that its softmax weight is exactly zero in float32 (used to mask a
# view's similarity with itself). Finite, so `0 * LARGE_NEGATIVE` stays 0 in gradients.
LARGE_NEGATIVE = -1e9


def _check_projection_pair(z1, z2) -> None:
    """Validates the static shapes of the two projections given to NT-Xent."""
    shape1, shape2 = _check_same_shape_pair(
        z1,
        z2,
        ("z1", "z2"),
        "projection_dims",
        "the projections of the two views of the same images",
    )
    known = [shape[0] for shape in (shape1, shape2) if shape is not None]
    batch_size = next((size for size in known if size is not None), None)
    if batch_size is not None and batch_size < 2 and not distribute.in_replica_context():
        raise ValueError(
            "NT-Xent needs at least 2 images per batch: with one image the only other "
            "view is its positive, so there is no negative to contrast with and the loss "
            "is constant. Use a larger batch (SimCLR uses 256 to 8192). "
            f"Received: z1.shape={shape1}, z2.shape={shape2}"
        )


def nt_xent(
    z1: tf.Tensor | np.ndarray,
    z2: tf.Tensor | np.ndarray,
    temperature: float = 0.5,
    return_logits: bool = False,
) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Normalized temperature-scaled cross-entropy (NT-Xent), the loss of SimCLR.

    From Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual
    Representations" (https://arxiv.org/abs/2002.05709), Eq. 1: the `2n` projections of
    the two views of `n` images are compared by cosine similarity divided by
    `temperature`; each of the `2n` views is an anchor whose positive is the other view
    of its image and whose negatives are the other `2n - 2` views. The loss of an anchor
    is the cross-entropy of its softmax over all views but itself, with the positive as
    target; the result is the mean over the `2n` anchors.

    Inside `strategy.run` of a strategy with more than one replica the negatives come
    from the global batch, as in google-research/simclr's `add_contrastive_loss`: `z1`
    and `z2` are gathered across replicas (`distribute.all_gather`, differentiable) and
    the local anchors are compared with all `2N` global views. The loss returned is the
    sum over the local `2n` anchors divided by the global anchor count `2N`, times the
    number of replicas (the mean over the local anchors when every replica holds `n =
    N / replicas` images). Divide it by the number of replicas
    (`distribute.scale_for_replicas`) before taking gradients: the sum over replicas then
    equals the single-device loss on the global batch, gradients included, also when
    replicas hold different batch sizes (a last partial batch), where a per-replica mean
    would weigh the anchors of the smaller replica more. Each replica's offset in the
    global batch is gathered, not assumed to be `replica_id * n`. The triplet loss
    normalises by its global count the same way.

    The computation is in float32 whatever the dtype of `z1` and `z2`.

    Args:
        z1: projections of the first views, shape `(n, projection_dims)`.
        z2: projections of the second views, same shape; row `i` of `z2` is the
            positive of row `i` of `z1`.
        temperature: the softmax temperature `tau` (finite, > 0). SimCLR uses 0.5 for
            CIFAR-10 and 0.1 for ImageNet with large batches.
        return_logits: if True, also return the logits and labels, e.g. to compute the
            contrastive accuracy (how often the positive gets the largest logit).

    Returns:
        The scalar float32 loss (with replicas: this replica's share, see above), or with
        `return_logits=True` a tuple
        `(loss, logits, labels)`: `logits` of shape `(2n, 2N)` has one row per local
        anchor (`z1` rows first, then `z2` rows) and one column per global view (all of
        `z1` gathered, then all of `z2` gathered), with each anchor's similarity to itself
        set to a large negative number; `labels` (int32, shape `(2n,)`) is the column of
        each anchor's positive. Without replicas `N = n`.

    Raises:
        ValueError: if `z1` or `z2` is not of rank 2, if their shapes differ, if the
            static batch size is 1 outside a multi-replica context (no negatives: with an
            unknown static batch size a batch of 1 gives a loss of 0 instead), or if
            `temperature` is not finite and > 0 (`keras_siamese.validation`).
        TypeError: if `temperature` is not a number.

    Example:
        >>> z1 = keras.random.normal((8, 16), seed=1)
        >>> z2 = z1 + 0.1 * keras.random.normal((8, 16), seed=2)
        >>> loss, logits, labels = nt_xent(z1, z2, temperature=0.5, return_logits=True)
        >>> tuple(logits.shape), tuple(labels.shape)
        ((16, 16), (16,))
        >>> accuracy = ops.mean(ops.cast(ops.argmax(logits, axis=-1) == labels, "float32"))
    """
    temperature = validation.check_temperature(temperature)
    z1 = ops.convert_to_tensor(z1)
    z2 = ops.convert_to_tensor(z2)
    _check_projection_pair(z1, z2)

    z1 = ops.normalize(ops.cast(z1, "float32"), axis=-1)
    z2 = ops.normalize(ops.cast(z2, "float32"), axis=-1)
    local_size = ops.shape(z1)[0]

    if distribute.in_replica_context():
        z1_global = distribute.all_gather(z1)
        z2_global = distribute.all_gather(z2)
        # Offset of this replica's rows in the global batch: the sum of the batch sizes of
        # the replicas before it (equal to replica_id * n when all batches are equal).
        sizes = distribute.all_gather(ops.reshape(ops.cast(local_size, "int32"), (1,)))
        before = ops.arange(ops.shape(sizes)[0], dtype="int32") < distribute.replica_id()
        offset = ops.sum(ops.where(before, sizes, ops.zeros_like(sizes)))
    else:
        z1_global, z2_global = z1, z2
        offset = ops.convert_to_tensor(0, "int32")
    global_size = ops.cast(ops.shape(z1_global)[0], "int32")

    anchors = ops.concatenate([z1, z2], axis=0)  # (2n, d)
    views = ops.concatenate([z1_global, z2_global], axis=0)  # (2N, d)
    logits = ops.matmul(anchors, ops.transpose(views)) / temperature  # (2n, 2N)

    local_rows = offset + ops.arange(local_size, dtype="int32")  # global index of z1 rows
    self_columns = ops.concatenate([local_rows, local_rows + global_size], axis=0)
    labels = ops.concatenate([local_rows + global_size, local_rows], axis=0)
    columns = ops.arange(2 * global_size, dtype="int32")
    self_mask = ops.equal(ops.expand_dims(self_columns, 1), ops.expand_dims(columns, 0))
    logits = ops.where(self_mask, ops.cast(LARGE_NEGATIVE, "float32"), logits)

    per_anchor = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    if distribute.in_replica_context():
        # Each anchor weighs 1 / (2N) of the global batch, whichever replica holds it:
        # times the replica count, which `scale_for_replicas` divides out again.
        replicas = float(distribute.num_replicas())
        global_anchors = ops.cast(2 * global_size, "float32")
        loss = ops.sum(per_anchor) / global_anchors * replicas
    else:
        loss = ops.mean(per_anchor)
    if return_logits:
        return loss, logits, labels
    return loss


@keras.saving.register_keras_serializable(package="keras_siamese")
class NTXent(keras.losses.Loss):
    """NT-Xent (SimCLR's contrastive loss) as a `keras.losses.Loss`.

    The Keras `Loss` signature has a single prediction tensor, so `y_pred` holds the two
    views stacked on the batch axis: its first half is `z1`, its second half `z2` (row
    `i` and row `n + i` are the two views of image `i`). `y_true` is ignored (pass
    `None` or any labels). See `nt_xent` for the maths (Chen et al., 2020,
    https://arxiv.org/abs/2002.05709) and the cross-replica negatives.

    Args:
        temperature: the softmax temperature (finite, > 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; kept for API
            compatibility, the default leaves the value unchanged.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: if `temperature` is not finite and > 0; at call time if `y_pred` is
            not of rank 2 or has an odd number of rows, or for the errors of `nt_xent`.
        TypeError: if `temperature` is not a number.

    Example:
        >>> loss_fn = NTXent(temperature=0.5)
        >>> z = keras.random.normal((8, 16), seed=1)  # 4 images, two views each
        >>> float(loss_fn(None, z)) > 0
        True
    """

    def __init__(
        self,
        temperature: float = 0.5,
        name: str = "nt_xent",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        temperature = validation.check_temperature(temperature)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = temperature

    def __call__(self, y_true, y_pred, sample_weight=None):
        # y_true is ignored; a placeholder keeps Keras' conversion of None from failing.
        if y_true is None:
            y_true = ops.zeros((), dtype=self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        shape = _static_shape(y_pred)
        if shape is not None and len(shape) != 2:
            raise ValueError(
                "Argument `y_pred` of NTXent must have rank 2, the two views stacked as "
                f"(2 * batch_size, projection_dims). Received: y_pred.shape={shape}"
            )
        if shape is not None and shape[0] is not None and shape[0] % 2:
            raise ValueError(
                "Argument `y_pred` of NTXent must have an even number of rows: the first "
                "half holds the first views, the second half the second views. "
                f"Received: y_pred.shape={shape}"
            )
        z1, z2 = ops.split(y_pred, 2, axis=0)
        return nt_xent(z1, z2, temperature=self.temperature)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"temperature": self.temperature, "dtype": self._dtype_policy.name})
        return config
