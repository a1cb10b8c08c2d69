"""SwAV (Caron et al. 2020): online clustering with swapped predictions over multi-crop views."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import augment, distribute, heads, validation
from keras_siamese.losses.sinkhorn import check_sinkhorn_arguments
from keras_siamese.losses.swav import swav
from keras_siamese.models.two_view_model import TwoViewModel, normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class SwAVPrototypes(keras.layers.Layer):
    """SwAV's prototypes: `num_prototypes` unit vectors, scored by a dot product.

    "we learn a set of K trainable prototype vectors {c_1, ..., c_K} ... we normalize the
    prototypes" (Caron et al. 2020, section 3.1): the layer holds `C` of shape
    `(dims, num_prototypes)`, its columns L2-normalised when built; `call(z)` returns
    `z @ C`, the cosine similarities of L2-normalised `z` with every prototype. SwAV calls
    `normalize()` after every optimizer update, so the prototypes stay on the unit sphere.
    The kernel takes replica 0's value when assigned inside a replica (all replicas compute
    the same one), so replicas never drift apart.

    Args:
        num_prototypes: K, the number of prototypes (>= 1).
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> prototypes = SwAVPrototypes(16)
        >>> prototypes(keras.ops.normalize(keras.random.normal((4, 8)), axis=1)).shape
        TensorShape([4, 16])
    """

    def __init__(self, num_prototypes: int = 3000, **kwargs):
        num_prototypes = validation.check_integer("num_prototypes", num_prototypes)
        kwargs.setdefault("dtype", "float32")  # scores feed a softmax at temperature 0.1
        super().__init__(**kwargs)
        self.num_prototypes = num_prototypes

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(int(input_shape[-1]), self.num_prototypes),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
            aggregation="only_first_replica",
        )
        self.normalize()

    def normalize(self):
        """L2-normalises every prototype (each column of the kernel) in place."""
        self.kernel.assign(ops.normalize(self.kernel, axis=0))

    def call(self, z, frozen=None):
        """Scores `z @ C`; with `frozen` True, no gradient reaches the prototypes."""
        kernel = self.kernel
        if frozen is not None:
            kernel = ops.where(frozen, ops.stop_gradient(kernel), kernel)
        return ops.matmul(ops.cast(z, self.compute_dtype), kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_prototypes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_prototypes": self.num_prototypes})
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class SwAV(TwoViewModel):
    """SwAV: predict the cluster codes of one view from the other views, codes by Sinkhorn.

    "we compute a code from an augmented version of the image and predict this code from
    other augmented versions of the same image" (Caron et al. 2020,
    https://arxiv.org/abs/2006.09882). Every view goes through the encoder and a projection
    head; its L2-normalised projection is scored against the prototypes
    (`SwAVPrototypes`); the codes of each global view come from the Sinkhorn-Knopp
    algorithm, which spreads the batch equally over the prototypes and so prevents
    collapse; every other view predicts them (`keras_siamese.losses.swav`). Under a
    `tf.distribute` strategy, Sinkhorn runs on the global batch.

    Multi-crop: with a `keras_siamese.augment.MultiCrop` augmenter the first
    `num_global_views` views are the high-resolution ones whose codes are the targets, and
    every view, local ones included, predicts. With one augmenter or a pair, the two views
    are both global. A fixed-size encoder sees the local views resized to its input size.

    Small batches: SwAV "store[s] features from the previous batches" when the batch is
    small (section 4 and appendix; 3840 features for a batch of 256). `queue_size` keeps the
    last `queue_size` projections of each global view (of the global batch) in a
    non-trainable variable, saved in `.keras` files and by `BackupAndRestore`; they join the
    batch in Sinkhorn from the second step on (the filled part). The prototypes are frozen
    (no gradient) for the first `freeze_prototypes_steps` steps ("freezing the prototypes
    during the first epoch of training", appendix), and L2-normalised after every update.

    Metrics: `loss`, and `output_std`, the per-dimension std of the L2-normalised projection
    times sqrt(d): about 1 when healthy, towards 0 when collapsed (the metric
    `keras_siamese.callbacks.CollapseMonitor` watches).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: view augmentation: a `MultiCrop`, one layer or a pair of layers (two
            global views). None: SwAV's multi-crop (`augment.multi_crop_augmenter`: 2 global
            views and 6 local ones; a fixed-size encoder sees the local ones resized up, which
            makes the step about 4 times as long as with two views).
        num_prototypes: K (paper: 3000 on ImageNet).
        projection_dims: sizes of the projection head, the last one the projection (paper:
            a 2048 hidden layer and 128 outputs).
        temperature: softmax temperature of the predictions (paper: 0.1).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (paper: 3).
        epsilon: Sinkhorn's entropy weight (paper: 0.05).
        queue_size: projections of earlier batches kept per global view for Sinkhorn; 0 for
            none (paper: 3840 for batches of 256).
        freeze_prototypes_steps: steps without prototype updates at the start (paper: one
            epoch; 0 for none).
        sync_batch_norm: global BatchNorm for the encoder and the head: `"auto"` (default,
            synchronised when more than one replica is in sync), True or False.
        **kwargs: `TwoViewModel` and `keras.Model` arguments.

    Raises:
        ValueError: for a bad argument (a count below its minimum, a temperature or epsilon
            that is not finite and > 0), or the errors of `TwoViewModel`.
        TypeError: for an integer argument that is not an integer, or a number that is not a
            number.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = SwAV(encoder, num_prototypes=100, projection_dims=(512, 128),
        ...              queue_size=1024, freeze_prototypes_steps=195)
        >>> model.compile(optimizer=keras_siamese.optimizers.LARS(0.6))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
        >>> features = model.predict(test_images)
    """

    metric_names = ("output_std",)
    collapse_metric = "output_std"
    accepts_multi_crop = True
    cross_replica_loss = "Sinkhorn codes and swapped predictions of the all_gathered global batch"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter: keras.layers.Layer | tuple | None = None,
        num_prototypes: int = 3000,
        projection_dims: tuple[int, ...] = (2048, 128),
        temperature: float = 0.1,
        sinkhorn_iterations: int = 3,
        epsilon: float = 0.05,
        queue_size: int = 0,
        freeze_prototypes_steps: int = 0,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        num_prototypes = validation.check_integer("num_prototypes", num_prototypes)
        projection_dims = validation.check_dims("projection_dims", projection_dims)
        temperature = validation.check_temperature(temperature)
        sinkhorn_iterations, epsilon = check_sinkhorn_arguments(sinkhorn_iterations, epsilon)
        queue_size = validation.check_integer("queue_size", queue_size, minimum=0)
        freeze_prototypes_steps = validation.check_integer(
            "freeze_prototypes_steps", freeze_prototypes_steps, minimum=0
        )
        super().__init__(encoder, augmenter, sync_batch_norm=sync_batch_norm, **kwargs)
        self.num_prototypes = num_prototypes
        self.temperature = temperature
        self.sinkhorn_iterations = sinkhorn_iterations
        self.epsilon = epsilon
        self.queue_size = queue_size
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.projector = heads.ProjectionHead(
            projection_dims, sync_batch_norm=self.synchronized_batch_norm, name="projector"
        )
        self.projection_dims = self.projector.dims
        self.prototypes = SwAVPrototypes(num_prototypes, name="prototypes")
        self.queue = None
        self.queue_filled = None
        if queue_size:
            # Identical on every replica (filled from the gathered batch): replica 0 writes.
            self.queue = self.add_weight(
                shape=(self.num_global_views, queue_size, projection_dims[-1]),
                initializer="zeros",
                trainable=False,
                name="queue",
                aggregation="only_first_replica",
            )
            self.queue_filled = self.add_weight(
                shape=(),
                dtype="int32",
                initializer="zeros",
                trainable=False,
                name="queue_filled",
                aggregation="only_first_replica",
            )
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        """SwAV's multi-crop: 2 global views and 6 local ones of 96/224 of the image size."""
        return augment.multi_crop_augmenter(image_shape[:2], channels=image_shape[-1])

    def build(self, input_shape=None):
        """Creates the head and prototype weights (no statistic moves). Idempotent."""
        if self.built:
            return
        z = self.projector(tf.zeros((2, self.feature_dim)), training=False)
        self.prototypes(ops.normalize(tf.cast(z, tf.float32), axis=1))
        self.built = True

    # ----------------------------------------------------------------- the loss

    def loss_on_views(self, views, training):
        features = self.encode_views(views, training=training)
        return self.loss_on_view_features(features, training=training)

    def loss_on_features(self, features_a, features_b, training):
        """The loss of two global views' encoder features."""
        return self.loss_on_view_features([features_a, features_b], training=training)

    def loss_on_view_features(self, features, training):
        """Returns `(loss, metrics)` for the encoder features of every view (global first)."""
        global_views = min(self.num_global_views, len(features))
        # One head pass on every view's features, as SwAV's code does.
        z = self.projector(tf.concat(features, axis=0), training=training)
        z = ops.normalize(tf.cast(z, tf.float32), axis=1)
        frozen = None
        if training and self.freeze_prototypes_steps:
            frozen = self.optimizer.iterations < self.freeze_prototypes_steps
        scores = tf.split(self.prototypes(z, frozen=frozen), len(features), axis=0)
        queue_scores = queue_mask = None
        if self.queue is not None:
            queue_scores = [self.prototypes(self.queue[view]) for view in range(global_views)]
            queue_mask = tf.range(self.queue_size) < self.queue_filled
        loss = swav(
            scores[:global_views],
            scores[global_views:],
            temperature=self.temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
            epsilon=self.epsilon,
            queue_scores=queue_scores,
            queue_mask=queue_mask,
        )
        if training and self.queue is not None:
            self._enqueue(tf.split(z, len(features), axis=0)[:global_views])
        return loss, {"output_std": normalized_std(z[: tf.shape(features[0])[0]])}

    def _enqueue(self, projections):
        """Puts the global batch's projections of each global view first in the queue."""
        if len(projections) != self.num_global_views:  # two views given to a multi-crop model
            return
        batches = [distribute.all_gather(tf.stop_gradient(z)) for z in projections]
        newest = tf.stack(batches, axis=0)
        queue = tf.concat([newest, self.queue], axis=1)[:, : self.queue_size]
        self.queue.assign(queue)
        filled = self.queue_filled + tf.shape(newest)[1]
        self.queue_filled.assign(tf.minimum(filled, self.queue_size))

    def after_optimizer_step(self):
        self.prototypes.normalize()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_prototypes": self.num_prototypes,
                "projection_dims": self.projection_dims,
                "temperature": self.temperature,
                "sinkhorn_iterations": self.sinkhorn_iterations,
                "epsilon": self.epsilon,
                "queue_size": self.queue_size,
                "freeze_prototypes_steps": self.freeze_prototypes_steps,
            }
        )
        return config
