"""`RepresentationModel`: the base of every keras_siamese model.

What the eight self-supervised methods (through `TwoViewModel`) and `SiameseNetwork` share
lives here, once: the encoder and its fixed input shape, the [0, 255] -> [0, 1] preprocessing
(one `Rescaling` layer used by `call` and by `embedding_model`, so both agree to the last bit),
global BatchNorm, the loss and metric trackers, the refusal of `compile(loss=...)`, the checked
`fit`/`evaluate`/`predict`, the train and test step skeleton, the distribution report and the
config. A subclass supplies two hooks:

- `prepare_batch(data, training)`: checks a batch and turns it into what the loss needs
  (augmented views, parsed pairs, ...); it runs outside the gradient tape.
- `loss_on_batch(batch, training) -> (loss, {metric_name: value})`: the forward pass and the
  loss; it runs inside the tape.

and `_check_inputs(x, y, batch_size, validation_data)` for its data formats. It declares its
contract as class attributes: `metric_names` (the trackers besides `loss`), `collapse_metric`
(the metric `keras_siamese.callbacks.CollapseMonitor` watches, or None) and `distance` (how
`similarity` compares embeddings).
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf
from keras.src.utils import io_utils

from keras_siamese import distribute, encoders
from keras_siamese.models import nonfinite
from keras_siamese.similarity import check_distance, pair_distance, score_from_distance

_REFUSED_COMPILE_ARGUMENTS = ("loss", "metrics", "loss_weights", "weighted_metrics")


def _image_shape(encoder: keras.Model, image_size) -> tuple[int, int, int]:
    """The `(height, width, channels)` the model takes: the encoder's, or `image_size`'s."""
    encoder_shape = tuple(encoder.input_shape[1:])
    if encoder_shape[-1] is None:
        raise ValueError(
            "Argument `encoder` must have a known number of input channels. "
            f"Received: encoder.input_shape={encoder.input_shape}"
        )
    if image_size is not None:
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            image_size = (image_size, image_size)
        if (
            not isinstance(image_size, (tuple, list))
            or len(image_size) != 2
            or not all(isinstance(size, int) and not isinstance(size, bool) for size in image_size)
            or min(image_size) < 1
        ):
            raise ValueError(
                "Argument `image_size` must be (height, width) of positive integers or None. "
                f"Received: image_size={image_size!r}"
            )
        image_size = tuple(image_size)
    if None in encoder_shape[:2]:
        if image_size is None:
            raise ValueError(
                "The encoder accepts images of any size, so the model needs the size of the "
                "images it takes and serves: pass `image_size=(height, width)` (or build the "
                "encoder with a fixed `input_shape`). "
                f"Received: encoder.input_shape={encoder.input_shape}, image_size=None"
            )
        return (*image_size, encoder_shape[-1])
    if image_size is not None and image_size != encoder_shape[:2]:
        raise ValueError(
            "Argument `image_size` must match the fixed input size of the encoder "
            f"{encoder_shape[:2]} (or be None). Received: image_size={image_size}"
        )
    return encoder_shape


class RepresentationModel(keras.Model):
    """Base class of the keras_siamese models: an encoder trained for its representation.

    Images given to the model (`fit`, `call`, `predict`, `similarity`, the export) are
    uint8 or float in [0, 255]; the model divides by 255 before the encoder, which sees
    float32 in [0, 1]. `call(images)` returns the representation: the encoder's features,
    followed by the model's embedding head if it has one (`SiameseNetwork`).

    Args:
        encoder: a `keras.Model` from float images in [0, 1] of a fixed shape to features
            (rank 2; rank-4 outputs are globally average-pooled with a warning).
        augmenter: the model's augmentation (checked by the subclass), or None.
        sync_batch_norm: global BatchNorm (SimCLR, section 2.2). `"auto"` (default)
            synchronises every BatchNorm layer of the encoder and the heads whenever the model
            is built under a strategy with more than one replica in sync, so N replicas train
            as one device on the global batch; True or False force it.
        image_size: `(height, width)` of the images the model takes and serves. Needed only
            for an encoder that accepts any size (`input_shape=(None, None, C)`, e.g. for
            multi-crop's smaller local views); for a fixed-size encoder it is that size.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Raises:
        ValueError: for an encoder without a fixed input shape or a bad `sync_batch_norm`.

    Example:
        >>> class Plain(RepresentationModel):
        ...     def prepare_batch(self, data, training):
        ...         return self.preprocess(data)
        ...     def loss_on_batch(self, images, training):
        ...         return keras.ops.mean(self.embed(images, training) ** 2), {}
    """

    metric_names: tuple[str, ...] = ()
    collapse_metric: str | None = None
    distance: str = "cosine"
    min_batch_size: int = 1

    def __init__(
        self,
        encoder: keras.Model,
        augmenter=None,
        sync_batch_norm: bool | str = "auto",
        image_size: tuple[int, int] | None = None,
        **kwargs,
    ):
        encoder = encoders.adapt_encoder(encoder)
        image_shape = _image_shape(encoder, image_size)
        synchronized = distribute.resolve_sync_batch_norm(sync_batch_norm)
        augmenter = self._check_augmenter(augmenter, image_shape)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.augmenter = augmenter
        self.image_shape = image_shape
        self.image_size = None if image_size is None else tuple(image_shape[:2])
        self.fixed_size_encoder = None not in tuple(encoder.input_shape[1:3])
        self.feature_dim = int(encoder.output_shape[-1])
        self.sync_batch_norm = sync_batch_norm
        self.synchronized_batch_norm = synchronized
        if synchronized:
            distribute.convert_to_sync_batch_norm(encoder)
        self.rescaling = keras.layers.Rescaling(1.0 / 255.0, name="rescale")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    def _check_augmenter(self, augmenter, image_shape):
        """Validates `augmenter`; returns what the model stores (a layer or None here)."""
        if augmenter is not None and not isinstance(augmenter, keras.layers.Layer):
            raise TypeError(
                "Argument `augmenter` must be a keras.layers.Layer or None. "
                f"Received: augmenter={augmenter!r}"
            )
        return augmenter

    # ----------------------------------------------------------------- the subclass's part

    def prepare_batch(self, data, training: bool):
        """Checks a batch and returns what `loss_on_batch` takes (outside the tape)."""
        raise NotImplementedError(f"{type(self).__name__} must implement prepare_batch().")

    def loss_on_batch(self, batch, training: bool):
        """Returns `(loss, {metric_name: value})` for a prepared batch (inside the tape)."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss_on_batch().")

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        """Validates `fit`/`evaluate` data before anything is traced."""
        raise NotImplementedError(f"{type(self).__name__} must implement _check_inputs().")

    def after_optimizer_step(self):
        """Runs in every train step after the update (e.g. a moving-average target)."""

    # ----------------------------------------------------------------- the representation

    def embed_features(self, features, training: bool = False):
        """The model's head from encoder features to the representation (identity here)."""
        return features

    @property
    def output_dim(self) -> int:
        """Size of the representation `call` returns."""
        return self.feature_dim

    def preprocess(self, images):
        """uint8/float images in [0, 255] -> float32 in [0, 1] at the encoder's size."""
        images = self.rescaling(tf.cast(images, tf.float32))
        if tuple(images.shape[1:3]) != tuple(self.image_shape[:2]):
            images = tf.image.resize(images, self.image_shape[:2], antialias=True)
        return images

    def embed(self, images, training: bool = False):
        """The representation of float images in [0, 1] of the encoder's input size."""
        return self.embed_features(self.encoder(images, training=training), training=training)

    def call(self, images, training=False):
        """Returns the representation `(batch, output_dim)` of `images` in [0, 255]."""
        from keras_siamese import validation

        images = tf.convert_to_tensor(images)
        validation.check_image_batch(images, self.image_shape, "images")
        return self.embed(self.preprocess(images), training=training)

    def embedding_model(self) -> keras.Model:
        """A functional model: float32 images in [0, 255] -> the representation.

        This is what `keras_siamese.export` serves: the preprocessing (the same `Rescaling`
        layer as `call`), the encoder and the model's embedding head, without augmentation,
        training heads or optimizer state.

        Returns:
            A `keras.Model` sharing the model's weights.

        Example:
            >>> embeddings = model.embedding_model()(images.astype("float32"))
        """
        inputs = keras.Input(self.image_shape, name="images")
        outputs = self.embed(self.rescaling(inputs), training=False)
        return keras.Model(inputs, outputs, name=f"{self.name}_embedding")

    def similarity(self, images_a, images_b) -> tf.Tensor:
        """One similarity score per pair of images: higher means more alike.

        The score is `keras_siamese.similarity.score_from_distance` of the model's
        `distance` between the two representations: the cosine similarity for `"cosine"`,
        the negated Euclidean distance for `"euclidean"`.

        Args:
            images_a: `(batch, H, W, C)` uint8/float images in [0, 255].
            images_b: images of the same shape.

        Returns:
            float32 scores of shape `(batch,)`.

        Raises:
            ValueError: if the two batches do not have the same shape, or for bad images.

        Example:
            >>> scores = model.similarity(images[:8], images[8:16])
        """
        from keras_siamese import validation

        images_a = tf.convert_to_tensor(images_a)
        images_b = tf.convert_to_tensor(images_b)
        validation.check_image_batch(images_a, self.image_shape, "images_a")
        validation.check_image_batch(images_b, self.image_shape, "images_b")
        if tuple(images_a.shape) != tuple(images_b.shape):
            raise ValueError(
                "Arguments `images_a` and `images_b` must have the same shape. Received: "
                f"images_a.shape={tuple(images_a.shape)}, images_b.shape={tuple(images_b.shape)}"
            )
        both = tf.concat([tf.cast(images_a, tf.float32), tf.cast(images_b, tf.float32)], axis=0)
        embeddings_a, embeddings_b = tf.split(self(both, training=False), 2, axis=0)
        distance = check_distance(self.distance)
        return score_from_distance(pair_distance(embeddings_a, embeddings_b, distance), distance)

    # ----------------------------------------------------------------- compile and steps

    @property
    def metrics(self):
        return [self.loss_tracker, *self.trackers.values()]

    def compile(self, optimizer="sgd", **kwargs):
        """Configures the optimizer; the loss and metrics are the model's own.

        Args:
            optimizer: a Keras optimizer (e.g. `keras_siamese.optimizers.LARS`).
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`,
                `steps_per_execution`, ...). `loss`, `metrics`, `loss_weights` and
                `weighted_metrics` are refused: the model computes and tracks its own.

        Raises:
            ValueError: for a refused argument.

        Example:
            >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        """
        for refused in _REFUSED_COMPILE_ARGUMENTS:
            if kwargs.get(refused) is not None:
                raise ValueError(
                    f"{type(self).__name__} computes its own loss and metrics; `compile` takes "
                    "the optimizer and execution options (the loss is a constructor argument "
                    f"where a model has a choice). Received: {refused}={kwargs[refused]!r}"
                )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a reloaded model with its saved optimizer.

        Keras skips this for models that override `compile`, which would leave a reloaded
        model uncompiled and its optimizer state unrestored.
        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _with_regularization(self, loss):
        if self.losses:
            loss = loss + tf.cast(tf.add_n(self.losses), loss.dtype)
        return loss

    def _update_metrics(self, loss, values):
        self.loss_tracker.update_state(loss)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return distribute.step_logs({metric.name: metric.result() for metric in self.metrics})

    def train_step(self, data):
        # NaN/Inf in the batch, the views, the loss or the gradients stops the step before
        # it changes anything, naming the step (models/nonfinite.py).
        step = self.optimizer.iterations
        data = nonfinite.checked(data, step, "input batch")
        batch = nonfinite.checked(self.prepare_batch(data, training=True), step, "prepared batch")
        with tf.GradientTape() as tape:
            loss, values = self.loss_on_batch(batch, training=True)
            loss = self._with_regularization(loss)
            scaled = self.optimizer.scale_loss(distribute.scale_for_replicas(loss))
        variables = self.trainable_variables
        loss_scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        gradients = tape.gradient(scaled, variables)
        loss, gradients = nonfinite.checked_update(loss, gradients, step, loss_scaled)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.after_optimizer_step()
        return self._update_metrics(loss, values)

    def test_step(self, data):
        batch = self.prepare_batch(data, training=False)
        loss, values = self.loss_on_batch(batch, training=False)
        return self._update_metrics(loss, values)

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)

    # ----------------------------------------------------------------- checked entry points

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        self._check_inputs(x, y, batch_size, validation_data)
        self._global_batch_size = distribute.global_batch_size(x, batch_size)
        if kwargs.get("verbose", "auto") != 0:
            io_utils.print_msg(str(self.distribution_report()))
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras' default shuffle=True only warns about it.
            kwargs.setdefault("shuffle", False)
        x = distribute.collective_safe(x, self.distribute_strategy)
        validation_data = distribute.collective_safe(validation_data, self.distribute_strategy)
        return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        self._check_inputs(x, y, batch_size)
        x = distribute.collective_safe(x, self.distribute_strategy)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def distribution_report(self, global_batch_size: int | None = None):
        """How a training step runs across replicas (printed at the start of `fit`).

        Args:
            global_batch_size: examples per step; the last `fit`'s batch size when None.

        Returns:
            A `keras_siamese.distribute.DistributionReport`; print it for the text block.

        Example:
            >>> print(model.distribution_report(global_batch_size=256))
        """
        if global_batch_size is None:
            global_batch_size = getattr(self, "_global_batch_size", None)
        return distribute.distribution_report(self, global_batch_size)

    # ----------------------------------------------------------------- config

    nested_config_keys: tuple[str, ...] = ("encoder", "augmenter")

    def get_config(self):
        augmenter = self.augmenter
        if isinstance(augmenter, (tuple, list)):
            augmenter = [keras.saving.serialize_keras_object(layer) for layer in augmenter]
        elif augmenter is not None:
            augmenter = keras.saving.serialize_keras_object(augmenter)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "augmenter": augmenter,
            "sync_batch_norm": self.sync_batch_norm,
            "image_size": self.image_size,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        for key in cls.nested_config_keys:
            value = config.get(key)
            if isinstance(value, list):
                config[key] = tuple(keras.saving.deserialize_keras_object(v) for v in value)
            elif isinstance(value, dict):
                config[key] = keras.saving.deserialize_keras_object(value)
        return cls(**config)
