"""Losses of the two-view methods: one section per loss, each a pure function plus a Loss class.

Every function takes the two projections (or predictions) of a batch, computes in float32
whatever the compute dtype of the model (mixed precision), and returns the mean over this
replica's examples. Under `tf.distribute` a training step divides that mean by the number
of replicas with `distribute.scale_for_replicas`, exactly as for any per-replica loss.

Sections:
    - NT-Xent (SimCLR): `nt_xent`, `NTXent`.
    - Negative cosine (SimSiam): `negative_cosine`, `NegativeCosine`.
    - Contrastive margin (Siamese pairs): `contrastive_margin`, `ContrastiveMargin`.
    - Triplet loss with online mining (Siamese triplets): `triplet_loss`, `TripletLoss`.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import distribute, similarity

if TYPE_CHECKING:
    import numpy as np

# A logit so negative that its softmax weight is exactly zero in float32 (used to mask a
# view's similarity with itself). Finite, so `0 * LARGE_NEGATIVE` stays 0 in gradients.
LARGE_NEGATIVE = -1e9


def _static_shape(value) -> tuple | None:
    """Returns the static shape of a tensor as a tuple, or None when the rank is unknown."""
    try:
        return tuple(value.shape)
    except (TypeError, ValueError):
        return None


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"Argument `temperature` must be a positive number. Received: "
            f"temperature={temperature!r} of type {type(temperature).__name__}"
        )
    if not temperature > 0:
        raise ValueError(
            f"Argument `temperature` must be > 0. Received: temperature={temperature}"
        )
    return float(temperature)


# ---------------------------------------------------------------------------------------
# NT-Xent (SimCLR)
# ---------------------------------------------------------------------------------------


def _check_projection_pair(z1, z2) -> None:
    """Validates the static shapes of the two projections given to NT-Xent."""
    shape1, shape2 = _static_shape(z1), _static_shape(z2)
    for name, shape in (("z1", shape1), ("z2", shape2)):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"Argument `{name}` must have rank 2, shape (batch_size, projection_dims). "
                f"Received: {name}.shape={shape}"
            )
    if shape1 is not None and shape2 is not None:
        pairs = zip(shape1, shape2, strict=True)
        if not all(a is None or b is None or a == b for a, b in pairs):
            raise ValueError(
                "Arguments `z1` and `z2` must have the same shape (the projections of the "
                f"two views of the same images). Received: z1.shape={shape1}, "
                f"z2.shape={shape2}"
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
    and `z2` are gathered across replicas (`distribute.all_gather`, differentiable), the
    local anchors are compared with all `2N` global views and the loss is the mean over
    the local `2n` anchors. Divide it by the number of replicas
    (`distribute.scale_for_replicas`) before taking gradients: the sum over replicas then
    equals the single-device loss on the global batch, gradients included. Replicas may
    hold different batch sizes (a last partial batch): each replica's offset in the
    global batch is gathered, not assumed to be `replica_id * n`.

    The computation is in float32 whatever the dtype of `z1` and `z2`.

    Args:
        z1: projections of the first views, shape `(n, projection_dims)`.
        z2: projections of the second views, same shape; row `i` of `z2` is the
            positive of row `i` of `z1`.
        temperature: the softmax temperature `tau` (> 0). SimCLR uses 0.5 for CIFAR-10
            and 0.1 for ImageNet with large batches.
        return_logits: if True, also return the logits and labels, e.g. to compute the
            contrastive accuracy (how often the positive gets the largest logit).

    Returns:
        The scalar float32 loss, or with `return_logits=True` a tuple
        `(loss, logits, labels)`: `logits` of shape `(2n, 2N)` has one row per local
        anchor (`z1` rows first, then `z2` rows) and one column per global view (all of
        `z1` gathered, then all of `z2` gathered), with each anchor's similarity to itself
        set to a large negative number; `labels` (int32, shape `(2n,)`) is the column of
        each anchor's positive. Without replicas `N = n`.

    Raises:
        ValueError: if `z1` or `z2` is not of rank 2, if their shapes differ, if the
            static batch size is 1 outside a multi-replica context (no negatives: with an
            unknown static batch size a batch of 1 gives a loss of 0 instead), or if
            `temperature <= 0`.
        TypeError: if `temperature` is not a number.

    Example:
        >>> z1 = keras.random.normal((8, 16), seed=1)
        >>> z2 = z1 + 0.1 * keras.random.normal((8, 16), seed=2)
        >>> loss, logits, labels = nt_xent(z1, z2, temperature=0.5, return_logits=True)
        >>> tuple(logits.shape), tuple(labels.shape)
        ((16, 16), (16,))
        >>> accuracy = ops.mean(ops.cast(ops.argmax(logits, axis=-1) == labels, "float32"))
    """
    temperature = _check_temperature(temperature)
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
        temperature: the softmax temperature (> 0).
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; kept for API
            compatibility, the default leaves the value unchanged.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: if `temperature <= 0`; at call time if `y_pred` is not of rank 2 or
            has an odd number of rows, or for the errors of `nt_xent`.
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
        temperature = _check_temperature(temperature)
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


# ---------------------------------------------------------------------------------------
# Negative cosine (SimSiam)
# ---------------------------------------------------------------------------------------


def _check_prediction_pair(p, z) -> None:
    """Validates the static shapes of a prediction and its target."""
    shape_p, shape_z = _static_shape(p), _static_shape(z)
    for name, shape in (("p", shape_p), ("z", shape_z)):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"Argument `{name}` must have rank 2, shape (batch_size, dims). "
                f"Received: {name}.shape={shape}"
            )
    if shape_p is not None and shape_z is not None:
        pairs = zip(shape_p, shape_z, strict=True)
        if not all(a is None or b is None or a == b for a, b in pairs):
            raise ValueError(
                "Arguments `p` and `z` must have the same shape (the prediction of one view "
                f"and the projection of the other). Received: p.shape={shape_p}, "
                f"z.shape={shape_z}"
            )


def _negative_cosine_per_example(p, z):
    p = ops.convert_to_tensor(p)
    z = ops.convert_to_tensor(z)
    _check_prediction_pair(p, z)
    z = ops.stop_gradient(z)
    p = ops.normalize(ops.cast(p, "float32"), axis=-1)
    z = ops.normalize(ops.cast(z, "float32"), axis=-1)
    return -ops.sum(p * z, axis=-1)


def negative_cosine(p: tf.Tensor | np.ndarray, z: tf.Tensor | np.ndarray) -> tf.Tensor:
    """Negative cosine similarity with a stop-gradient on the target, SimSiam's `D(p, z)`.

    From Chen & He, 2021, "Exploring Simple Siamese Representation Learning"
    (https://arxiv.org/abs/2011.10566), Eq. 1 and 3:
    `D(p, z) = -(p / ||p||) . (stopgrad(z) / ||z||)`, averaged over the batch. The
    stop-gradient is inside: no gradient ever flows into `z`, which is what keeps
    SimSiam from collapsing. SimSiam's symmetric loss is
    `0.5 * negative_cosine(p_a, z_b) + 0.5 * negative_cosine(p_b, z_a)`.

    The value is in [-1, 1] (-1 when every `p_i` points along `z_i`) and is computed in
    float32 whatever the input dtype; rows of zeros count as similarity 0.

    Args:
        p: predictions of one view, shape `(n, dims)`.
        z: projections of the other view (the targets), same shape.

    Returns:
        The scalar float32 mean over the `n` rows.

    Raises:
        ValueError: if `p` or `z` is not of rank 2 or their shapes differ.

    Example:
        >>> p = keras.random.normal((8, 16), seed=1)
        >>> round(float(negative_cosine(p, 3.0 * p)), 4)
        -1.0
    """
    return ops.mean(_negative_cosine_per_example(p, z))


@keras.saving.register_keras_serializable(package="keras_siamese")
class NegativeCosine(keras.losses.Loss):
    """SimSiam's negative cosine similarity as a `keras.losses.Loss`.

    `y_true` holds the targets `z` (gradients never reach them) and `y_pred` the
    predictions `p`; the per-example values `-cos(p_i, z_i)` are reduced by the Keras
    `reduction` (the mean by default), so `sample_weight` works as for any Keras loss.
    See `negative_cosine` (Chen & He, 2021, https://arxiv.org/abs/2011.10566).

    Args:
        name: name of the loss.
        reduction: Keras reduction of the per-example values.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: at call time if `y_true` or `y_pred` is not of rank 2 or their
            shapes differ.

    Example:
        >>> loss_fn = NegativeCosine()
        >>> p = keras.random.normal((8, 16), seed=1)
        >>> round(float(loss_fn(-p, p)), 4)
        1.0
    """

    def __init__(
        self,
        name: str = "negative_cosine",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _negative_cosine_per_example(y_pred, y_true)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"dtype": self._dtype_policy.name})
        return config


# ---------------------------------------------------------------------------------------
# Contrastive margin (Siamese pairs)
# ---------------------------------------------------------------------------------------


def _check_margin(margin, allow_zero: bool) -> float:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(
            f"Argument `margin` must be a number. Received: margin={margin!r} of type "
            f"{type(margin).__name__}"
        )
    if not (margin >= 0 if allow_zero else margin > 0) or margin == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Argument `margin` must be finite and {bound}. Received: margin={margin}")
    return float(margin)


def _contrastive_margin_per_pair(y, distance, margin):
    y = ops.convert_to_tensor(y)
    distance = ops.convert_to_tensor(distance)
    shape_y, shape_d = _static_shape(y), _static_shape(distance)
    if shape_d is not None and len(shape_d) != 1:
        raise ValueError(
            "Argument `distance` must have rank 1, one distance per pair: (batch_size,). "
            f"Received: distance.shape={shape_d}"
        )
    mismatch = shape_y is not None and (
        len(shape_y) != 1
        or (shape_d is not None and None not in (shape_y[0], shape_d[0]) and shape_y != shape_d)
    )
    if mismatch:
        raise ValueError(
            "Argument `y` must hold one 0/1 label per pair, of the shape of `distance` "
            f"(batch_size,). Received: y.shape={shape_y}, distance.shape={shape_d}"
        )
    y = ops.cast(y, "float32")
    distance = ops.cast(distance, "float32")
    return y * ops.square(distance) + (1.0 - y) * ops.square(ops.relu(margin - distance))


def contrastive_margin(
    y: tf.Tensor | np.ndarray, distance: tf.Tensor | np.ndarray, margin: float = 1.0
) -> tf.Tensor:
    """The contrastive loss of Siamese pairs: pull same-class pairs together, push others apart.

    From Hadsell, Chopra & LeCun, 2006, "Dimensionality Reduction by Learning an
    Invariant Mapping" (Eq. 4, with the 1/2 factors dropped): a similar pair (`y = 1`)
    costs its squared distance, a dissimilar pair (`y = 0`) costs
    `max(margin - distance, 0)^2`, so only dissimilar pairs closer than `margin`
    contribute. The result is `mean(y d^2 + (1 - y) max(margin - d, 0)^2)` over the
    pairs of this replica, computed in float32.

    Args:
        y: `(batch,)` labels, **1 for a same-class pair**, 0 otherwise.
        distance: `(batch,)` distances between the two embeddings of each pair
            (`keras_siamese.similarity.pair_distance`).
        margin: distance beyond which a dissimilar pair costs nothing (> 0). For
            L2-normalised embeddings distances lie in [0, 2].

    Returns:
        The scalar float32 mean over the pairs.

    Raises:
        ValueError: if `distance` is not of rank 1, `y` has another shape, or
            `margin <= 0`.
        TypeError: if `margin` is not a number.

    Example:
        >>> loss = contrastive_margin([1.0, 0.0], [0.5, 0.3], margin=1.0)
        >>> round(float(loss), 4)  # (0.5^2 + (1 - 0.3)^2) / 2
        0.37
    """
    margin = _check_margin(margin, allow_zero=False)
    return ops.mean(_contrastive_margin_per_pair(y, distance, margin))


@keras.saving.register_keras_serializable(package="keras_siamese")
class ContrastiveMargin(keras.losses.Loss):
    """The contrastive loss of Siamese pairs as a `keras.losses.Loss`.

    `y_true` holds the pair labels (1 = same class) and `y_pred` the distances of the
    pairs; the per-pair values are reduced by the Keras `reduction` (the mean by
    default), so `sample_weight` works as for any Keras loss. See `contrastive_margin`
    (Hadsell, Chopra & LeCun, 2006). Passed as `SiameseNetwork(loss=...)` it selects
    pair mode with this margin.

    Args:
        margin: distance beyond which a dissimilar pair costs nothing (> 0).
        name: name of the loss.
        reduction: Keras reduction of the per-pair values.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: if `margin <= 0`; at call time for the shape errors of
            `contrastive_margin`.
        TypeError: if `margin` is not a number.

    Example:
        >>> loss_fn = ContrastiveMargin(margin=1.0)
        >>> round(float(loss_fn([1.0, 0.0], [0.5, 0.3])), 4)
        0.37
    """

    def __init__(
        self,
        margin: float = 1.0,
        name: str = "contrastive_margin",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        margin = _check_margin(margin, allow_zero=False)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = margin

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _contrastive_margin_per_pair(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"margin": self.margin, "dtype": self._dtype_policy.name})
        return config


# ---------------------------------------------------------------------------------------
# Triplet loss with online mining (Siamese triplets)
# ---------------------------------------------------------------------------------------

MINING_MODES = ("semi-hard", "hard", "all")


def _check_mining(mining) -> str:
    if mining not in MINING_MODES:
        raise ValueError(
            f"Argument `mining` must be one of {MINING_MODES}. Received: mining={mining!r}"
        )
    return mining


def _check_embeddings_and_labels(embeddings, labels) -> None:
    shape_e, shape_l = _static_shape(embeddings), _static_shape(labels)
    if shape_e is not None and len(shape_e) != 2:
        raise ValueError(
            "Argument `embeddings` must have rank 2, shape (batch_size, dims). "
            f"Received: embeddings.shape={shape_e}"
        )
    if shape_l is not None and len(shape_l) != 1:
        raise ValueError(
            "Argument `labels` must hold one integer class per embedding, shape "
            "(batch_size,) (not one-hot: use `argmax(labels, axis=-1)`). "
            f"Received: labels.shape={shape_l}"
        )
    if shape_e is not None and shape_l is not None and None not in (shape_e[0], shape_l[0]):
        if shape_e[0] != shape_l[0]:
            raise ValueError(
                "Arguments `embeddings` and `labels` must have the same batch size. "
                f"Received: embeddings.shape={shape_e}, labels.shape={shape_l}"
            )


def _global_sum(value: tf.Tensor) -> tf.Tensor:
    """Sums a per-replica scalar over the replicas (itself with one replica)."""
    if not distribute.in_replica_context():
        return value
    return tf.reduce_sum(distribute.all_gather(tf.reshape(value, (1,))))


def _mine_triplets(embeddings, labels, margin, mining, distance):
    """Mines the triplets of this replica's anchors; see `triplet_loss` for the rules.

    Returns a dict of per-replica float32 scalars: `loss_sum` (sum of the mined losses
    of the local anchors), `normalizer` (what the mean divides by: valid anchors for
    "hard", valid anchor-positive pairs for "semi-hard", positive-loss triplets for
    "all"), `mined` (valid anchors / pairs / triplets), `active` (those with a positive
    loss), `positive_distance` and `negative_distance` (means over the positive and
    negative pairs of the local anchors).
    """
    embeddings = tf.cast(embeddings, tf.float32)
    local_size = tf.shape(embeddings)[0]
    if distribute.in_replica_context():
        all_labels = distribute.all_gather(labels)
        # Offset of this replica's rows: the sum of the batch sizes of the replicas before it.
        sizes = distribute.all_gather(tf.reshape(local_size, (1,)))
        before = tf.range(tf.shape(sizes)[0]) < distribute.replica_id()
        offset = tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))
        distances = similarity.pairwise_distances(
            embeddings, distribute.all_gather(embeddings), distance
        )
    else:
        all_labels, offset = labels, 0
        distances = similarity.pairwise_distances(embeddings, None, distance)
    global_size = tf.shape(all_labels)[0]
    anchor_columns = offset + tf.range(local_size)
    same = tf.equal(labels[:, None], all_labels[None, :])
    positive = same & tf.not_equal(anchor_columns[:, None], tf.range(global_size)[None, :])
    negative = tf.logical_not(same)
    has_negative = tf.reduce_any(negative, axis=1)
    zeros = tf.zeros_like(distances)
    # Larger than every distance + margin: masked negatives sort last and are never chosen.
    sentinel = tf.stop_gradient(tf.reduce_max(distances)) + margin + 1.0

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.float32))

    if mining == "hard":
        hardest_positive = tf.reduce_max(tf.where(positive, distances, zeros), axis=1)
        hardest_negative = tf.reduce_min(
            tf.where(negative, distances, sentinel + zeros), axis=1
        )
        per_anchor = tf.nn.relu(hardest_positive - hardest_negative + margin)
        valid = tf.reduce_any(positive, axis=1) & has_negative
        loss_sum = tf.reduce_sum(tf.where(valid, per_anchor, tf.zeros_like(per_anchor)))
        mined = normalizer = count(valid)
        active = count(valid & (per_anchor > 0))
    else:
        # Each row's negative distances in ascending order, the masked ones (= sentinel) last.
        sorted_negatives = tf.sort(tf.where(negative, distances, sentinel + zeros), axis=1)
        negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
        if mining == "semi-hard":
            # Negatives at distance <= d(a, p): the next one is the closest farther negative.
            not_farther = tf.searchsorted(sorted_negatives, distances, side="right")
            chosen = tf.where(not_farther < negatives, not_farther, negatives - 1)
            chosen_negative = tf.gather(sorted_negatives, tf.maximum(chosen, 0), batch_dims=1)
            per_pair = tf.nn.relu(distances - chosen_negative + margin)
            valid = positive & has_negative[:, None]
            loss_sum = tf.reduce_sum(tf.where(valid, per_pair, zeros))
            mined = normalizer = count(valid)
            active = count(valid & (per_pair > 0))
        else:
            # sum_k relu(t - d_k) over the negatives with d_k < t = d(a, p) + margin equals
            # (their count) * t - (their sum): a sort, a prefix sum and a search per row keep
            # the memory O(B^2) instead of the O(B^3) of a triplet tensor.
            thresholds = distances + margin
            closer = tf.searchsorted(sorted_negatives, thresholds, side="left")
            prefix = tf.concat(
                [tf.zeros_like(sorted_negatives[:, :1]), tf.cumsum(sorted_negatives, axis=1)],
                axis=1,
            )
            closer_sum = tf.gather(prefix, closer, batch_dims=1)
            per_pair = tf.cast(closer, tf.float32) * thresholds - closer_sum
            loss_sum = tf.reduce_sum(tf.where(positive, per_pair, zeros))
            active = normalizer = tf.reduce_sum(
                tf.where(positive, tf.cast(closer, tf.float32), zeros)
            )
            mined = tf.reduce_sum(
                tf.reduce_sum(tf.cast(positive, tf.float32), axis=1)
                * tf.cast(negatives[:, 0], tf.float32)
            )
    return {
        "loss_sum": loss_sum,
        "normalizer": normalizer,
        "mined": mined,
        "active": active,
        "positive_distance": tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(positive, distances, zeros)), count(positive)
        ),
        "negative_distance": tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(negative, distances, zeros)), count(negative)
        ),
    }


def triplet_loss(
    embeddings: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray,
    margin: float = 0.2,
    mining: str = "semi-hard",
    distance: str = "euclidean",
    return_details: bool = False,
) -> tf.Tensor | tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The triplet loss with triplets mined online inside the batch.

    A triplet (anchor `a`, positive `p` of its class, negative `n` of another class)
    costs `max(d(a, p) - d(a, n) + margin, 0)` (Schroff, Kalenichenko & Philbin 2015,
    "FaceNet", Eq. 2). `d` is the Euclidean distance between the embeddings as given
    (SiameseNetwork L2-normalises them, as FaceNet does, so `d` lies in [0, 2]), or the
    cosine distance with `distance="cosine"`. Triplets are mined from the batch:

    - `"hard"` (batch-hard; Hermans, Beyer & Leibe 2017, "In Defense of the Triplet
      Loss"): per anchor, its farthest positive and closest negative; the mean over
      the anchors that have both.
    - `"semi-hard"` (FaceNet, section 3.2): per anchor-positive pair, the closest
      negative farther from the anchor than the positive, or the farthest negative when
      none is; the mean over the anchor-positive pairs (whose anchor has a negative).
    - `"all"` (batch-all; Hermans et al.): every valid triplet; the mean over the
      triplets with a positive loss (0 when there is none).

    Anchors without a positive or without a negative in the batch contribute nothing;
    a batch without any valid triplet gives 0. Vectorised without loops over the
    batch and in O(B^2) memory: "semi-hard" and "all" sort each anchor's negative
    distances once and search them (`tf.searchsorted`), so even batch-all never builds
    the B x B x B triplet tensor. The maths runs in float32.

    Under `tf.distribute` (inside `strategy.run` with several replicas) triplets are
    mined over the **global** batch: embeddings and labels are gathered across
    replicas (`distribute.all_gather`, differentiable), this replica's rows are the
    anchors, and the loss returned is `local_sum / global_count * num_replicas`, where
    `global_count` is what the mean divides by, summed over the replicas. After
    `distribute.scale_for_replicas` (division by `num_replicas`) the sum over the
    replicas is exactly the single-device loss of the global batch, gradients
    included, however the anchors or pairs are spread over the replicas.

    Args:
        embeddings: `(batch, dims)` embeddings.
        labels: `(batch,)` integer class labels (repeated: P x K batches, see
            `keras_siamese.sampling.class_balanced_batches`).
        margin: the margin `alpha` (>= 0; FaceNet uses 0.2 on unit-norm embeddings).
        mining: `"semi-hard"`, `"hard"` or `"all"`.
        distance: `"euclidean"` or `"cosine"` (`keras_siamese.similarity`).
        return_details: if True, also return a dict of float32 scalars about this
            replica's anchors: `mined` (their valid anchors, anchor-positive pairs or
            triplets), `fraction_active` (the fraction of those with a positive loss),
            `positive_distance` and `negative_distance` (their mean distances to their
            positives and negatives). No collective op is spent on them.

    Returns:
        The scalar float32 loss, or `(loss, details)` with `return_details=True`.

    Raises:
        ValueError: if `embeddings` is not of rank 2, `labels` not of shape `(batch,)`,
            `margin < 0`, or for an unknown `mining` or `distance`.
        TypeError: if `margin` is not a number.

    Example:
        >>> embeddings = keras.ops.normalize(keras.random.normal((8, 4), seed=1))
        >>> labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
        >>> loss, details = triplet_loss(embeddings, labels, mining="hard", return_details=True)
        >>> float(details["mined"])  # every anchor has a positive and negatives
        8.0
    """
    margin = _check_margin(margin, allow_zero=True)
    _check_mining(mining)
    similarity.check_distance(distance)
    embeddings = tf.convert_to_tensor(embeddings)
    labels = tf.convert_to_tensor(labels)
    _check_embeddings_and_labels(embeddings, labels)
    terms = _mine_triplets(embeddings, labels, margin, mining, distance)
    replicas = distribute.num_replicas() if distribute.in_replica_context() else 1
    normalizer = _global_sum(terms["normalizer"])
    loss = terms["loss_sum"] / tf.maximum(normalizer, 1.0) * float(replicas)
    if not return_details:
        return loss
    return loss, {
        "mined": terms["mined"],
        "fraction_active": tf.math.divide_no_nan(terms["active"], terms["mined"]),
        "positive_distance": terms["positive_distance"],
        "negative_distance": terms["negative_distance"],
    }


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletLoss(keras.losses.Loss):
    """The triplet loss with online mining as a `keras.losses.Loss`.

    `y_true` holds the integer class labels `(batch,)` and `y_pred` the embeddings
    `(batch, dims)`; the value is already the batch's mean (see `triplet_loss`:
    FaceNet's semi-hard, batch-hard or batch-all mining, Schroff et al. 2015, Hermans
    et al. 2017). Passed as `SiameseNetwork(loss=...)` it selects triplet mode with
    this margin and mining.

    Args:
        margin: the triplet margin (>= 0).
        mining: `"semi-hard"`, `"hard"` or `"all"`.
        name: name of the loss.
        reduction: Keras reduction of the (already scalar) loss; kept for API
            compatibility, the default leaves the value unchanged.
        dtype: dtype of the inputs' conversion; the maths runs in float32 regardless.

    Raises:
        ValueError: for a negative `margin` or an unknown `mining`; at call time for the
            shape errors of `triplet_loss`.
        TypeError: if `margin` is not a number.

    Example:
        >>> loss_fn = TripletLoss(margin=0.2, mining="hard")
        >>> embeddings = keras.ops.normalize(keras.random.normal((8, 4), seed=1))
        >>> float(loss_fn(np.array([0, 0, 1, 1, 2, 2, 3, 3]), embeddings)) >= 0
        True
    """

    def __init__(
        self,
        margin: float = 0.2,
        mining: str = "semi-hard",
        name: str = "triplet_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        margin = _check_margin(margin, allow_zero=True)
        _check_mining(mining)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = margin
        self.mining = mining

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return triplet_loss(y_pred, y_true, margin=self.margin, mining=self.mining)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"margin": self.margin, "mining": self.mining, "dtype": self._dtype_policy.name}
        )
        return config
