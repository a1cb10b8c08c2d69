"""SimCLR (Chen et al. 2020): a projection head and NT-Xent over the global batch."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import augment, heads, losses, validation
from keras_siamese.models.two_view_model import TwoViewModel, contrastive_metrics


@keras.saving.register_keras_serializable(package="keras_siamese")
class SimCLR(TwoViewModel):
    """SimCLR: contrast each view with its pair against every other view of the global batch.

    "A stochastic data augmentation module ... a neural network base encoder f(·) ...
    a small neural network projection head g(·) ... a contrastive loss function"
    (Chen et al. 2020, section 2.1). The projection head is an MLP with BatchNorm +
    ReLU hidden layers; the loss is NT-Xent (`keras_siamese.losses.nt_xent`), whose
    negatives under a `tf.distribute` strategy come from all replicas.

    Metrics: `loss`, `contrastive_accuracy` (how often the positive is ranked first
    among the 2N-1 candidates) and `representation_std` (per-dimension std of the
    L2-normalised representation times sqrt(d): about 1 when spread out, near 0 when
    collapsed).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; `simclr_augmenter` of the encoder's input size
            when None (colour strength 0.5 and no blur for images up to 64 px, as the
            paper does for CIFAR-10; strength 1.0 with blur for larger images).
        projection_dims: sizes of the projection MLP, the last being the output.
        temperature: NT-Xent temperature.
        sync_batch_norm: "global BN" (section 2.2 of the paper): the BatchNorm layers of the
            projection head and of the encoder (converted in place by
            `distribute.convert_to_sync_batch_norm`) normalise with statistics over all
            replicas, so a multi-device step equals the one-device step on the global batch.
            `"auto"` (default) does so whenever the model is built under a strategy with
            more than one replica in sync.
        **kwargs: `keras.Model` arguments.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = SimCLR(encoder, projection_dims=(512, 128), temperature=0.5)
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.3))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
        >>> features = model.predict(test_images)
    """

    metric_names = ("contrastive_accuracy", "representation_std")
    collapse_metric = "representation_std"
    cross_replica_loss = "NT-Xent negatives all_gathered from every replica (global batch)"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | None = None,
        projection_dims: tuple[int, ...] = (2048, 128),
        temperature: float = 0.5,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        temperature = validation.check_temperature(temperature)
        projection_dims = validation.check_dims("projection_dims", projection_dims)
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.temperature = temperature
        self.projector = heads.ProjectionHead(
            projection_dims, sync_batch_norm=self.synchronized_batch_norm, name="projector"
        )
        self.projection_dims = self.projector.dims
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        large = min(image_shape[:2]) > 64
        return augment.simclr_augmenter(
            image_shape[:2], channels=image_shape[-1], strength=1.0 if large else 0.5, blur=large
        )

    def negatives_per_anchor(self, global_batch_size: int) -> int:
        """Each of the 2N views is contrasted with the 2N - 2 views of the other images."""
        return 2 * global_batch_size - 2

    def loss_on_features(self, features_a, features_b, training):
        # One head pass on all 2N features, as the reference code does: the head's BatchNorm
        # normalises both views together and its moving statistics move once per step.
        z_a, z_b = tf.split(
            self.projector(tf.concat([features_a, features_b], axis=0), training=training), 2
        )
        loss, logits, labels = losses.nt_xent(
            z_a, z_b, temperature=self.temperature, return_logits=True
        )
        return loss, contrastive_metrics(logits, labels, features_a)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dims": self.projection_dims,
                "temperature": self.temperature,
            }
        )
        return config
