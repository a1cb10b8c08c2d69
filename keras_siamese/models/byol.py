"""BYOL (Grill et al. 2020): an online network predicts a moving-average target's projection."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import augment, heads, losses, validation
from keras_siamese.models.momentum import MomentumModel, clone_layer
from keras_siamese.models.two_view_model import normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class BYOL(MomentumModel):
    """BYOL: the online network predicts the target network's projection of the other view.

    "BYOL uses two neural networks to learn: the online and target networks. The online
    network is defined by a set of weights theta and is comprised of three stages: an
    encoder f_theta, a projector g_theta and a predictor q_theta ... The target network has
    the same architecture as the online network, but uses a different set of weights xi
    ... an exponential moving average of the online parameters theta" (Grill et al. 2020,
    https://arxiv.org/abs/2006.07733, section 3.1). The loss is the symmetric
    `(2 - 2 cos(p_a, z'_b)) + (2 - 2 cos(p_b, z'_a))` between the online predictions `p`
    and the target projections `z'` of the other view (each term a batch mean of
    `2 + 2 * keras_siamese.losses.negative_cosine`; the sum is in [0, 8]). No gradient
    reaches the target: its weights follow `target <- m * target + (1 - m) * online` after
    every optimizer step, with `m` raised from `momentum` to `final_momentum` by a cosine
    schedule over the first `fit` (`keras_siamese.models.momentum`).

    Heads (section 3.3): "the projection MLP ... a linear layer with output size 4096
    followed by batch normalization, rectified linear units (ReLU), and a final linear
    layer with output dimension 256"; "the predictor q_theta uses the same architecture
    as g_theta". The encoder runs once on both views; each head runs on each view
    separately, as in the paper's code. The target network is `target_encoder` and
    `target_projector`.

    Metrics: `loss` and `output_std` (per-dimension std of the L2-normalised online
    projection times sqrt(d): about 1 when healthy, near 0 when collapsed).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; BYOL's asymmetric pair for the model's image size when
            None (`keras_siamese.augment.byol_augmenters`: blur 1.0 / 0.1, solarisation
            0 / 0.2; no blur up to 64 px).
        projection_dim: output size of the projector and the predictor (paper: 256).
        hidden_dim: hidden width of the projector and the predictor (paper: 4096).
        momentum: the base momentum of the target (paper: 0.996 for batch 4096).
        final_momentum: the momentum at the end of training (paper: 1).
        momentum_steps: the cosine schedule's length in steps; None for the first `fit`'s.
        sync_batch_norm: global BatchNorm: `"auto"`, True or False.
        **kwargs: `keras.Model` arguments.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = BYOL(encoder, projection_dim=256, hidden_dim=4096, momentum=0.99)
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.2 * 512 / 256))
        >>> model.fit(images_dataset.batch(512, drop_remainder=True), epochs=300)
        >>> features = model.predict(test_images)
    """

    metric_names = ("output_std",)
    collapse_metric = "output_std"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        projection_dim: int = 256,
        hidden_dim: int = 4096,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        momentum_steps: int | None = None,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        projection_dim = validation.check_integer("projection_dim", projection_dim)
        hidden_dim = validation.check_integer("hidden_dim", hidden_dim)
        super().__init__(
            encoder,
            augmenter,
            momentum=momentum,
            final_momentum=final_momentum,
            momentum_steps=momentum_steps,
            sync_batch_norm=sync_batch_norm,
            **kwargs,
        )
        self.projection_dim = projection_dim
        self.hidden_dim = hidden_dim
        self.projector = heads.ProjectionHead(
            (hidden_dim, projection_dim),
            sync_batch_norm=self.synchronized_batch_norm,
            name="projector",
        )
        self.predictor = heads.PredictionHead(
            projection_dim, hidden_dim, self.synchronized_batch_norm, name="predictor"
        )
        self.target_projector = clone_layer(self.projector, "target_projector")
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        """BYOL's asymmetric pair (`augment.byol_augmenters`; blur only above 64 px)."""
        return augment.byol_augmenters(image_shape[:2], channels=image_shape[-1])

    def target_pairs(self):
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def build_heads(self):
        features = tf.zeros((2, self.feature_dim))
        self.predictor(self.projector(features))
        self.target_projector(features)

    def loss_on_views(self, views, training):
        view_a, view_b = views[:2]
        features_a, features_b = self.encode_views([view_a, view_b], training=training)
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)
        p_a = self.predictor(z_a, training=training)
        p_b = self.predictor(z_b, training=training)
        target_a, target_b = tf.split(self.encode_targets([view_a, view_b], training), 2)
        z_target_a = self.target_projector(target_a, training=training)
        z_target_b = self.target_projector(target_b, training=training)
        loss = (2.0 + 2.0 * losses.negative_cosine(p_a, z_target_b)) + (
            2.0 + 2.0 * losses.negative_cosine(p_b, z_target_a)
        )
        return loss, {"output_std": normalized_std(z_a)}

    def get_config(self):
        config = super().get_config()
        config.update({"projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim})
        return config
