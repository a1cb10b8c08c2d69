"""VICReg (Bardes et al. 2022): an expander and variance-invariance-covariance regularisation."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import augment, heads, validation
from keras_siamese.losses.vicreg import vicreg
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class VICReg(TwoViewModel):
    """VICReg: the two views' embeddings agree, and each keeps its variance and decorrelates.

    "VICReg ... explicitly avoids the collapse problem with two regularizations terms applied
    to both embeddings separately: (1) a term that maintains the variance of each embedding
    dimension above a threshold, (2) a term that decorrelates each pair of variables"
    (Bardes et al. 2022, https://arxiv.org/abs/2105.04906). The views go through the encoder
    and an expander ("The expander h_phi is composed of two fully-connected layers with batch
    normalization (BN) and ReLU, and a third linear layer. The sizes of all 3 layers were set
    to 8192", section 4.1; 2048 by default here); the loss is `keras_siamese.losses.vicreg`,
    whose variance and covariance under a `tf.distribute` strategy are those of the global
    batch. No negatives, no weight sharing constraint, no predictor.

    Metrics: `loss`; the unweighted terms `invariance` (mean squared difference),
    `variance` (hinge on the std, 0 once every dimension's std reaches 1) and `covariance`;
    `output_std`, the per-dimension std of the L2-normalised embedding times sqrt(d): about
    1 when healthy, towards 0 when collapsed (the metric
    `keras_siamese.callbacks.CollapseMonitor` watches).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; when None, BYOL's asymmetric pair
            (`keras_siamese.augment.byol_augmenters`, blur only above 64 px), as the paper
            does.
        projection_dims: sizes of the expander layers, the last one the embedding (paper:
            three of 8192).
        invariance_weight: lambda of the paper (25).
        variance_weight: mu of the paper (25).
        covariance_weight: nu of the paper (1).
        sync_batch_norm: global BatchNorm for the encoder and the expander: `"auto"`
            (default, synchronised when more than one replica is in sync), True or False.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: for bad `projection_dims` or a negative or non-finite weight, or the
            errors of `TwoViewModel`.
        TypeError: if a weight is not a number.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = VICReg(encoder, projection_dims=(2048, 2048, 2048))
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.3))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
        >>> features = model.predict(test_images)
    """

    metric_names = ("invariance", "variance", "covariance", "output_std")
    collapse_metric = "output_std"
    cross_replica_loss = "variance and covariance of the all_gathered global batch on every replica"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        projection_dims: tuple[int, ...] = (2048, 2048, 2048),
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        invariance_weight = validation.check_number("invariance_weight", invariance_weight, 0.0)
        variance_weight = validation.check_number("variance_weight", variance_weight, 0.0)
        covariance_weight = validation.check_number("covariance_weight", covariance_weight, 0.0)
        projection_dims = validation.check_dims("projection_dims", projection_dims)
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.projector = heads.ProjectionHead(
            projection_dims, sync_batch_norm=self.synchronized_batch_norm, name="expander"
        )
        self.projection_dims = self.projector.dims
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        """BYOL's asymmetric pair of views, which the paper uses."""
        return augment.byol_augmenters(image_shape[:2], channels=image_shape[-1])

    def loss_on_features(self, features_a, features_b, training):
        # One expander pass per view, as the authors' code does.
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)
        loss, terms = vicreg(
            z_a,
            z_b,
            invariance_weight=self.invariance_weight,
            variance_weight=self.variance_weight,
            covariance_weight=self.covariance_weight,
            return_terms=True,
        )
        return loss, {**terms, "output_std": normalized_std(tf.cast(z_a, tf.float32))}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dims": self.projection_dims,
                "invariance_weight": self.invariance_weight,
                "variance_weight": self.variance_weight,
                "covariance_weight": self.covariance_weight,
            }
        )
        return config
