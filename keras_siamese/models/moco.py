"""MoCo v2 and v3 (He et al. 2020; Chen et al. 2020, 2021): contrast with momentum keys."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import augment, distribute, heads, validation
from keras_siamese.losses.info_nce import info_nce
from keras_siamese.models.momentum import MomentumModel, clone_layer
from keras_siamese.models.two_view_model import contrastive_metrics

VERSIONS = ("v2", "v3")
_PROJECTION_DIM = {"v2": 128, "v3": 256}
_HIDDEN_DIM = {"v2": 2048, "v3": 4096}


@keras.saving.register_keras_serializable(package="keras_siamese")
class MoCoProjectionHead(keras.layers.Layer):
    """MoCo v2's projection head: Dense + ReLU, then a linear output; no BatchNorm.

    Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning"
    (https://arxiv.org/abs/2003.04297), section 2: "we replace the fc head in MoCo with a
    2-layer MLP head (hidden layer 2048-d, with ReLU)"; the output is MoCo's 128-d.

    Args:
        hidden_dim: width of the hidden layer.
        output_dim: size of the output.

    Example:
        >>> head = MoCoProjectionHead(hidden_dim=32, output_dim=8)
        >>> head(np.zeros((4, 16), "float32")).shape
        TensorShape([4, 8])
    """

    def __init__(self, hidden_dim: int = 2048, output_dim: int = 128, **kwargs):
        hidden_dim = validation.check_integer("hidden_dim", hidden_dim)
        output_dim = validation.check_integer("output_dim", output_dim)
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.hidden = keras.layers.Dense(hidden_dim, activation="relu", name="hidden0")
        self.output_dense = keras.layers.Dense(output_dim, name="output")

    def build(self, input_shape):
        self.hidden.build(tuple(input_shape))
        self.output_dense.build((input_shape[0], self.hidden_dim))

    def call(self, features, training=None):
        return self.output_dense(self.hidden(features))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "output_dim": self.output_dim})
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class MoCo(MomentumModel):
    """MoCo: each query must pick its momentum-encoded key out of many negatives (InfoNCE).

    "We maintain the dictionary as a queue of data samples: the encoded representations
    of the current mini-batch are enqueued, and the oldest are dequeued ... the key encoder
    is a momentum-based moving average of the query encoder" (He et al. 2020,
    https://arxiv.org/abs/1911.05722, section 3.2). Two versions:

    - `"v2"` (Chen et al. 2020, https://arxiv.org/abs/2003.04297): a 2-layer MLP head
      without BatchNorm (`MoCoProjectionHead`, 2048 -> 128), the query from view a and the
      key from view b by the momentum encoder, `info_nce(q, k, negatives=queue, T)`, then
      the keys of the **global** batch (gathered across replicas) replace the oldest
      `queue_size` entries. The queue (`queue`, `queue_pointer`) is a non-trainable
      variable, saved in `.keras` files and by `BackupAndRestore`. The momentum is
      constant (paper: 0.999 for batches of 256) unless `final_momentum` is given.
    - `"v3"` (Chen et al. 2021, https://arxiv.org/abs/2104.02057, section 3 and
      Algorithm 1): no queue; the keys of the global batch are the negatives, a projector
      with BatchNorm on every layer (its output's without scale and offset) and a
      predictor (both hidden 4096, output 256), and the symmetrised loss
      `2T (info_nce(p_a, k_b) + info_nce(p_b, k_a))`. The momentum rises from `momentum`
      to 1 with a cosine schedule.

    MoCo's shuffling BN is not needed: with `sync_batch_norm` the statistics are global.
    The default augmentation is MoCo v2's (SimSiam's recipe: crops of 20-100%, colour
    strength 0.5, blur above 64 px); MoCo v3 used BYOL's asymmetric pair
    (`BYOL.default_augmenter(image_shape)`).

    Metrics: `loss`, `contrastive_accuracy` (how often the positive key gets the largest
    logit) and `representation_std` (per-dimension std of the L2-normalised features
    times sqrt(d): about 1 when spread out, near 0 when collapsed).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation (see above) or None.
        version: `"v2"` or `"v3"`.
        queue_size: negatives kept in the queue (v2; at least the global batch size).
        momentum: the key encoder's momentum (its start value for v3).
        temperature: the InfoNCE temperature (v2 paper: 0.2; v3: 1.0 for ResNets).
        projection_dim: output size of the heads; None for 128 (v2) or 256 (v3).
        hidden_dim: hidden width of the heads; None for 2048 (v2) or 4096 (v3).
        final_momentum: the momentum at the end of training; None for `momentum` (v2)
            or 1 (v3).
        momentum_steps: the cosine schedule's length; None for the first `fit`'s.
        sync_batch_norm: global BatchNorm: `"auto"`, True or False.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: for an unknown `version` or bad sizes, temperature or momenta.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = MoCo(encoder, version="v2", queue_size=4096, temperature=0.2)
        >>> model.compile(optimizer=keras.optimizers.SGD(0.06, momentum=0.9))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=200)
    """

    metric_names = ("contrastive_accuracy", "representation_std")
    collapse_metric = "representation_std"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        version: str = "v2",
        queue_size: int = 4096,
        momentum: float = 0.99,
        temperature: float = 0.2,
        projection_dim: int | None = None,
        hidden_dim: int | None = None,
        final_momentum: float | None = None,
        momentum_steps: int | None = None,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        if version not in VERSIONS:
            raise ValueError(
                f"Argument `version` must be one of {VERSIONS}. Received: version={version!r}"
            )
        queue_size = validation.check_integer("queue_size", queue_size)
        temperature = validation.check_temperature(temperature)
        if projection_dim is None:
            projection_dim = _PROJECTION_DIM[version]
        if hidden_dim is None:
            hidden_dim = _HIDDEN_DIM[version]
        projection_dim = validation.check_integer("projection_dim", projection_dim)
        hidden_dim = validation.check_integer("hidden_dim", hidden_dim)
        if final_momentum is None:
            final_momentum = momentum if version == "v2" else 1.0
        super().__init__(
            encoder,
            augmenter,
            momentum=momentum,
            final_momentum=final_momentum,
            momentum_steps=momentum_steps,
            sync_batch_norm=sync_batch_norm,
            **kwargs,
        )
        self.version = version
        self.queue_size = queue_size
        self.temperature = temperature
        self.projection_dim = projection_dim
        self.hidden_dim = hidden_dim
        if version == "v2":
            self.projector = MoCoProjectionHead(hidden_dim, projection_dim, name="projector")
            self.predictor = None
        else:
            self.projector = heads.ProjectionHead(
                (hidden_dim, projection_dim),
                output_batch_norm=True,
                output_affine=False,
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
        """MoCo v2's augmentation, which SimSiam reuses (`augment.simsiam_augmenter`)."""
        return augment.simsiam_augmenter(image_shape[:2], channels=image_shape[-1])

    @property
    def cross_replica_loss(self) -> str:
        if self.version == "v2":
            return "InfoNCE against the queue; the keys of all replicas enqueued (all_gather)"
        return "InfoNCE with the keys all_gathered from every replica (global batch)"

    def negatives_per_anchor(self, global_batch_size: int) -> int:
        """v2: the queue; v3: the keys of the other images of the global batch."""
        return self.queue_size if self.version == "v2" else global_batch_size - 1

    def target_pairs(self):
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def build_heads(self):
        features = tf.zeros((2, self.feature_dim))
        projections = self.projector(features)
        if self.predictor is not None:
            self.predictor(projections)
        self.target_projector(features)
        if self.version == "v2":
            self.queue = self.add_weight(
                shape=(self.queue_size, self.projection_dim),
                initializer="random_normal",
                trainable=False,
                name="queue",
            )
            self.queue.assign(ops.normalize(self.queue, axis=-1))
            self.queue_pointer = self.add_weight(
                shape=(), dtype="int64", initializer="zeros", trainable=False, name="queue_pointer"
            )

    def enqueue(self, keys) -> None:
        """Writes the L2-normalised keys of the global batch over the oldest queue entries.

        Under a multi-replica strategy the keys of every replica are gathered first
        (replica 0's first), so every replica writes the same global batch, in order.

        Args:
            keys: `(n, projection_dim)` keys of this replica's images.

        Raises:
            ValueError: if the global batch is larger than the queue.
        """
        keys = distribute.all_gather(ops.normalize(ops.cast(keys, "float32"), axis=-1))
        count = keys.shape[0]
        if count is not None and count > self.queue_size:
            raise ValueError(
                f"MoCo v2's queue must hold at least one global batch of keys. Received: "
                f"queue_size={self.queue_size} for a global batch of {count}; pass a larger "
                "`queue_size` or use smaller batches"
            )
        count = ops.cast(ops.shape(keys)[0], "int64")
        indices = (self.queue_pointer + ops.arange(count, dtype="int64")) % self.queue_size
        self.queue.assign(ops.scatter_update(self.queue, indices[:, None], keys))
        self.queue_pointer.assign((self.queue_pointer + count) % self.queue_size)

    def loss_on_views(self, views, training):
        view_a, view_b = views[:2]
        if self.version == "v2":
            features = self.encode_views([view_a], training=training)[0]
            query = self.projector(features, training=training)
            key = self.target_projector(self.encode_targets([view_b], training), training=training)
            key = tf.stop_gradient(key)
            loss, logits, labels = info_nce(
                query, key, self.queue, temperature=self.temperature, return_logits=True
            )
            if training:
                self.enqueue(key)
        else:
            features, features_b = self.encode_views([view_a, view_b], training=training)
            p_a = self.predictor(self.projector(features, training=training), training=training)
            p_b = self.predictor(self.projector(features_b, training=training), training=training)
            target_a, target_b = tf.split(self.encode_targets([view_a, view_b], training), 2)
            k_a = tf.stop_gradient(self.target_projector(target_a, training=training))
            k_b = tf.stop_gradient(self.target_projector(target_b, training=training))
            loss_a, logits, labels = info_nce(
                p_a, k_b, temperature=self.temperature, return_logits=True
            )
            loss_b = info_nce(p_b, k_a, temperature=self.temperature)
            loss = 2.0 * self.temperature * (loss_a + loss_b)
        return loss, contrastive_metrics(logits, labels, features)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "version": self.version,
                "queue_size": self.queue_size,
                "temperature": self.temperature,
                "projection_dim": self.projection_dim,
                "hidden_dim": self.hidden_dim,
            }
        )
        return config
