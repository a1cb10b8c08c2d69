"""SiameseNetwork: one embedding network trained on pairs (contrastive) or triplets (mined)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import distribute, encoders, losses
from keras_siamese.models import siamese_inputs as inputs
from keras_siamese.models.trainer import Trainer
from keras_siamese.similarity import check_distance, pair_distance, score_from_distance

_REFUSED_COMPILE_ARGUMENTS = ("loss", "metrics", "loss_weights", "weighted_metrics")
_METRIC_NAMES = {
    inputs.PAIRS: ("pair_accuracy",),
    "triplets": ("fraction_active", "positive_distance", "negative_distance"),
}


def _resolve_loss(loss) -> losses.ContrastiveMargin | losses.TripletLoss:
    if isinstance(loss, (losses.ContrastiveMargin, losses.TripletLoss)):
        return loss
    if isinstance(loss, str) and loss in ("contrastive", "triplet"):
        return losses.ContrastiveMargin() if loss == "contrastive" else losses.TripletLoss()
    if loss is losses.contrastive_margin:
        return losses.ContrastiveMargin()
    if loss is losses.triplet_loss:
        return losses.TripletLoss()
    if isinstance(loss, str):
        raise ValueError(
            "Argument `loss` must be 'contrastive', 'triplet' or a loss of keras_siamese.losses "
            f"(ContrastiveMargin, TripletLoss). Received: loss={loss!r}"
        )
    raise TypeError(
        "Argument `loss` must be 'contrastive', 'triplet', `keras_siamese.losses."
        "ContrastiveMargin(margin)` or `keras_siamese.losses.TripletLoss(margin, mining)`. "
        f"Received: loss={loss!r} of type {type(loss).__name__}"
    )


@keras.saving.register_keras_serializable(package="keras_siamese")
class SiameseNetwork(Trainer):
    """A Siamese network: one embedding network compared across pairs or triplets of images.

    The embedding is `encoder -> Dense(embedding_dim) (optional) -> L2 normalisation
    (optional)`, shared by every image of a pair or triplet ("two identical copies of
    the same function", Hadsell, Chopra & LeCun 2006). Trained for the distance between
    embeddings to say whether two images show the same class, it generalises to classes
    never seen in training. The loss decides the data:

    - Pair mode, `loss="contrastive"` or `losses.ContrastiveMargin(margin)`: batches
      `((images_a, images_b), labels)` with **labels 1 for a same-class pair**, 0
      otherwise (`keras_siamese.sampling.make_pairs`). Metrics: `loss`, `pair_accuracy`
      (a pair is called "same" when its distance is below `margin / 2`).
    - Triplet mode, `loss="triplet"` or `losses.TripletLoss(margin, mining)`: batches
      `(images, labels)` of integer classes, triplets mined online over the global batch
      (`keras_siamese.losses.triplet_loss`; use P x K batches from
      `keras_siamese.sampling.class_balanced_batches`), or explicit triplets
      `fit(x=(anchors, positives, negatives))` / a dataset of such tuples. Metrics:
      `loss`, `fraction_active` (fraction of the mined triplets with a positive loss),
      `positive_distance` and `negative_distance` (mean anchor-positive and
      anchor-negative distances). A batch without any valid triplet (no two images of a
      class, or a single class) stops training with an error naming the fix.

    Images are uint8 or float in [0, 255]; the optional `augmenter` (e.g.
    `keras_siamese.augment.simclr_augmenter`, [0, 255] in, [0, 1] out) is applied to
    every image in training only. `call(images)` returns the embeddings,
    `similarity(images_a, images_b)` one score per pair (higher = more similar:
    cosine similarity, or the negated Euclidean distance), and `embedding_model()` the
    functional model that `keras_siamese.export` serves.

    Args:
        encoder: a `keras.Model` from float images in [0, 1] of a fixed shape to
            features (rank-4 outputs are globally average-pooled).
        loss: `"contrastive"` (margin 1.0), `"triplet"` (semi-hard, margin 0.2), or a
            configured `keras_siamese.losses.ContrastiveMargin` / `TripletLoss`.
        distance: `"euclidean"` or `"cosine"`, used by the loss, the metrics and
            `similarity`.
        embedding_dim: size of a linear layer on top of the encoder, or None for the
            encoder's features as they are.
        normalize: L2-normalise the embeddings (FaceNet's hypersphere; distances in
            [0, 2], so the default margins apply).
        augmenter: a layer applied to the images in training (output float32 in [0, 1] of
            the encoder's input size), or None.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: for an `encoder` that is not a `keras.Model`, an `augmenter` that is
            not a layer, or a `loss` of another type.
        ValueError: for an unknown `loss` or `distance` name, an `embedding_dim` that is not
            a positive integer, or an encoder without a fixed input shape.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=10, input_shape=(28, 28, 1), width=8)
        >>> model = SiameseNetwork(encoder, loss="triplet", embedding_dim=64)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> batches = keras_siamese.sampling.class_balanced_batches(
        ...     (images, labels), classes_per_batch=8, samples_per_class=4, seed=0)
        >>> model.fit(batches, epochs=1)
        >>> scores = model.similarity(images[:4], images[4:8])  # shape (4,)
    """

    def __init__(
        self,
        encoder: keras.Model,
        loss: str | keras.losses.Loss = "contrastive",
        distance: str = "euclidean",
        embedding_dim: int | None = None,
        normalize: bool = True,
        augmenter: keras.layers.Layer | None = None,
        **kwargs,
    ):
        encoder = encoders.adapt_encoder(encoder)
        image_shape = tuple(encoder.input_shape[1:])
        if any(size is None for size in image_shape):
            raise ValueError(
                "Argument `encoder` must have a fixed input shape (height, width, channels). "
                f"Received: encoder.input_shape={encoder.input_shape}"
            )
        loss_fn = _resolve_loss(loss)
        check_distance(distance)
        if embedding_dim is not None and (
            isinstance(embedding_dim, bool)
            or not isinstance(embedding_dim, (int, np.integer))
            or embedding_dim < 1
        ):
            raise ValueError(
                "Argument `embedding_dim` must be a positive integer or None (the encoder's "
                f"features). Received: embedding_dim={embedding_dim!r}"
            )
        if augmenter is not None and not isinstance(augmenter, keras.layers.Layer):
            raise TypeError(
                "Argument `augmenter` must be a keras.layers.Layer or None. "
                f"Received: augmenter={augmenter!r}"
            )
        super().__init__(**kwargs)
        self.encoder = encoder
        self.loss_fn = loss_fn
        self.mode = inputs.PAIRS if isinstance(loss_fn, losses.ContrastiveMargin) else "triplets"
        self.distance = distance
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.normalize = bool(normalize)
        self.augmenter = augmenter
        self.image_shape = image_shape
        self.feature_dim = int(encoder.output_shape[-1])
        self.output_dim = self.embedding_dim or self.feature_dim
        self.projection = (
            None if embedding_dim is None else keras.layers.Dense(embedding_dim, name="embedding")
        )
        self.normalizer = keras.layers.UnitNormalization(name="l2_normalize") if normalize else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in _METRIC_NAMES[self.mode]}
        self.build((None, *image_shape))

    def build(self, input_shape=None):
        if self.projection is not None:
            self.projection.build((None, self.feature_dim))
        self.built = True

    @property
    def margin(self) -> float:
        """The loss margin."""
        return self.loss_fn.margin

    @property
    def metrics(self):
        return [self.loss_tracker, *self.trackers.values()]

    def compile(self, optimizer="adam", **kwargs):
        """Configures the optimizer; the loss is the model's own (constructor `loss`).

        Args:
            optimizer: a Keras optimizer.
            **kwargs: other `keras.Model.compile` arguments (`jit_compile`, ...). `loss` and
                `metrics` are refused: pass the loss to the constructor.

        Example:
            >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        """
        for refused in _REFUSED_COMPILE_ARGUMENTS:
            if kwargs.get(refused) is not None:
                raise ValueError(
                    "SiameseNetwork computes its own loss and metrics: pass the loss to the "
                    "constructor, e.g. `SiameseNetwork(encoder, loss=keras_siamese.losses."
                    f"TripletLoss(margin=0.2))`. Received: {refused}={kwargs[refused]!r}"
                )
        super().compile(optimizer=optimizer, **kwargs)

    # ----------------------------------------------------------------- embeddings

    def _rescale(self, images):
        # The same arithmetic as embedding_model's Rescaling layer, so both agree exactly.
        images = tf.cast(images, tf.float32) * (1.0 / 255.0)
        if tuple(images.shape[1:3]) != tuple(self.image_shape[:2]):
            images = tf.image.resize(images, self.image_shape[:2], antialias=True)
        return images

    def _embed(self, images, training):
        """Embeddings of float images in [0, 1] of the encoder's input size."""
        embeddings = self.encoder(images, training=training)
        if self.projection is not None:
            embeddings = self.projection(embeddings)
        if self.normalizer is not None:
            embeddings = self.normalizer(embeddings)
        return embeddings

    def call(self, images, training=False):
        """Returns the embeddings `(batch, output_dim)` of `images` (uint8/float in [0, 255])."""
        images = tf.convert_to_tensor(images)
        inputs.check_images(images, self.image_shape, "images")
        return self._embed(self._rescale(images), training=training)

    def similarity(self, images_a, images_b) -> tf.Tensor:
        """One similarity score per pair of images: higher means more alike.

        The score is `keras_siamese.similarity.score_from_distance` of the model's
        distance between the two embeddings: the cosine similarity for `"cosine"`, the
        negated Euclidean distance for `"euclidean"`.

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
        images_a = tf.convert_to_tensor(images_a)
        images_b = tf.convert_to_tensor(images_b)
        inputs.check_images(images_a, self.image_shape, "images_a")
        inputs.check_images(images_b, self.image_shape, "images_b")
        inputs.check_same_shapes((images_a, images_b), ("images_a", "images_b"))
        both = tf.concat([tf.cast(images_a, tf.float32), tf.cast(images_b, tf.float32)], axis=0)
        embeddings_a, embeddings_b = tf.split(self(both, training=False), 2, axis=0)
        distances = pair_distance(embeddings_a, embeddings_b, self.distance)
        return score_from_distance(distances, self.distance)

    def embedding_model(self) -> keras.Model:
        """A functional model: float32 images in [0, 255] -> the embeddings.

        What `keras_siamese.export` serves: preprocessing, encoder, the optional linear
        layer and normalisation, without augmentation or optimizer state.

        Returns:
            A `keras.Model` sharing the network's weights.

        Example:
            >>> embeddings = model.embedding_model()(images.astype("float32"))
        """
        images = keras.Input(self.image_shape, name="images")
        rescaled = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(images)
        embeddings = self.encoder(rescaled)
        if self.projection is not None:
            embeddings = self.projection(embeddings)
        if self.normalizer is not None:
            embeddings = self.normalizer(embeddings)
        return keras.Model(images, embeddings, name=f"{self.name}_embedding")

    # ----------------------------------------------------------------- training

    def _embed_batches(self, batches, training):
        """Embeds several equal-size image batches in one encoder pass."""
        images = tf.concat([tf.cast(batch, tf.float32) for batch in batches], axis=0)
        if training and self.augmenter is not None:
            images = self.augmenter(images, training=True)
        else:
            images = self._rescale(images)
        return tf.split(self._embed(images, training=training), len(batches), axis=0)

    def _pair_loss(self, images_a, images_b, labels, training):
        labels = tf.cast(labels, tf.float32)
        check = tf.debugging.assert_equal(
            tf.reduce_all((labels == 0.0) | (labels == 1.0)),
            True,
            message="SiameseNetwork pair labels must be 1 for a same-class pair and 0 otherwise",
        )
        with tf.control_dependencies([check]):  # nothing is updated after a failed check
            images_a = tf.identity(images_a)
        embeddings_a, embeddings_b = self._embed_batches((images_a, images_b), training)
        distances = pair_distance(embeddings_a, embeddings_b, self.distance)
        loss = losses.contrastive_margin(labels, distances, margin=self.margin)
        correct = tf.equal(distances < self.margin / 2.0, labels > 0.5)
        return loss, {"pair_accuracy": tf.reduce_mean(tf.cast(correct, tf.float32))}

    @staticmethod
    def _check_triplets_exist(labels):
        """An assertion that the global batch has an image with a positive and a negative."""
        labels = distribute.all_gather(labels)
        same = tf.equal(labels[:, None], labels[None, :])
        class_sizes = tf.reduce_sum(tf.cast(same, tf.int32), axis=1)  # own class, with itself
        has_triplet = (class_sizes >= 2) & (class_sizes < tf.size(labels))
        return tf.debugging.assert_equal(
            tf.reduce_any(has_triplet),
            True,
            message=(
                "SiameseNetwork found no triplet in the batch: triplet mining needs, in every "
                "(global) batch, two images of one class and one image of another class. Batch "
                "with keras_siamese.sampling.class_balanced_batches(dataset, classes_per_batch, "
                "samples_per_class) (P x K batches)"
            ),
        )

    def _mined_triplet_loss(self, images, labels, training):
        with tf.control_dependencies([self._check_triplets_exist(labels)]):
            images = tf.identity(images)  # nothing is updated after a failed check
        (embeddings,) = self._embed_batches((images,), training)
        loss, details = losses.triplet_loss(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.loss_fn.mining,
            distance=self.distance,
            return_details=True,
        )
        details.pop("mined")
        return loss, details

    def _explicit_triplet_loss(self, anchors, positives, negatives, training):
        embeddings = self._embed_batches((anchors, positives, negatives), training)
        positive_distance = pair_distance(embeddings[0], embeddings[1], self.distance)
        negative_distance = pair_distance(embeddings[0], embeddings[2], self.distance)
        per_triplet = tf.nn.relu(positive_distance - negative_distance + self.margin)
        return tf.reduce_mean(per_triplet), {
            "fraction_active": tf.reduce_mean(tf.cast(per_triplet > 0, tf.float32)),
            "positive_distance": tf.reduce_mean(positive_distance),
            "negative_distance": tf.reduce_mean(negative_distance),
        }

    def _loss(self, data, training):
        kind, tensors = inputs.parse_batch(data, self.mode, self.image_shape)
        if kind == inputs.PAIRS:
            loss, values = self._pair_loss(*tensors, training=training)
        elif kind == inputs.LABELLED:
            loss, values = self._mined_triplet_loss(*tensors, training=training)
        else:
            loss, values = self._explicit_triplet_loss(*tensors, training=training)
        if training and self.losses:
            loss = loss + tf.cast(tf.add_n(self.losses), loss.dtype)
        return loss, values

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, values = self._loss(data, training=True)
            scaled = self.optimizer.scale_loss(distribute.scale_for_replicas(loss))
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(loss, values)

    def test_step(self, data):
        loss, values = self._loss(data, training=False)
        return self._update_metrics(loss, values)

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)

    # ----------------------------------------------------------------- checks before tracing

    def _check_data(self, x, y=None, batch_size=None):
        """Checks datasets' structure and arrays' values before anything is traced."""
        if isinstance(x, tf.data.Dataset):
            inputs.check_dataset(x, self.mode, self.image_shape)
        elif isinstance(x, (np.ndarray, tf.Tensor, tuple, list)):
            inputs.check_arrays(x, y, self.mode, self.image_shape, batch_size)

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        self._check_data(x, y, batch_size)
        if isinstance(validation_data, tf.data.Dataset):
            self._check_data(validation_data, None, batch_size)
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (1, 2):
            self._check_data(*validation_data, batch_size=batch_size)

    @property
    def cross_replica_loss(self) -> str:
        """How the loss combines replicas (shown in the distribution report)."""
        if self.mode != inputs.PAIRS:
            return "triplets mined over the global batch (embeddings and labels all_gathered)"
        return "per-pair loss, nothing gathered across replicas"

    # ----------------------------------------------------------------- config

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "loss": keras.saving.serialize_keras_object(self.loss_fn),
            "distance": self.distance,
            "embedding_dim": self.embedding_dim,
            "normalize": self.normalize,
            "augmenter": (
                None
                if self.augmenter is None
                else keras.saving.serialize_keras_object(self.augmenter)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "loss", "augmenter"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
