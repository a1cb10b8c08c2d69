"""The triplet loss with online mining of Siamese triplets: `triplet_loss`, `TripletLoss`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_siamese import distribute, similarity, validation

if TYPE_CHECKING:
    import numpy as np

MINING_MODES = ("semi-hard", "hard", "all")


def _check_mining(mining) -> str:
    if mining not in MINING_MODES:
        raise ValueError(
            f"Argument `mining` must be one of {MINING_MODES}. Received: mining={mining!r}"
        )
    return mining


def _global_sum(value: tf.Tensor) -> tf.Tensor:
    """Sums a per-replica scalar over the replicas (itself with one replica)."""
    if not distribute.in_replica_context():
        return value
    return tf.reduce_sum(distribute.all_gather(tf.reshape(value, (1,))))


def _count(mask: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


def _distances_and_masks(embeddings, labels, distance):
    """`(distances, positive, negative)` of this replica's anchors against the global batch.

    `distances` is `(local, global)`; `positive` marks the other examples of an anchor's
    class (not the anchor itself), `negative` those of another class.
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
    return distances, positive, tf.logical_not(same)


def _mine_hard(distances, positive, negative, margin, sentinel):
    """Batch-hard: each anchor's farthest positive and closest negative."""
    zeros = tf.zeros_like(distances)
    hardest_positive = tf.reduce_max(tf.where(positive, distances, zeros), axis=1)
    hardest_negative = tf.reduce_min(tf.where(negative, distances, sentinel + zeros), axis=1)
    per_anchor = tf.nn.relu(hardest_positive - hardest_negative + margin)
    valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
    loss_sum = tf.reduce_sum(tf.where(valid, per_anchor, tf.zeros_like(per_anchor)))
    mined = normalizer = _count(valid)
    active = _count(valid & (per_anchor > 0))
    return loss_sum, normalizer, mined, active


def _mine_semi_hard(distances, positive, negative, margin, sorted_negatives, negatives):
    """Per anchor-positive pair, the closest negative farther than the positive (else the
    farthest negative)."""
    zeros = tf.zeros_like(distances)
    # Negatives at distance <= d(a, p): the next one is the closest farther negative.
    not_farther = tf.searchsorted(sorted_negatives, distances, side="right")
    chosen = tf.where(not_farther < negatives, not_farther, negatives - 1)
    chosen_negative = tf.gather(sorted_negatives, tf.maximum(chosen, 0), batch_dims=1)
    per_pair = tf.nn.relu(distances - chosen_negative + margin)
    valid = positive & tf.reduce_any(negative, axis=1)[:, None]
    loss_sum = tf.reduce_sum(tf.where(valid, per_pair, zeros))
    mined = normalizer = _count(valid)
    active = _count(valid & (per_pair > 0))
    return loss_sum, normalizer, mined, active


def _mine_all(distances, positive, margin, sorted_negatives, negatives):
    """Every triplet, summed without building the `(B, B, B)` triplet tensor."""
    zeros = tf.zeros_like(distances)
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
    active = normalizer = tf.reduce_sum(tf.where(positive, tf.cast(closer, tf.float32), zeros))
    mined = tf.reduce_sum(
        tf.reduce_sum(tf.cast(positive, tf.float32), axis=1) * tf.cast(negatives[:, 0], tf.float32)
    )
    return loss_sum, normalizer, mined, active


def _mine_triplets(embeddings, labels, margin, mining, distance):
    """Mines the triplets of this replica's anchors; see `triplet_loss` for the rules.

    Returns a dict of per-replica float32 scalars: `loss_sum` (sum of the mined losses
    of the local anchors), `normalizer` (what the mean divides by: valid anchors for
    "hard", valid anchor-positive pairs for "semi-hard", positive-loss triplets for
    "all"), `mined` (valid anchors / pairs / triplets), `active` (those with a positive
    loss), `positive_distance` and `negative_distance` (means over the positive and
    negative pairs of the local anchors).
    """
    distances, positive, negative = _distances_and_masks(embeddings, labels, distance)
    zeros = tf.zeros_like(distances)
    # Larger than every distance + margin: masked negatives sort last and are never chosen.
    sentinel = tf.stop_gradient(tf.reduce_max(distances)) + margin + 1.0
    if mining == "hard":
        loss_sum, normalizer, mined, active = _mine_hard(
            distances, positive, negative, margin, sentinel
        )
    else:
        # Each row's negative distances in ascending order, the masked ones (= sentinel) last.
        sorted_negatives = tf.sort(tf.where(negative, distances, sentinel + zeros), axis=1)
        negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
        if mining == "semi-hard":
            loss_sum, normalizer, mined, active = _mine_semi_hard(
                distances, positive, negative, margin, sorted_negatives, negatives
            )
        else:
            loss_sum, normalizer, mined, active = _mine_all(
                distances, positive, margin, sorted_negatives, negatives
            )
    return {
        "loss_sum": loss_sum,
        "normalizer": normalizer,
        "mined": mined,
        "active": active,
        "positive_distance": tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(positive, distances, zeros)), _count(positive)
        ),
        "negative_distance": tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(negative, distances, zeros)), _count(negative)
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
    margin = validation.check_number("margin", margin, 0.0)
    _check_mining(mining)
    similarity.check_distance(distance)
    embeddings = tf.convert_to_tensor(embeddings)
    labels = tf.convert_to_tensor(labels)
    validation.check_labels_per_row(embeddings, labels)
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
        margin = validation.check_number("margin", margin, 0.0)
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
