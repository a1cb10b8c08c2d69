"""SiameseNetwork: one embedding network trained on pairs (contrastive) or triplets (mined)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import distribute, losses, validation
from keras_siamese.models import siamese_inputs as inputs
from keras_siamese.models import siamese_losses
from keras_siamese.models.embedding_memory import EmbeddingMemory
from keras_siamese.models.representation_model import RepresentationModel
from keras_siamese.similarity import check_distance, pair_distance

_METRIC_NAMES = {
    inputs.PAIRS: ("pair_accuracy",),
    inputs.TRIPLETS: ("fraction_active", "positive_distance", "negative_distance"),
    inputs.METRIC: (),
    inputs.PROXIES: (),
}


def _check_views(views_per_image, mode: str, augmenter) -> None:
    if views_per_image not in (1, 2):
        raise ValueError(
            "Argument `views_per_image` must be 1 (each image once) or 2 (two augmented views "
            f"of each image, as SupCon trains). Received: views_per_image={views_per_image!r}"
        )
    if views_per_image == 2 and (augmenter is None or mode not in (inputs.METRIC, inputs.PROXIES)):
        raise ValueError(
            "views_per_image=2 needs an `augmenter` (two views of an image must differ) and a "
            "loss on labelled batches other than the triplet loss (e.g. "
            f"'supervised_contrastive'). Received: views_per_image=2, augmenter={augmenter!r}, "
            f"loss mode {mode!r}"
        )


def _check_class_range(labels: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Argument `y` must hold class ids in [0, num_classes={num_classes}) for the proxy "
            f"loss (one learned weight per class). Received: y with values from {labels.min()} "
            f"to {labels.max()}; relabel the classes 0..N-1 or pass num_classes=N"
        )


@keras.saving.register_keras_serializable(package="keras_siamese")
class SiameseNetwork(RepresentationModel):
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
    - Metric mode, any other loss of `keras_siamese.loss_names.LOSS_NAMES` or a
      `losses.MetricLoss` (pytorch-metric-learning's defaults): batches `(images, labels)`,
      P x K for the pair losses (`"multi_similarity"`, `"circle"`,
      `"supervised_contrastive"`, `"batch_contrastive"`), whose pairs span the global
      batch, and of any classes for the proxy losses (`"arcface"`, `"sub_center_arcface"`,
      `"cosface"`, `"proxy_anchor"`, `"proxy_nca"`), whose class weights
      (`keras_siamese.proxies.ClassProxies`, labels in `[0, num_classes)`) are variables
      of this model: saved and restored with it, left out of `embedding_model()` and the
      export. `losses.CrossBatchMemory(pair_loss, memory_size)` adds a queue of past
      embeddings (`EmbeddingMemory`, saved likewise). Metric: `loss`.

    Images are uint8 or float in [0, 255]; the optional `augmenter` (e.g.
    `keras_siamese.augment.simclr_augmenter`, [0, 255] in, [0, 1] out) is applied to
    every image in training only. `call(images)` returns the embeddings,
    `similarity(images_a, images_b)` one score per pair (higher = more similar:
    cosine similarity, or the negated Euclidean distance), and `embedding_model()` the
    functional model that `keras_siamese.export` serves.

    Args:
        encoder: a `keras.Model` from float images in [0, 1] of a fixed shape to
            features (rank-4 outputs are globally average-pooled).
        loss: `"contrastive"` (margin 1.0), `"triplet"` (semi-hard, margin 0.2), another
            name of `LOSS_NAMES`, or a configured loss object (`ContrastiveMargin`,
            `TripletLoss`, any `MetricLoss`, `CrossBatchMemory`).
        distance: `"euclidean"` or `"cosine"`, used by the loss, the metrics and
            `similarity`.
        embedding_dim: size of a linear layer on top of the encoder, or None for the
            encoder's features as they are.
        normalize: L2-normalise the embeddings (FaceNet's hypersphere; distances in
            [0, 2], so the default margins apply).
        augmenter: a layer applied to the images in training (output float32 in [0, 1] of
            the encoder's input size), or None.
        sync_batch_norm: global BatchNorm for the encoder: `"auto"` (default, synchronised
            when more than one replica is in sync), True or False.
        num_classes: classes of the labels, for a proxy loss given by name.
        views_per_image: 2 trains a metric-mode loss on two augmented views of every
            image (labels repeated; SupCon's setting, Khosla et al. 2020); 1: each once.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: for an `encoder` that is not a `keras.Model`, an `augmenter` that is
            not a layer, or a `loss` of another type.
        ValueError: for an unknown `loss` or `distance` name, a proxy loss name without
            `num_classes`, an `embedding_dim` that is not a positive integer,
            `views_per_image=2` without an augmenter, or an encoder without a fixed input
            shape.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=10, input_shape=(28, 28, 1), width=8)
        >>> model = SiameseNetwork(encoder, loss="triplet", embedding_dim=64)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> batches = keras_siamese.sampling.class_balanced_batches(
        ...     (images, labels), classes_per_batch=8, samples_per_class=4, seed=0)
        >>> model.fit(batches, epochs=1)
        >>> scores = model.similarity(images[:4], images[4:8])  # shape (4,)
        >>> arcface = SiameseNetwork(encoder, loss="arcface", num_classes=10, embedding_dim=64)
    """

    def __init__(
        self,
        encoder: keras.Model,
        loss: str | keras.losses.Loss = "contrastive",
        distance: str = "euclidean",
        embedding_dim: int | None = None,
        normalize: bool = True,
        augmenter: keras.layers.Layer | None = None,
        sync_batch_norm: bool | str = "auto",
        num_classes: int | None = None,
        views_per_image: int = 1,
        **kwargs,
    ):
        loss_fn = siamese_losses.resolve_loss(loss, num_classes)
        check_distance(distance)
        if embedding_dim is not None:
            embedding_dim = validation.check_integer(
                "embedding_dim", embedding_dim, meaning=" or None (the encoder's features)"
            )
        mode = siamese_losses.mode_of(loss_fn)
        _check_views(views_per_image, mode, augmenter)
        self.metric_names = _METRIC_NAMES[mode]
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.loss_fn = loss_fn
        self.mode = mode
        self.distance = distance
        self.embedding_dim = embedding_dim
        self.normalize = bool(normalize)
        self.num_classes = getattr(loss_fn, "num_classes", None)
        self.views_per_image = views_per_image
        self.projection = (
            None if embedding_dim is None else keras.layers.Dense(embedding_dim, name="embedding")
        )
        self.normalizer = keras.layers.UnitNormalization(name="l2_normalize") if normalize else None
        self.proxies = None
        if mode == inputs.PROXIES:
            from keras_siamese.proxies import ClassProxies

            self.proxies = ClassProxies(
                loss_fn.num_classes, loss_fn.proxies_per_class, name="class_proxies"
            )
        self.memory = None
        if isinstance(loss_fn, losses.CrossBatchMemory):
            self.memory = EmbeddingMemory(loss_fn.memory_size, name="cross_batch_memory")
        self.build((None, *self.image_shape))

    def build(self, input_shape=None):
        if self.projection is not None and not self.projection.built:
            self.projection.build((None, self.feature_dim))
        for layer in (self.proxies, self.memory):
            if layer is not None and not layer.built:
                layer.build((None, self.output_dim))
        self.built = True

    @property
    def margin(self) -> float | None:
        """The margin of a contrastive or triplet loss (None for the other losses)."""
        return getattr(self.loss_fn, "margin", None)

    @property
    def output_dim(self) -> int:
        """Size of the embeddings."""
        return self.embedding_dim or self.feature_dim

    def embed_features(self, features, training: bool = False):
        """Encoder features -> embeddings: the optional linear layer, then L2 normalisation."""
        if self.projection is not None:
            features = self.projection(features)
        if self.normalizer is not None:
            features = self.normalizer(features)
        return features

    # ----------------------------------------------------------------- training

    def _embed_batches(self, batches, training):
        """Embeds several equal-size image batches in one encoder pass."""
        images = tf.concat([tf.cast(batch, tf.float32) for batch in batches], axis=0)
        if training and self.augmenter is not None:
            images = self.augmenter(images, training=True)
        else:
            images = self.preprocess(images)
        return tf.split(self.embed(images, training=training), len(batches), axis=0)

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

    def _metric_loss(self, images, labels, training):
        """A `losses.MetricLoss` on a labelled batch (two views per image if asked)."""
        if training and self.views_per_image == 2:
            images = tf.concat([images, images], axis=0)  # each copy augmented on its own
            labels = tf.concat([labels, labels], axis=0)
        memory = None
        if self.memory is not None:
            incoming = tf.shape(distribute.all_gather(labels))[0]
            if training:  # a global batch larger than the memory updates nothing
                with tf.control_dependencies(self.memory.check_fits(incoming)):
                    images = tf.identity(images)
        (embeddings,) = self._embed_batches((images,), training)
        if self.proxies is not None:
            return self.loss_fn.call(labels, self.proxies(embeddings)), {}
        if self.memory is not None:
            memory = self.memory.contents(incoming)
        loss = self.loss_fn.compute(embeddings, labels, memory=memory)
        if training and self.memory is not None:
            self.memory.enqueue(embeddings, labels)
        return loss, {}

    def prepare_batch(self, data, training: bool):
        return inputs.parse_batch(data, self.mode, self.image_shape)

    def loss_on_batch(self, batch, training: bool):
        kind, tensors = batch
        if kind == inputs.PAIRS:
            return self._pair_loss(*tensors, training=training)
        if kind == inputs.LABELLED and self.mode in (inputs.METRIC, inputs.PROXIES):
            return self._metric_loss(*tensors, training=training)
        if kind == inputs.LABELLED:
            return self._mined_triplet_loss(*tensors, training=training)
        return self._explicit_triplet_loss(*tensors, training=training)

    # ----------------------------------------------------------------- checks before tracing

    def _check_data(self, x, y=None, batch_size=None):
        """Checks datasets' structure and arrays' values before anything is traced."""
        if isinstance(x, tf.data.Dataset):
            inputs.check_dataset(x, self.mode, self.image_shape)
        elif isinstance(x, (np.ndarray, tf.Tensor, tuple, list)):
            # With two views of each image every image has a positive: no class count check.
            mode = inputs.PROXIES if self.views_per_image == 2 else self.mode
            inputs.check_arrays(x, y, mode, self.image_shape, batch_size)
            if self.proxies is not None and isinstance(y, (np.ndarray, tf.Tensor)):
                _check_class_range(np.asarray(y), self.num_classes)

    def _check_inputs(self, x, y, batch_size, validation_data=None):
        self._check_data(x, y, batch_size)
        if isinstance(validation_data, tf.data.Dataset):
            self._check_data(validation_data, None, batch_size)
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (1, 2):
            self._check_data(*validation_data, batch_size=batch_size)

    @property
    def cross_replica_loss(self) -> str:
        """How the loss combines replicas (shown in the distribution report)."""
        if self.mode == inputs.TRIPLETS:
            return "triplets mined over the global batch (embeddings and labels all_gathered)"
        if self.mode == inputs.METRIC:
            memory = " and the cross-batch memory" if self.memory is not None else ""
            return f"pairs of each anchor with the global batch{memory} (all_gathered)"
        if self.mode == inputs.PROXIES:
            return "class proxies shared by the replicas; the mean over the global batch"
        return "per-pair loss, nothing gathered across replicas"

    # ----------------------------------------------------------------- config

    nested_config_keys = ("encoder", "augmenter", "loss")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss": keras.saving.serialize_keras_object(self.loss_fn),
                "distance": self.distance,
                "embedding_dim": self.embedding_dim,
                "normalize": self.normalize,
                "num_classes": self.num_classes,
                "views_per_image": self.views_per_image,
            }
        )
        return config
