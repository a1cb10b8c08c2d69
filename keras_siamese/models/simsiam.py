"""SimSiam (Chen & He 2021): a projector, a predictor and a stop-gradient, no negatives."""

from __future__ import annotations

import keras

from keras_siamese import augment, heads, losses, validation
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class SimSiam(TwoViewModel):
    """SimSiam: predict one view's projection from the other's, with a stop-gradient.

    "Our architecture takes as input two randomly augmented views x1 and x2 from an
    image x. The two views are processed by an encoder network f consisting of a
    backbone and a projection MLP head. ... A prediction MLP head, denoted as h,
    transforms the output of one view and matches it to the other view" (Chen & He
    2021, https://arxiv.org/abs/2011.10566, section 3). The loss is symmetric,
    `0.5 * D(p_a, stopgrad(z_b)) + 0.5 * D(p_b, stopgrad(z_a))` with `D` the negative
    cosine (`keras_siamese.losses.negative_cosine`); without the stop-gradient the
    outputs collapse to a constant. The projector has BatchNorm on every layer
    including its output, whose BatchNorm learns no scale or offset (the reference code's
    `BatchNorm1d(affine=False)`), and no ReLU on the output; the predictor is a bottleneck
    (`heads.PredictionHead`).

    Metrics: `loss` (-1 is the minimum) and `output_std`, the per-dimension std of the
    L2-normalised projector output times sqrt(d): about 1 when healthy, towards 0 when
    collapsed (watch it with `keras_siamese.callbacks.CollapseMonitor`).

    Train it with the paper's recipe, `keras_siamese.optimizers.simsiam_optimizer`
    (SGD, 0.03 * batch / 256 with cosine decay, a fixed rate for the predictor).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation; `simsiam_augmenter` of the encoder's input size
            when None (crops of 20-100%, colour strength 0.5).
        projection_dim: width of every projector layer and of the predictor's output
            (paper: 2048).
        projection_layers: projector layers (paper: 3 on ImageNet, 2 on CIFAR).
        predictor_hidden_dim: the predictor's bottleneck width (paper: 512).
        sync_batch_norm: global BatchNorm for the encoder and the heads: `"auto"` (default,
            synchronised when more than one replica is in sync), True or False.
        **kwargs: `keras.Model` arguments.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = SimSiam(encoder, projection_dim=2048, projection_layers=2)
        >>> model.compile(optimizer=keras_siamese.optimizers.simsiam_optimizer(512, 800 * 97))
        >>> model.fit(images_dataset.batch(512, drop_remainder=True), epochs=800)
        >>> features = model.predict(test_images)
    """

    metric_names = ("output_std",)
    collapse_metric = "output_std"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | None = None,
        projection_dim: int = 2048,
        projection_layers: int = 3,
        predictor_hidden_dim: int = 512,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        projection_dim = validation.check_integer("projection_dim", projection_dim)
        projection_layers = validation.check_integer("projection_layers", projection_layers)
        predictor_hidden_dim = validation.check_integer(
            "predictor_hidden_dim", predictor_hidden_dim
        )
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.projection_dim = projection_dim
        self.projection_layers = projection_layers
        self.predictor_hidden_dim = predictor_hidden_dim
        self.projector = heads.ProjectionHead(
            (projection_dim,) * projection_layers,
            output_batch_norm=True,
            output_affine=False,
            sync_batch_norm=self.synchronized_batch_norm,
            name="projector",
        )
        self.predictor = heads.PredictionHead(
            projection_dim,
            predictor_hidden_dim,
            self.synchronized_batch_norm,
            name="predictor",
        )
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        return augment.simsiam_augmenter(image_shape[:2], channels=image_shape[-1])

    def loss_on_features(self, features_a, features_b, training):
        z_a = self.projector(features_a, training=training)
        z_b = self.projector(features_b, training=training)
        p_a = self.predictor(z_a, training=training)
        p_b = self.predictor(z_b, training=training)
        loss = 0.5 * losses.negative_cosine(p_a, z_b) + 0.5 * losses.negative_cosine(p_b, z_a)
        return loss, {"output_std": normalized_std(z_a)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dim": self.projection_dim,
                "projection_layers": self.projection_layers,
                "predictor_hidden_dim": self.predictor_hidden_dim,
            }
        )
        return config
