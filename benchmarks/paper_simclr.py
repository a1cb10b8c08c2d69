"""SimCLR as the paper trains it on CIFAR-10, written by hand: the baseline of time_to_accuracy.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
appendix B.9 (CIFAR-10): "we replace the first 7x7 Conv of stride 2 with 3x3 Conv of stride 1,
and also remove the first max pooling operation. For data augmentation, we use the same
Inception crop (flip and resize to 32x32) as ImageNet, and color distortion (strength=0.5),
leaving out Gaussian blur. [...] The rest of the settings (including optimizer, weight decay,
etc.) are the same as our ImageNet training" (B.1: LARS, learning rate 0.3 x BatchSize/256,
weight decay 1e-6, linear warmup then cosine decay without restarts). The authors' CIFAR-10
command (google-research/simclr README) takes learning rate 1.0 per 256 images and T=0.5.

Written only with keras layers, tf ops and tf.image: none of keras_siamese's models,
augmenters, losses, encoders or schedules, so it is an independent baseline. Where it departs
from the paper's code, it says so: the crop is drawn in one batched op (`crop_and_resize`,
bilinear) with 10 attempts then the whole image; the jitter's random order is drawn per image;
grey images are tiled to three channels (saturation, hue and grayscale then change nothing);
the warmup is 10 epochs but at most 10% of the run (the paper's ImageNet ratio, 10 of 100).
"""

from __future__ import annotations

import math
import statistics
import time

import keras
import tensorflow as tf

BATCH_SIZE = 256
LEARNING_RATE = 1.0  # per 256 images (README's CIFAR-10 command), scaled linearly with the batch
WEIGHT_DECAY = 1e-6  # B.1, coupled (added to the gradient) as in LARS
MOMENTUM = 0.9
TRUST_COEFFICIENT = 1e-3  # LARS' eta (You et al. 2017; the paper's code)
TEMPERATURE = 0.5
WARMUP_EPOCHS = 10
MAX_WARMUP_FRACTION = 0.1
VIEW_SIDE = 32
CROP_AREA = (0.08, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10
COLOR_STRENGTH = 0.5
COLOR_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2
PROJECTION_DIMS = 128
BATCH_NORM_MOMENTUM = 0.9  # the paper's code (batch_norm_decay)
RESNET18_BLOCKS = (2, 2, 2, 2)


# --------------------------------------------------------------------------- views


def _uniform(shape, low, high, seed):
    return keras.random.uniform(shape, low, high, seed=seed)


def random_resized_crop(images, side, seed):
    """Inception crops: area 8-100% of the image, aspect 3/4-4/3, resized to side x side.

    Each image draws `CROP_ATTEMPTS` boxes and takes the first that fits, else the whole image.
    Fractions of the height and width: exact aspect ratios on square images.
    """
    batch = tf.shape(images)[0]
    shape = (batch, CROP_ATTEMPTS)
    area = _uniform(shape, *CROP_AREA, seed)
    ratio = tf.exp(_uniform(shape, math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1]), seed))
    width, height = tf.sqrt(area * ratio), tf.sqrt(area / ratio)
    fits = (width <= 1.0) & (height <= 1.0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.reduce_any(fits, axis=1)
    width = tf.where(found, tf.gather(width, first, batch_dims=1), 1.0)
    height = tf.where(found, tf.gather(height, first, batch_dims=1), 1.0)
    top = _uniform((batch,), 0.0, 1.0, seed) * (1.0 - height)
    left = _uniform((batch,), 0.0, 1.0, seed) * (1.0 - width)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(batch), (side, side))


def _per_image(mask):
    return tf.reshape(mask, (-1, 1, 1, 1))


def _brightness(images, factor):
    return images * _per_image(factor)


def _contrast(images, factor):
    mean = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * _per_image(factor) + mean


def _saturation(images, factor):
    hue, saturation, value = tf.unstack(tf.image.rgb_to_hsv(images), axis=-1)
    saturation = tf.clip_by_value(saturation * tf.reshape(factor, (-1, 1, 1)), 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))


def _hue(images, shift):
    hue, saturation, value = tf.unstack(tf.image.rgb_to_hsv(images), axis=-1)
    hue = tf.math.floormod(hue + tf.reshape(shift, (-1, 1, 1)), 1.0)
    return tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))


def color_jitter(images, strength, seed):
    """SimCLR's colour distortion: brightness, contrast, saturation (0.8 s) and hue (0.2 s), in
    a random order per image, each followed by clipping to [0, 1]."""
    batch = tf.shape(images)[0]
    amount = 0.8 * strength
    factors = (
        _uniform((batch,), max(0.0, 1.0 - amount), 1.0 + amount, seed),
        _uniform((batch,), 1.0 - amount, 1.0 + amount, seed),
        _uniform((batch,), max(0.0, 1.0 - amount), 1.0 + amount, seed),
        _uniform((batch,), -0.2 * strength, 0.2 * strength, seed),
    )
    operations = (_brightness, _contrast, _saturation, _hue)
    order = tf.argsort(_uniform((batch, len(operations)), 0.0, 1.0, seed), axis=1)
    for slot in range(len(operations)):
        chosen = tf.one_hot(order[:, slot], len(operations))
        images = tf.add_n(
            [
                _per_image(chosen[:, index]) * tf.clip_by_value(op(images, factor), 0.0, 1.0)
                for index, (op, factor) in enumerate(zip(operations, factors, strict=True))
            ]
        )
    return images


def _gate(images, changed, probability, seed):
    """`changed` where a per-image coin of `probability` says so, else `images`."""
    keep = _uniform((tf.shape(images)[0],), 0.0, 1.0, seed) >= probability
    return tf.where(_per_image(keep), images, changed)


def augment(images, seed, side=VIEW_SIDE, strength=COLOR_STRENGTH):
    """One SimCLR view of RGB `images` in [0, 1]: crop, flip, jitter (p=0.8), grey (p=0.2)."""
    images = random_resized_crop(images, side, seed)
    images = _gate(images, tf.reverse(images, axis=[2]), 0.5, seed)
    images = _gate(images, color_jitter(images, strength, seed), COLOR_PROBABILITY, seed)
    grey = tf.tile(tf.image.rgb_to_grayscale(images), (1, 1, 1, 3))
    return _gate(images, grey, GRAYSCALE_PROBABILITY, seed)


def unit_rgb(images):
    """Stored images ([0, 255], 1 or 3 channels) as float RGB in [0, 1]."""
    images = tf.cast(images, tf.float32) / 255.0
    if images.shape[-1] == 1:
        images = tf.tile(images, (1, 1, 1, 3))
    return images


# --------------------------------------------------------------------------- networks


def _conv_bn(x, filters, kernel, strides, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel, strides, padding="same", use_bias=False, kernel_initializer="he_normal"
    )(x)
    x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-5)(x)
    return keras.layers.ReLU()(x) if relu else x


def _basic_block(x, filters, strides):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, relu=False)
    y = _conv_bn(x, filters, 3, strides)
    y = _conv_bn(y, filters, 3, 1, relu=False)
    return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))


def resnet18(width=64, channels=3):
    """ResNet-18 (basic blocks 2-2-2-2) with the CIFAR stem (3x3 conv, stride 1, no max-pool)
    and global average pooling: RGB [0, 1] images of any size -> `8 * width` features."""
    inputs = keras.Input((None, None, channels))
    x = _conv_bn(inputs, width, 3, 1)
    for stage, blocks in enumerate(RESNET18_BLOCKS):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width * 2**stage, strides)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="resnet18_cifar")


def projection_head(feature_dims, output_dims=PROJECTION_DIMS):
    """The 2-layer MLP g(h) = W2 ReLU(BN(W1 h)), hidden width the features' (the paper's)."""
    return keras.Sequential(
        [
            keras.Input((feature_dims,)),
            keras.layers.Dense(feature_dims, use_bias=False),
            keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-5),
            keras.layers.ReLU(),
            keras.layers.Dense(output_dims),
        ],
        name="projection_head",
    )


# --------------------------------------------------------------------------- loss, optimizer


def nt_xent(z_a, z_b, temperature=TEMPERATURE):
    """NT-Xent: the mean over the 2N views of -log softmax of the positive's cosine / T
    against every other view of the batch."""
    z = tf.math.l2_normalize(tf.concat([tf.cast(z_a, tf.float32), tf.cast(z_b, tf.float32)], 0), 1)
    count = tf.shape(z_a)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(2 * count)  # a view is never its own negative
    labels = tf.concat([tf.range(count, 2 * count), tf.range(count)], axis=0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


class LARS(keras.optimizers.Optimizer):
    """LARS (You et al. 2017) as SimCLR uses it: momentum SGD whose step on each weight
    matrix is scaled by `trust_coefficient * ||w|| / ||g + decay w||`, weight decay added to
    the gradient. Vectors (batch-norm scales and offsets, biases) get neither, as the paper's
    code excludes batch-norm and bias variables.

    v <- momentum v + lr * trust * (g + decay w);  w <- w - v
    """

    def __init__(
        self,
        learning_rate,
        momentum=MOMENTUM,
        coupled_weight_decay=WEIGHT_DECAY,
        trust_coefficient=TRUST_COEFFICIENT,
        name="lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.coupled_weight_decay = coupled_weight_decay
        self.trust_coefficient = trust_coefficient

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        rate = tf.cast(learning_rate, variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        if len(variable.shape) > 1:
            weights = tf.convert_to_tensor(variable)
            gradient = gradient + self.coupled_weight_decay * weights
            weight_norm, gradient_norm = tf.norm(weights), tf.norm(gradient)
            trust = tf.where(
                (weight_norm > 0) & (gradient_norm > 0),
                self.trust_coefficient * weight_norm / tf.maximum(gradient_norm, 1e-30),
                1.0,
            )
            rate = rate * trust
        new_velocity = self.momentum * velocity + rate * gradient
        self.assign(velocity, new_velocity)
        self.assign_sub(variable, new_velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            coupled_weight_decay=self.coupled_weight_decay,
            trust_coefficient=self.trust_coefficient,
        )
        return config


def schedule(total_steps, steps_per_epoch, batch_size=BATCH_SIZE):
    """Linear warmup (10 epochs, at most 10% of the steps) to LEARNING_RATE x batch / 256,
    then cosine decay to 0 at `total_steps`."""
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, int(MAX_WARMUP_FRACTION * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=LEARNING_RATE * batch_size / 256,
        warmup_steps=warmup,
    )


# --------------------------------------------------------------------------- model


class PaperSimCLR(keras.Model):
    """The encoder and its projection head trained on two views per image with NT-Xent.

    Called on stored images (uint8, any side, 1 or 3 channels) it returns the encoder's pooled
    features of the whole image resized to the views' side (the scale the views show it at).
    """

    def __init__(self, encoder, head, view_side=VIEW_SIDE, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.head, self.view_side = encoder, head, view_side
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, images, training=False):
        images = unit_rgb(images)
        if images.shape[1] != self.view_side or images.shape[2] != self.view_side:
            images = tf.image.resize(images, (self.view_side, self.view_side))
        return self.encoder(images, training=training)

    def train_step(self, data):
        images = unit_rgb(keras.utils.unpack_x_y_sample_weight(data)[0])
        view_a = augment(images, self.seed_generator, self.view_side)
        view_b = augment(images, self.seed_generator, self.view_side)
        with tf.GradientTape() as tape:
            features = self.encoder(tf.concat([view_a, view_b], 0), training=True)
            z_a, z_b = tf.split(self.head(features, training=True), 2, axis=0)
            loss = nt_xent(z_a, z_b)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def build(total_steps, steps_per_epoch, batch_size=BATCH_SIZE, width=64, seed=0):
    """The compiled baseline: ResNet-18 (width `width`), its head, LARS on `schedule`."""
    keras.utils.set_random_seed(seed)
    encoder = resnet18(width)
    model = PaperSimCLR(encoder, projection_head(encoder.output_shape[-1]), seed=seed)
    model.compile(optimizer=LARS(schedule(total_steps, steps_per_epoch, batch_size)))
    return model


def step_seconds(model, batch, rounds=3):
    """The median seconds of `model`'s train step on `batch` (after one traced step)."""
    model.train_on_batch(batch)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        model.train_on_batch(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def recipe(width=64, batch_size=BATCH_SIZE):
    """The baseline's values by name (what a results file records)."""
    names = (
        "LEARNING_RATE", "WEIGHT_DECAY", "MOMENTUM", "TRUST_COEFFICIENT", "TEMPERATURE",
        "WARMUP_EPOCHS", "MAX_WARMUP_FRACTION", "VIEW_SIDE", "CROP_AREA", "COLOR_STRENGTH",
        "COLOR_PROBABILITY", "GRAYSCALE_PROBABILITY", "PROJECTION_DIMS",
    )  # fmt: skip
    values = {name.lower(): globals()[name] for name in names}
    encoder = f"resnet18 (CIFAR stem, width {width}, global average pooling)"
    return {"encoder": encoder, "optimizer": "lars", "batch_size": batch_size, **values}
