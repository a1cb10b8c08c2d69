"""NNCLR (Dwibedi et al. 2021): contrast each view's nearest neighbour with the other view."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import distribute, heads, validation
from keras_siamese.losses.info_nce import info_nce
from keras_siamese.models.support_set import SupportSet
from keras_siamese.models.two_view_model import TwoViewModel, contrastive_metrics


@keras.saving.register_keras_serializable(package="keras_siamese")
class NNCLR(TwoViewModel):
    """NNCLR: the positive of a view is its nearest neighbour in a queue of past projections.

    "We use nearest-neighbors in the learned representation space as the positive in
    contrastive losses" (Dwibedi et al. 2021, "With a Little Help from My Friends:
    Nearest-Neighbor Contrastive Learning of Visual Representations",
    https://arxiv.org/abs/2104.14548). The two views' projections z_a, z_b come from a
    projection MLP, their predictions p_a, p_b from a prediction MLP on them. For each
    image i, NN(z_a_i) is the L2-normalised projection of highest cosine similarity in
    the support set Q (`SupportSet`, read before this step's update, without gradient), and
    the loss of eq. 2 with the prediction of section 3.2 is
    `-log(exp(NN(z_a_i).p_b_i / T) / sum_k exp(NN(z_a_i).p_b_k / T))` over the images k of
    the global batch (`info_nce(NN(z_a), p_b)`: the predictions are gathered from every
    replica, so under `tf.distribute` the negatives are those of the global batch).
    Section 3.2, "Symmetric loss", adds the term whose sum runs over the neighbours,
    `-log(exp(NN(z_a_i).p_b_i / T) / sum_k exp(NN(z_a_k).p_b_i / T))`
    (`info_nce(p_b, NN(z_a))`); both terms again with the views swapped make four, and
    the loss is their mean (as VISSL's and keras-io's NNCLR compute it). After the loss,
    in training only, the projections z_a of the global batch are enqueued (one view, as
    the authors do). The first step, on an empty support set, uses z_a itself as
    NN(z_a): SimCLR with a predictor.

    The projection head is the paper's "3 fully connected layers of sizes [2048, 2048, d]
    ... All fully-connected layers are followed by batch-normalization" with ReLU after
    the hidden ones (`heads.ProjectionHead(..., output_batch_norm=True)`); the prediction
    head "2 fully-connected layers of sizes [4096, d]", BatchNorm and ReLU on the hidden
    layer only; d = 256. Both views pass through the heads together, so their BatchNorm
    sees both (as in `SimCLR`). The defaults are the paper's ImageNet values (support set
    98,304 for batches of 4096, T = 0.1); `keras_siamese.recipes.get("nnclr")` holds
    values for small images.

    Metrics: `loss`, `contrastive_accuracy` (how often NN(z_a_i) gives p_b_i the largest
    logit among the global batch's predictions) and `representation_std` (per-dimension
    std of the L2-normalised features times sqrt(d): about 1 spread out, near 0 collapsed).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; the two-view methods' default
            (`augment.simclr_augmenter`) when None, or a pair of layers, e.g. BYOL's
            asymmetric views (`BYOL.default_augmenter(image_shape)`).
        projection_dims: sizes of the projection MLP's layers, the last being d.
        prediction_dims: sizes of the prediction MLP's layers, the last equal to d.
        temperature: the softmax temperature T.
        support_set_size: slots of the support set (at least the global batch size).
        sync_batch_norm: global BatchNorm: `"auto"`, True or False (see `SimCLR`).
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: for bad sizes or temperature, or prediction and projection outputs of
            different sizes; at `fit`, for a global batch larger than `support_set_size`.
        TypeError: for sizes that are not integers.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = NNCLR(encoder, support_set_size=16384)
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.3))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
    """

    metric_names = ("contrastive_accuracy", "representation_std")
    collapse_metric = "representation_std"
    cross_replica_loss = (
        "InfoNCE of support-set neighbours against the predictions all_gathered from every "
        "replica (global batch); the projections of all replicas enqueued (all_gather)"
    )

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        projection_dims: tuple[int, ...] = (2048, 2048, 256),
        prediction_dims: tuple[int, ...] = (4096, 256),
        temperature: float = 0.1,
        support_set_size: int = 98304,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        projection_dims = validation.check_dims("projection_dims", projection_dims)
        prediction_dims = validation.check_dims("prediction_dims", prediction_dims)
        if prediction_dims[-1] != projection_dims[-1]:
            raise ValueError(
                "Argument `prediction_dims` must end with the projection size d (the last of "
                "`projection_dims`): the loss compares predictions with projections. "
                f"Received: prediction_dims={prediction_dims}, "
                f"projection_dims={projection_dims}"
            )
        temperature = validation.check_temperature(temperature)
        support_set_size = validation.check_integer("support_set_size", support_set_size)
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.projection_dims = projection_dims
        self.prediction_dims = prediction_dims
        self.temperature = temperature
        self.support_set_size = support_set_size
        synchronized = self.synchronized_batch_norm
        self.projector = heads.ProjectionHead(
            projection_dims, output_batch_norm=True, sync_batch_norm=synchronized, name="projector"
        )
        self.predictor = heads.ProjectionHead(
            prediction_dims, sync_batch_norm=synchronized, name="predictor"
        )
        self.support_set = SupportSet(support_set_size, name="support_set")
        self.support_set.build((None, projection_dims[-1]))
        self.build((None, *self.image_shape))

    def negatives_per_anchor(self, global_batch_size: int) -> int:
        """Each neighbour is contrasted with the predictions of the other images."""
        return global_batch_size - 1

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        # Training enqueues each global batch (evaluate does not): refuse one larger than the
        # support set before anything is traced; the traced step checks batches known only
        # then (a dataset without drop_remainder).
        self.support_set.check_fits(distribute.global_batch_size(x, batch_size))
        return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def loss_on_features(self, features_a, features_b, training):
        z = self.projector(tf.concat([features_a, features_b], axis=0), training=training)
        p_a, p_b = tf.split(self.predictor(z, training=training), 2)
        z_a, z_b = tf.split(z, 2)
        neighbours_a = self.support_set.nearest_neighbours(z_a)
        neighbours_b = self.support_set.nearest_neighbours(z_b)
        loss_a, logits, labels = info_nce(
            neighbours_a, p_b, temperature=self.temperature, return_logits=True
        )
        loss = 0.25 * (
            loss_a
            + info_nce(p_b, neighbours_a, temperature=self.temperature)
            + info_nce(neighbours_b, p_a, temperature=self.temperature)
            + info_nce(p_a, neighbours_b, temperature=self.temperature)
        )
        if training:
            self.support_set.enqueue(z_a)
        return loss, contrastive_metrics(logits, labels, features_a)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dims": self.projection_dims,
                "prediction_dims": self.prediction_dims,
                "temperature": self.temperature,
                "support_set_size": self.support_set_size,
            }
        )
        return config
