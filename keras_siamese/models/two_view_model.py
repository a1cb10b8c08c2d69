"""`TwoViewModel`: the multi-view base of the self-supervised methods.

A method (SimCLR, SimSiam, BYOL, MoCo, DINO, Barlow Twins, VICReg, SwAV) subclasses
`TwoViewModel`, names its metrics in `metric_names`, creates its heads in `__init__` (ending
with `self.build((None, *self.image_shape))`: the base builds the heads by one pass of
`loss_on_features` on zero features), implements
`loss_on_features(features_a, features_b, training) -> (loss, {metric_name: value})`, and
adds its own arguments to `get_config`. Nothing else: views, the encoder pass, the train and
test steps, metric tracking, `call`, export and saving come from here and from
`RepresentationModel`; the input checks from `two_view_inputs.py` beside it. A method with a
target network (BYOL, MoCo, DINO) subclasses `MomentumModel` (momentum.py: the moving-average
update in `after_optimizer_step`) and overrides `loss_on_views` to run its target on the
views; a multi-crop method (DINO, SwAV) sets `accepts_multi_crop`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import augment, validation
from keras_siamese.models import two_view_inputs as inputs
from keras_siamese.models.representation_model import RepresentationModel


def normalized_std(outputs):
    """Per-dimension std of the L2-normalised outputs, times sqrt(d), averaged over dimensions.

    The collapse indicator of SimSiam (Chen & He 2021, section 4.1): for outputs spread like
    an isotropic Gaussian it is about 1; for collapsed (constant) outputs it is 0.

    Args:
        outputs: `(batch, d)` features.

    Returns:
        A float32 scalar.

    Example:
        >>> float(normalized_std(tf.ones((8, 4))))
        0.0
    """
    outputs = tf.math.l2_normalize(tf.cast(outputs, tf.float32), axis=1)
    dims = tf.cast(tf.shape(outputs)[1], tf.float32)
    return tf.reduce_mean(tf.math.reduce_std(outputs, axis=0)) * tf.sqrt(dims)


def contrastive_metrics(logits, labels, features) -> dict:
    """The metrics of the contrastive methods (SimCLR, MoCo, NNCLR).

    Args:
        logits: `(n, candidates)` similarities of each anchor to its candidates.
        labels: `(n,)` the column of each anchor's positive.
        features: `(n, d)` encoder features of one view.

    Returns:
        `{"contrastive_accuracy": how often the positive has the largest logit,
        "representation_std": normalized_std(features)}`.

    Example:
        >>> metrics = contrastive_metrics(tf.eye(4), tf.range(4), tf.eye(4))
        >>> float(metrics["contrastive_accuracy"])
        1.0
    """
    predictions = tf.argmax(logits, axis=1, output_type=labels.dtype)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))
    return {"contrastive_accuracy": accuracy, "representation_std": normalized_std(features)}


def _augment(layer, images):
    """`layer(images, training=True)`, with AutoGraph when traced.

    Keras 3 traces its train step without AutoGraph, and Keras 3 layers do not convert their
    `call` (Keras 2 did). keras-cv layers branch on tensors in Python (`if tensor:` in
    `Equalization`, used by `RandAugment`, and in `RandomApply`), which then fails with
    "Using a symbolic tf.Tensor as a Python bool". A nested `tf.function` (AutoGraph on)
    converts them; our own layers need no conversion and trace the same either way.
    """
    if tf.executing_eagerly():
        return layer(images, training=True)
    return tf.function(lambda batch: layer(batch, training=True))(images)


class TwoViewModel(RepresentationModel):
    """Base class of models trained on augmented views of each image.

    The step makes the views inside the graph (so augmentation runs on the accelerator and
    differs per replica), runs the encoder once on the concatenated views of each size (its
    BatchNorm sees all of them, as in SimCLR's code) and hands the features to
    `loss_on_features`. `call(images)` returns the encoder's representation of images in
    [0, 255].

    Args:
        encoder: a `keras.Model` from float images in [0, 1] of a fixed shape to features
            (rank 2; rank-4 outputs are globally average-pooled).
        augmenter: how the views are made; the method's default augmentation when None.
            Either one layer applied to every view (random per image, so the views differ),
            or a pair `(augmenter_a, augmenter_b)` of layers for asymmetric views (BYOL).
            Each maps a batch of uint8/float [0, 255] images to float32 views in [0, 1]
            with the encoder's channels; views of another size are resized to the
            encoder's input size. Any keras-cv or Keras layer works if its output is in
            [0, 1]: the first batch of `fit` checks it.
        sync_batch_norm: global BatchNorm (see `RepresentationModel`): `"auto"`, True or
            False.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: for an `augmenter` that is not a layer or a pair of layers.
        ValueError: for an encoder without a fixed input shape.
    """

    min_batch_size = 2
    accepts_multi_crop = False

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)

    def _check_augmenter(self, augmenter, image_shape):
        if augmenter is None:
            return self.default_augmenter(image_shape)
        if isinstance(augmenter, augment.MultiCrop):
            if not self.accepts_multi_crop:
                raise TypeError(
                    f"{type(self).__name__} trains on two views; multi-crop views are for "
                    "methods that use them (DINO, SwAV). Pass one augmenter or a pair. "
                    f"Received: augmenter={augmenter!r}"
                )
            return augmenter
        if isinstance(augmenter, keras.layers.Layer):
            return augmenter
        if (
            isinstance(augmenter, (tuple, list))
            and len(augmenter) == 2
            and all(isinstance(layer, keras.layers.Layer) for layer in augmenter)
        ):
            return tuple(augmenter)
        raise TypeError(
            "Argument `augmenter` must be a keras.layers.Layer (one pipeline for both views), "
            "a pair of layers (view a, view b) or None for the method's default. "
            f"Received: augmenter={augmenter!r}"
        )

    @classmethod
    def default_augmenter(cls, image_shape: tuple[int, int, int]) -> keras.layers.Layer:
        """The method's default augmentation for images of `image_shape`."""
        return augment.simclr_augmenter(image_shape[:2], channels=image_shape[-1])

    # ----------------------------------------------------------------- the method's part

    def loss_on_features(self, features_a, features_b, training: bool):
        """Returns `(loss, {metric_name: value})` for the encoder features of the views."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss_on_features().")

    # ----------------------------------------------------------------- views

    @property
    def num_global_views(self) -> int:
        """How many of the views are global (full-size): the first ones of `make_views`."""
        if isinstance(self.augmenter, augment.MultiCrop):
            return self.augmenter.global_views
        return 2

    def make_views(self, images) -> list:
        """The augmented views of `images` (a list, one tensor per view, global ones first)."""
        if isinstance(self.augmenter, augment.MultiCrop):
            return list(_augment(self.augmenter, images))
        if isinstance(self.augmenter, tuple):
            return [_augment(layer, images) for layer in self.augmenter]
        views = _augment(self.augmenter, tf.concat([images, images], axis=0))
        return list(tf.split(views, 2, axis=0))

    def two_views(self, images):
        """Both augmented views of `images`."""
        view_a, view_b = self.make_views(images)
        return view_a, view_b

    def _at_encoder_size(self, view):
        """A fixed-size encoder gets every view resized to its input size."""
        if self.fixed_size_encoder and tuple(view.shape[1:3]) != tuple(self.image_shape[:2]):
            view = tf.image.resize(view, self.image_shape[:2], antialias=True)
        return view

    def encode_views(self, views, training: bool) -> list:
        """Runs the encoder once per view size on the concatenated views of that size.

        Views of one size share a pass (BatchNorm sees them together, as in SimCLR's code);
        multi-crop's smaller local views get their own pass with an encoder that accepts
        any size, or are resized to a fixed-size encoder's input.

        Returns:
            The features of each view, in the order of `views`.
        """
        views = [self._at_encoder_size(view) for view in views]
        groups = {}
        for index, view in enumerate(views):
            groups.setdefault(tuple(view.shape[1:3]), []).append(index)
        features = [None] * len(views)
        for indices in groups.values():
            batch = (
                views[indices[0]]
                if len(indices) == 1
                else tf.concat([views[i] for i in indices], axis=0)
            )
            outputs = self.encoder(batch, training=training)
            parts = [outputs] if len(indices) == 1 else tf.split(outputs, len(indices), axis=0)
            for index, part in zip(indices, parts, strict=True):
                features[index] = part
        return features

    def loss_on_views(self, views, training: bool):
        """Runs the encoder on the views and returns the method's loss and metrics."""
        features_a, features_b = self.encode_views(views, training=training)
        return self.loss_on_features(features_a, features_b, training=training)

    def build(self, input_shape=None):
        """Creates the heads' weights with one pass of `loss_on_features` on zero features.

        A method calls `self.build((None, *self.image_shape))` at the end of its `__init__`,
        so `fit`, the optimizer and `.keras` loading see every variable. The pass uses
        `training=False`: no BatchNorm statistic moves. Building again does nothing.
        """
        if self.built:
            return
        features = tf.zeros((max(2, self.min_batch_size), self.feature_dim))
        self.loss_on_features(features, features, training=False)
        self.built = True

    # ----------------------------------------------------------------- steps

    def prepare_batch(self, data, training: bool):
        images = inputs.images_from(data)
        if inputs.has_views(images):  # made in tf.data by augment.views_in_dataset
            inputs.check_view_specs(self, images["views"])
            return list(images["views"])
        validation.check_image_batch(images, self.image_shape, "images")
        inputs.check_batch(self, images)
        return self.make_views(images)

    def loss_on_batch(self, views, training: bool):
        return self.loss_on_views(views, training=training)

    # ----------------------------------------------------------------- input checks
    # (in two_view_inputs.py)

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        inputs.check_data(self, x, batch_size)
        if validation_data is not None and not isinstance(validation_data, tuple):
            inputs.check_data(self, validation_data, batch_size, "validation_data")
        inputs.check_augmenter_output(self, inputs.first_images(x))

    def predict(self, x, batch_size=None, **kwargs):
        """Returns the encoder's representations of `x` (images in [0, 255]).

        The same input checks as `fit` run first (rank, channels, size, dtype, NaN).
        """
        inputs.check_data(self, x, batch_size, for_predict=True)
        return super().predict(x, batch_size=batch_size, **kwargs)
