"""The two-view base of the self-supervised models: views, one encoder pass, trackers, checks.

A method (SimCLR, SimSiam, BYOL, Barlow Twins, ...) subclasses `TwoViewModel`, names its
metrics in `metric_names`, creates its heads in `__init__` (ending with
`self.build((None, *self.image_shape))`: the base builds the heads by one pass of
`loss_on_features` on zero features), implements
`loss_on_features(features_a, features_b, training) -> (loss, {metric_name: value})`, and
adds its own arguments to `get_config`. Nothing else: views, the encoder pass, the train
and test steps, metric tracking, input checks, `call`, export and saving come from here.
A method with a target network (BYOL) also overrides `loss_on_views` (to run its target
on the views) and `after_optimizer_step` (for the moving-average update).
"""

from __future__ import annotations

import copy

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import augment, distribute, encoders
from keras_siamese.models.trainer import Trainer


def images_from(data):
    """Returns the images of a batch given as `images`, `(images, labels)` or `(x, y, w)`."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x


def normalized_std(outputs):
    """Per-dimension std of the L2-normalised outputs, times sqrt(d), averaged over dimensions.

    The collapse indicator of SimSiam (Chen & He 2021, section 4.1): for outputs
    spread like an isotropic Gaussian it is about 1; for collapsed (constant)
    outputs it is 0.

    Args:
        outputs: `(batch, d)` features.

    Returns:
        A float32 scalar.
    """
    outputs = tf.math.l2_normalize(tf.cast(outputs, tf.float32), axis=1)
    dims = tf.cast(tf.shape(outputs)[1], tf.float32)
    return tf.reduce_mean(tf.math.reduce_std(outputs, axis=0)) * tf.sqrt(dims)


class TwoViewModel(Trainer):
    """Base class of models trained on two augmented views of each image.

    The step makes both views inside the graph (so augmentation runs on the
    accelerator), runs the encoder once on the concatenated views (BatchNorm sees
    both, as in SimCLR's code), and hands the two feature halves to
    `loss_on_features`. `call(images)` returns the encoder's representation of
    images in [0, 255].

    Args:
        encoder: a `keras.Model` from float images in [0, 1] of a fixed shape to
            features (rank 2; rank-4 outputs are globally average-pooled).
        augmenter: a layer mapping a batch of uint8/float [0, 255] images to float32
            views in [0, 1] of the encoder's input shape, random per image; the
            method's default augmentation when None.
        **kwargs: `keras.Model` arguments (`name`, ...).
    """

    metric_names: tuple[str, ...] = ()
    min_batch_size: int = 2

    def __init__(self, encoder: keras.Model, augmenter: keras.layers.Layer | None = None, **kwargs):
        encoder = encoders.adapt_encoder(encoder)
        image_shape = tuple(encoder.input_shape[1:])
        if any(d is None for d in image_shape):
            raise ValueError(
                "Argument `encoder` must have a fixed input shape (height, width, channels) "
                "so views can be made at that size. "
                f"Received: encoder.input_shape={encoder.input_shape}"
            )
        if augmenter is None:
            augmenter = self.default_augmenter(image_shape)
        elif not isinstance(augmenter, keras.layers.Layer):
            raise TypeError(
                "Argument `augmenter` must be a keras.layers.Layer (or None for the default). "
                f"Received: augmenter={augmenter!r}"
            )
        super().__init__(**kwargs)
        self.encoder = encoder
        self.augmenter = augmenter
        self.image_shape = image_shape
        self.feature_dim = int(encoder.output_shape[-1])
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    @classmethod
    def default_augmenter(cls, image_shape: tuple[int, int, int]) -> keras.layers.Layer:
        """The method's default augmentation for images of `image_shape`."""
        return augment.simclr_augmenter(image_shape[:2], channels=image_shape[-1])

    # ----------------------------------------------------------------- the method's part

    def loss_on_features(self, features_a, features_b, training: bool):
        """Returns `(loss, {metric_name: value})` for the encoder features of the views."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss_on_features().")

    # ----------------------------------------------------------------- shared machinery

    @property
    def metrics(self):
        return [self.loss_tracker, *self.trackers.values()]

    def compile(self, optimizer="sgd", **kwargs):
        """Configures the optimizer; the loss is the method's own.

        Args:
            optimizer: a Keras optimizer (e.g. `keras_siamese.optimizers.LARS`).
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`,
                `steps_per_execution`, ...). `loss` and `metrics` are refused: the
                model computes and tracks its own.

        Example:
            >>> model.compile(optimizer=keras.optimizers.SGD(0.1))
        """
        for refused in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            if kwargs.get(refused) is not None:
                raise ValueError(
                    f"{type(self).__name__} computes its own loss and metrics; `compile` takes "
                    f"only the optimizer and execution options. Received: {refused}="
                    f"{kwargs[refused]!r}"
                )
        super().compile(optimizer=optimizer, **kwargs)

    def _check_images(self, images, argument="images"):
        shape = tuple(images.shape)
        if len(shape) != 4:
            raise ValueError(
                f"Argument `{argument}` must be a batch of images (batch, height, width, "
                f"channels) matching the encoder input {self.image_shape}. Received: "
                f"{argument}.shape={shape}"
            )
        if shape[-1] is not None and shape[-1] != self.image_shape[-1]:
            raise ValueError(
                f"Argument `{argument}` must have {self.image_shape[-1]} channels like the "
                f"encoder input {self.image_shape}. Received: {argument}.shape={shape}"
            )
        dtype = tf.as_dtype(images.dtype)
        if not (dtype.is_integer or dtype.is_floating):
            raise TypeError(
                f"Argument `{argument}` must be uint8 or float in [0, 255]. "
                f"Received: {argument}.dtype={dtype.name}"
            )

    def _check_batch(self, images):
        batch = images.shape[0]
        if batch is not None and batch < self.min_batch_size:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_batch_size} images per batch "
                f"(per replica). Received: a batch of shape {tuple(images.shape)}"
            )
        if batch is None and self.min_batch_size > 1:
            tf.debugging.assert_greater_equal(
                tf.shape(images)[0],
                self.min_batch_size,
                message=(
                    f"{type(self).__name__} needs at least {self.min_batch_size} images per "
                    "batch; batch with drop_remainder=True"
                ),
            )

    def _rescale(self, images):
        images = tf.cast(images, tf.float32) / 255.0
        if tuple(images.shape[1:3]) != tuple(self.image_shape[:2]):
            images = tf.image.resize(images, self.image_shape[:2], antialias=True)
        return images

    def call(self, images, training=False):
        """Returns the encoder's representation of `images` (uint8/float in [0, 255])."""
        images = tf.convert_to_tensor(images)
        self._check_images(images)
        return self.encoder(self._rescale(images), training=training)

    def embedding_model(self) -> keras.Model:
        """A functional model: float32 images in [0, 255] -> the representation.

        This is what `keras_siamese.export` serves: the encoder with its
        preprocessing, without heads, augmentation or optimizer state.

        Returns:
            A `keras.Model` sharing the encoder's weights.

        Example:
            >>> features = model.embedding_model()(images)
        """
        inputs = keras.Input(self.image_shape, name="images")
        rescaled = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
        return keras.Model(inputs, self.encoder(rescaled), name=f"{self.name}_embedding")

    def build(self, input_shape=None):
        """Creates the heads' weights with one pass of `loss_on_features` on zero features.

        A method calls `self.build((None, *self.image_shape))` at the end of its
        `__init__`, so `fit`, the optimizer and `.keras` loading see every variable.
        The pass uses `training=False`: no BatchNorm statistic moves.
        """
        features = tf.zeros((max(2, self.min_batch_size), self.feature_dim))
        self.loss_on_features(features, features, training=False)

    def two_views(self, images):
        """Both augmented views of `images`, made in one augmenter call (per-image random)."""
        views = self.augmenter(tf.concat([images, images], axis=0), training=True)
        return tf.split(views, 2, axis=0)

    def encode_views(self, view_a, view_b, training: bool):
        """Runs the encoder once on both views (BatchNorm sees both); returns both halves."""
        features = self.encoder(tf.concat([view_a, view_b], axis=0), training=training)
        return tf.split(features, 2, axis=0)

    def loss_on_views(self, view_a, view_b, training: bool):
        """Runs the encoder once on both views and returns the method's loss and metrics."""
        features_a, features_b = self.encode_views(view_a, view_b, training=training)
        loss, values = self.loss_on_features(features_a, features_b, training=training)
        if training and self.losses:
            loss = loss + tf.cast(tf.add_n(self.losses), loss.dtype)
        return loss, values

    def _prepare(self, data):
        images = images_from(data)
        self._check_images(images)
        self._check_batch(images)
        return images

    def train_step(self, data):
        images = self._prepare(data)
        view_a, view_b = self.two_views(images)
        with tf.GradientTape() as tape:
            loss, values = self.loss_on_views(view_a, view_b, training=True)
            scaled = self.optimizer.scale_loss(distribute.scale_for_replicas(loss))
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.after_optimizer_step()
        return self._update_metrics(loss, values)

    def after_optimizer_step(self):
        """Hook run in every train step after the update, e.g. BYOL's target average."""

    def test_step(self, data):
        images = self._prepare(data)
        view_a, view_b = self.two_views(images)
        loss, values = self.loss_on_views(view_a, view_b, training=False)
        return self._update_metrics(loss, values)

    def predict_step(self, data):
        return self(images_from(data), training=False)

    # ----------------------------------------------------------------- input checks at the API

    def _check_size(self, shape, argument):
        if tuple(shape[1:3]) != tuple(self.image_shape[:2]):
            raise ValueError(
                f"Argument `{argument}` must have images of size {self.image_shape[:2]} "
                f"like the encoder input. Received: {argument}.shape={tuple(shape)}"
            )

    def _check_data(self, x, batch_size, argument="x", for_predict=False):
        """Validates numpy/tensor/dataset inputs before anything is traced."""
        if x is None:
            return
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            if isinstance(spec, (tuple, list)):
                spec = spec[0]
            if isinstance(spec, tf.TensorSpec):
                if spec.shape.rank == 3:
                    raise ValueError(
                        f"Argument `{argument}` is a dataset of single images {spec.shape}; "
                        "batch it first, e.g. `dataset.batch(256, drop_remainder=True)`. "
                        f"Received: element_spec={x.element_spec}"
                    )
                self._check_images(spec, argument)
                self._check_size(spec.shape, argument)
                if spec.shape[0] is not None and not for_predict:
                    self._check_batch(spec)
            return
        if isinstance(x, (tuple, list)) and x and hasattr(x[0], "shape"):
            x = x[0]
        if isinstance(x, (np.ndarray, tf.Tensor)):
            if isinstance(x, np.ndarray) and not (
                np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
            ):
                raise TypeError(
                    f"Argument `{argument}` must be uint8 or float in [0, 255]. "
                    f"Received: {argument}.dtype="
                    f"{'string' if x.dtype.kind in 'USO' else x.dtype}"
                )
            self._check_images(x, argument)
            self._check_size(x.shape, argument)
            count = int(x.shape[0])
            size = batch_size or 32
            if for_predict:
                pass
            elif count < self.min_batch_size or (self.min_batch_size > 1 and count % size == 1):
                raise ValueError(
                    f"{type(self).__name__} needs at least {self.min_batch_size} images in every "
                    f"batch, but {count} images in batches of {size} leave a batch of 1. "
                    f"Change `batch_size` or drop images. Received: {argument}.shape="
                    f"{tuple(x.shape)}, batch_size={batch_size}"
                )
            if np.issubdtype(np.asarray(x[:0]).dtype, np.floating) and not np.all(
                np.isfinite(np.asarray(x))
            ):
                raise ValueError(
                    f"Argument `{argument}` contains NaN or infinite values; images must be "
                    "finite values in [0, 255]."
                )

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        self._check_data(x, batch_size)
        if validation_data is not None and not isinstance(validation_data, tuple):
            self._check_data(validation_data, batch_size, "validation_data")

    def predict(self, x, batch_size=None, **kwargs):
        """Returns the encoder's representations of `x` (images in [0, 255]).

        The same input checks as `fit` run first (rank, channels, size, dtype, NaN).
        """
        self._check_data(x, batch_size, for_predict=True)
        return super().predict(x, batch_size=batch_size, **kwargs)

    # ----------------------------------------------------------------- config

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "augmenter": keras.saving.serialize_keras_object(self.augmenter),
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        for key in ("encoder", "augmenter"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
