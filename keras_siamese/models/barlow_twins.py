"""Barlow Twins (Zbontar et al. 2021): a projector and the cross-correlation loss, no negatives."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import augment, heads, validation
from keras_siamese.losses.barlow_twins import barlow_twins
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class BarlowTwins(TwoViewModel):
    """Barlow Twins: make the cross-correlation of the two views' projections the identity.

    "Barlow Twins ... measures the cross-correlation matrix between the outputs of two
    identical networks fed with distorted versions of a sample, and tries to make it as close
    to the identity matrix as possible" (Zbontar et al. 2021,
    https://arxiv.org/abs/2103.03230). The views go through the encoder and a projector
    ("The projector network has three linear layers, each with 8192 output units. The first
    two layers of the projector are followed by a batch normalization layer and rectified
    linear units", section 4; 2048 by default here, small enough for one GPU or a CPU); the
    loss is `keras_siamese.losses.barlow_twins`, whose statistics under a `tf.distribute`
    strategy are those of the global batch. The method needs no negatives, predictor, moving
    average or large batch.

    Metrics: `loss`; `invariance` (`sum_i (1 - C_ii)^2`, towards 0); `redundancy`
    (`sum_{i != j} C_ij^2`); `output_std`, the per-dimension std of the L2-normalised
    projection times sqrt(d): about 1 when healthy, towards 0 when collapsed (the metric
    `keras_siamese.callbacks.CollapseMonitor` watches).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; when None, BYOL's asymmetric pair
            (`keras_siamese.augment.byol_augmenters`, blur only above 64 px), as the paper
            does.
        projection_dims: sizes of the projector layers, the last one the output (paper:
            three of 8192).
        lambda_: weight of the redundancy-reduction term (paper: 0.0051).
        sync_batch_norm: global BatchNorm for the encoder and the projector: `"auto"`
            (default, synchronised when more than one replica is in sync), True or False.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: for bad `projection_dims` or `lambda_` (negative or not finite), or the
            errors of `TwoViewModel`.
        TypeError: if `lambda_` is not a number.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = BarlowTwins(encoder, projection_dims=(2048, 2048, 2048))
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.2))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
        >>> features = model.predict(test_images)
    """

    metric_names = ("invariance", "redundancy", "output_std")
    collapse_metric = "output_std"
    cross_replica_loss = "cross-correlation of the all_gathered global batch on every replica"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        projection_dims: tuple[int, ...] = (2048, 2048, 2048),
        lambda_: float = 0.0051,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        lambda_ = validation.check_number("lambda_", lambda_, 0.0)
        projection_dims = validation.check_dims("projection_dims", projection_dims)
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.lambda_ = lambda_
        self.projector = heads.ProjectionHead(
            projection_dims, sync_batch_norm=self.synchronized_batch_norm, name="projector"
        )
        self.projection_dims = self.projector.dims
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        """BYOL's asymmetric pair of views, which the paper uses."""
        return augment.byol_augmenters(image_shape[:2], channels=image_shape[-1])

    def loss_on_features(self, features_a, features_b, training):
        # One projector pass per view, as the authors' code does: the projector's BatchNorm
        # standardises each view's batch on its own.
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)
        loss, terms = barlow_twins(z_a, z_b, lambda_=self.lambda_, return_terms=True)
        return loss, {**terms, "output_std": normalized_std(tf.cast(z_a, tf.float32))}

    def get_config(self):
        config = super().get_config()
        config.update({"projection_dims": self.projection_dims, "lambda_": self.lambda_})
        return config
