"""DINO (Caron et al. 2021): self-distillation from a momentum teacher, with multi-crop."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_siamese import augment, distribute, validation
from keras_siamese.losses.dino import dino_cross_entropy
from keras_siamese.models.momentum import MomentumModel, clone_layer
from keras_siamese.models.two_view_model import normalized_std


@keras.saving.register_keras_serializable(package="keras_siamese")
class DINOHead(keras.layers.Layer):
    """DINO's head: an MLP with GELU to a bottleneck, L2 normalisation, a weight-normalised
    linear layer to `output_dim` prototypes.

    Caron et al. 2021 (https://arxiv.org/abs/2104.14294), appendix: "The projection head
    consists of a 3-layer multi-layer perceptron (MLP) with hidden dimension 2048 followed
    by l2 normalization and a weight normalized fully connected layer with K dimensions";
    the MLP ends in a 256-d bottleneck and has no BatchNorm by default (`batch_norm`
    adds it, as their `use_bn_in_head`). The last layer's weight norm is fixed to 1 (their
    `norm_last_layer=True`): its kernel is divided by each output unit's norm, so only
    the directions are learned. Dense kernels start from a truncated normal of std 0.02,
    as in their code.

    Args:
        output_dim: the number of outputs `K` (paper: 65536).
        hidden_dim: width of the hidden layers.
        bottleneck_dim: output size of the MLP, before the normalisation.
        mlp_layers: MLP layers (at least 1; 1 is a single linear layer to the bottleneck).
        batch_norm: BatchNorm after each hidden layer.
        sync_batch_norm: synchronise those BatchNorm statistics across replicas.

    Example:
        >>> head = DINOHead(output_dim=64, hidden_dim=32, bottleneck_dim=16)
        >>> head(np.zeros((4, 8), "float32")).shape
        TensorShape([4, 64])
    """

    def __init__(
        self,
        output_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        mlp_layers: int = 3,
        batch_norm: bool = False,
        sync_batch_norm: bool = False,
        **kwargs,
    ):
        output_dim = validation.check_integer("output_dim", output_dim)
        hidden_dim = validation.check_integer("hidden_dim", hidden_dim)
        bottleneck_dim = validation.check_integer("bottleneck_dim", bottleneck_dim)
        mlp_layers = validation.check_integer("mlp_layers", mlp_layers)
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.bottleneck_dim = bottleneck_dim
        self.mlp_layers = mlp_layers
        self.batch_norm = bool(batch_norm)
        self.sync_batch_norm = bool(sync_batch_norm)
        sizes = [hidden_dim] * (mlp_layers - 1) + [bottleneck_dim]
        self.dense_layers = [
            keras.layers.Dense(
                size,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                name=f"dense{index}",
            )
            for index, size in enumerate(sizes)
        ]
        self.norms = [
            keras.layers.BatchNormalization(
                synchronized=self.sync_batch_norm, name=f"dense{index}_batch_norm"
            )
            for index in range(mlp_layers - 1)
            if self.batch_norm
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for index, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            if index < len(self.norms):
                self.norms[index].build(shape)
        self.prototypes = self.add_weight(
            shape=(self.bottleneck_dim, self.output_dim), name="prototypes"
        )

    def call(self, features, training=None):
        x = features
        for index, dense in enumerate(self.dense_layers[:-1]):
            x = dense(x)
            if self.batch_norm:
                x = self.norms[index](x, training=training)
            x = keras.activations.gelu(x, approximate=False)
        # The norms in float32: in float16 the squares of small bottleneck outputs (a
        # truncated normal of std 0.02 per layer) underflow to 0, and 0 / 0 is NaN.
        x = ops.normalize(ops.cast(self.dense_layers[-1](x), "float32"), axis=-1)
        prototypes = ops.normalize(ops.cast(self.prototypes, "float32"), axis=0)
        dtype = self.compute_dtype
        return ops.matmul(ops.cast(x, dtype), ops.cast(prototypes, dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "hidden_dim": self.hidden_dim,
                "bottleneck_dim": self.bottleneck_dim,
                "mlp_layers": self.mlp_layers,
                "batch_norm": self.batch_norm,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config


def _check_distillation(
    teacher_temperature,
    warmup_teacher_temperature,
    teacher_temperature_warmup_steps,
    student_temperature,
    center_momentum,
    head_batch_norm,
) -> dict:
    """Checks DINO's own arguments; returns the checked values by argument name."""
    teacher_temperature = validation.check_temperature(teacher_temperature, "teacher_temperature")
    warmup_teacher_temperature = validation.check_temperature(
        warmup_teacher_temperature, "warmup_teacher_temperature"
    )
    teacher_temperature_warmup_steps = validation.check_integer(
        "teacher_temperature_warmup_steps", teacher_temperature_warmup_steps, minimum=0
    )
    student_temperature = validation.check_temperature(student_temperature, "student_temperature")
    center_momentum = validation.check_number(
        "center_momentum", center_momentum, 0.0, 1.0, include_maximum=False
    )
    if not isinstance(head_batch_norm, bool):
        raise TypeError(
            "Argument `head_batch_norm` must be a bool. "
            f"Received: head_batch_norm={head_batch_norm!r}"
        )
    return {
        "teacher_temperature": teacher_temperature,
        "warmup_teacher_temperature": warmup_teacher_temperature,
        "teacher_temperature_warmup_steps": teacher_temperature_warmup_steps,
        "student_temperature": student_temperature,
        "center_momentum": center_momentum,
    }


@keras.saving.register_keras_serializable(package="keras_siamese")
class DINO(MomentumModel):
    """DINO: the student matches the centred, sharpened output of a momentum teacher.

    "We train the student network to match the output of a given teacher network ...
    Both networks share the same architecture g with different sets of parameters ...
    all crops are passed through the student while only the global views are passed
    through the teacher" (Caron et al. 2021, https://arxiv.org/abs/2104.14294,
    section 3.1). The loss is `keras_siamese.losses.dino` over every (teacher view,
    student view) pair of different views, with the teacher's outputs centred by
    `center` (a non-trainable variable, updated after each training step as
    `center <- center_momentum * center + (1 - center_momentum) * mean`, the mean over the
    global batch of teacher outputs, gathered across replicas) and sharpened by a low
    `teacher_temperature`, linearly warmed up from `warmup_teacher_temperature` over
    `teacher_temperature_warmup_steps`. The teacher (`target_encoder`, `target_head`)
    is a moving average of the student (`encoder`, `head`) whose momentum rises from
    `momentum` to `final_momentum` with a cosine schedule.

    Views: with a `keras_siamese.augment.MultiCrop` augmenter, the first
    `num_global_views` views are global (teacher and student) and the rest local (student
    only); with a pair of augmenters (or one), the two views are both global. The default
    is DINO's multi-crop (2 global + 8 local views). Local views reach an encoder of any size
    (`input_shape=(None, None, C)` with `image_size=`) at their own size, a fixed-size
    encoder resized to its input. Not included: freezing the last layer in the first epoch
    and gradient clipping (use the optimizer's `clipnorm`).

    Metrics: `loss` and `representation_std` (per-dimension std of the L2-normalised
    features of the first view times sqrt(d): near 0 when collapsed).

    Args:
        encoder: `keras.Model` from float images in [0, 1] to features.
        augmenter: the views (see above), or None for the default.
        output_dim: the head's outputs `K` (paper: 65536).
        hidden_dim: the head's hidden width (paper: 2048).
        bottleneck_dim: the head's bottleneck (paper: 256).
        head_batch_norm: BatchNorm in the head's hidden layers (paper: none).
        teacher_temperature: the teacher's temperature after warmup (paper: 0.04-0.07).
        warmup_teacher_temperature: the teacher's temperature at step 0.
        teacher_temperature_warmup_steps: steps of the linear warmup (0: none).
        student_temperature: the student's temperature (paper: 0.1).
        center_momentum: momentum of the center (paper: 0.9).
        momentum: the teacher's base momentum (paper: 0.996).
        final_momentum: the teacher's momentum at the end of training (paper: 1).
        momentum_steps: the cosine schedule's length; None for the first `fit`'s.
        sync_batch_norm: global BatchNorm: `"auto"`, True or False.
        **kwargs: `keras.Model` arguments.

    Example:
        >>> encoder = keras_siamese.encoders.resnet(depth=18, input_shape=(32, 32, 3))
        >>> model = DINO(encoder, output_dim=4096, teacher_temperature=0.04)
        >>> model.compile(optimizer=keras.optimizers.AdamW(5e-4, weight_decay=0.04))
        >>> model.fit(images_dataset.batch(256, drop_remainder=True), epochs=100)
    """

    accepts_multi_crop = True
    metric_names = ("representation_std",)
    collapse_metric = "representation_std"
    cross_replica_loss = "per-example loss; the teacher's center from the global batch mean"

    def __init__(
        self,
        encoder: keras.Model,
        augmenter=None,
        output_dim: int = 4096,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        head_batch_norm: bool = False,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature_warmup_steps: int = 0,
        student_temperature: float = 0.1,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        momentum_steps: int | None = None,
        sync_batch_norm: bool | str = "auto",
        **kwargs,
    ):
        checked = _check_distillation(
            teacher_temperature,
            warmup_teacher_temperature,
            teacher_temperature_warmup_steps,
            student_temperature,
            center_momentum,
            head_batch_norm,
        )
        super().__init__(
            encoder,
            augmenter,
            momentum=momentum,
            final_momentum=final_momentum,
            momentum_steps=momentum_steps,
            sync_batch_norm=sync_batch_norm,
            **kwargs,
        )
        self.teacher_temperature = checked["teacher_temperature"]
        self.warmup_teacher_temperature = checked["warmup_teacher_temperature"]
        self.teacher_temperature_warmup_steps = checked["teacher_temperature_warmup_steps"]
        self.student_temperature = checked["student_temperature"]
        self.center_momentum = checked["center_momentum"]
        self.head_batch_norm = head_batch_norm
        self.head = DINOHead(
            output_dim,
            hidden_dim,
            bottleneck_dim,
            batch_norm=head_batch_norm,
            sync_batch_norm=self.synchronized_batch_norm,
            name="head",
        )
        self.target_head = clone_layer(self.head, "target_head")
        self.build((None, *self.image_shape))

    @classmethod
    def default_augmenter(cls, image_shape):
        """DINO's multi-crop: 2 global views (40-100%) and 8 local ones (5-40%) of 96/224 of
        the image size, with BYOL's colour jitter (`augment.multi_crop_augmenter`)."""
        return augment.multi_crop_augmenter(
            image_shape[:2],
            channels=image_shape[-1],
            local_views=8,
            global_crop_area=(0.4, 1.0),
            local_crop_area=(0.05, 0.4),
            color_jitter=(0.4, 0.4, 0.2, 0.1),
        )

    def target_pairs(self):
        return [(self.encoder, self.target_encoder), (self.head, self.target_head)]

    def build_heads(self):
        features = tf.zeros((2, self.feature_dim))
        self.head(features)
        self.target_head(features)
        self.center = self.add_weight(
            shape=(self.head.output_dim,), initializer="zeros", trainable=False, name="center"
        )

    def current_teacher_temperature(self):
        """The teacher's temperature at the current step (linear warmup, then constant)."""
        if self.teacher_temperature_warmup_steps == 0:
            return self.teacher_temperature
        step = tf.cast(self.momentum_update.step, tf.float32)
        progress = tf.minimum(step / float(self.teacher_temperature_warmup_steps), 1.0)
        start, end = self.warmup_teacher_temperature, self.teacher_temperature
        return start + (end - start) * progress

    def update_center(self, teacher_outputs) -> None:
        """Moves `center` towards the mean teacher output of the global batch.

        Args:
            teacher_outputs: this replica's teacher outputs, one `(n, K)` tensor per view.
        """
        outputs = ops.cast(ops.concatenate(teacher_outputs, axis=0), "float32")
        sums = distribute.all_gather(ops.sum(outputs, axis=0, keepdims=True))
        counts = distribute.all_gather(ops.reshape(ops.shape(outputs)[0], (1,)))
        mean = ops.sum(sums, axis=0) / ops.cast(ops.sum(counts), "float32")
        momentum = self.center_momentum
        self.center.assign(self.center * momentum + mean * (1.0 - momentum))

    def loss_on_views(self, views, training):
        global_views = self.num_global_views
        features = self.encode_views(views, training=training)
        student = tf.split(
            self.head(tf.concat(features, axis=0), training=training), len(views), axis=0
        )
        teacher_features = self.encode_targets(views[:global_views], training)
        teacher = tf.split(
            tf.stop_gradient(self.target_head(teacher_features, training=training)),
            global_views,
            axis=0,
        )
        loss = dino_cross_entropy(
            teacher,
            student,
            self.center,
            self.current_teacher_temperature(),
            self.student_temperature,
        )
        if training:
            self.update_center(teacher)
        return loss, {"representation_std": normalized_std(features[0])}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.head.output_dim,
                "hidden_dim": self.head.hidden_dim,
                "bottleneck_dim": self.head.bottleneck_dim,
                "head_batch_norm": self.head_batch_norm,
                "teacher_temperature": self.teacher_temperature,
                "warmup_teacher_temperature": self.warmup_teacher_temperature,
                "teacher_temperature_warmup_steps": self.teacher_temperature_warmup_steps,
                "student_temperature": self.student_temperature,
                "center_momentum": self.center_momentum,
            }
        )
        return config
