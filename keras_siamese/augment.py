"""The SimCLR augmentation, as one Keras layer that runs inside the training step.

Value range, everywhere in keras_siamese: images enter as uint8 or float in
[0, 255]; the augmenter (and every model's `call`) divides by 255, so encoders see
float32 in [0, 1].

Why not a `keras.Sequential` of keras-cv layers: measured here on a batch of
256x32x32x3 inside a `tf.function` (TF 2.21, 2 CPU cores), keras-cv 0.9's
`RandomCropAndResize` takes 20.6 ms where one `tf.image.crop_and_resize` over
per-image boxes takes 1.8 ms, and keras-cv/Keras colour layers draw their random
numbers from a seed state that every replica of a `tf.distribute` strategy shares,
so all replicas would crop and colour their images identically. This layer applies
the same operations (the SimCLR paper's appendix A) vectorised over the batch, with
stateless random ops whose seed is folded with the replica id, and gates each
operation with an in-graph per-image mask (no `RandomApply`, whose Python
conditional breaks Keras' symbolic build). Its `crop_and_resize` computes the values
of `tf.image.crop_and_resize` with two batched matmuls, because XLA (hence TPU and
`jit_compile=True`) has no `CropAndResize` kernel.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from keras_siamese import distribute

_CROP_TRIES = 10
_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _as_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        size = tuple(image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in size):
        raise ValueError(
            "Argument `image_size` must be a positive int or (height, width). "
            f"Received: image_size={image_size!r}"
        )
    return size


def _as_float(value) -> float:
    """`float(value)`, or NaN (which fails every range check) for non-numbers."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check_range(name: str, value, low: float, high: float) -> tuple[float, float]:
    try:
        pair = tuple(_as_float(v) for v in value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise ValueError(
            f"Argument `{name}` must be (min, max) with {low} <= min <= max <= {high}. "
            f"Received: {name}={value!r}"
        )
    return pair


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= _as_float(value) <= 1.0:
        raise ValueError(f"Argument `{name}` must be in [0, 1]. Received: {name}={value!r}")
    return float(value)


def _grayscale(images):
    if images.shape[-1] == 1:  # already one intensity channel
        return images
    weights = tf.constant(_GRAY_WEIGHTS, images.dtype)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True)


def _per_image(values, rank=4):
    return tf.reshape(values, [-1] + [1] * (rank - 1))


def crop_boxes(seed, batch_size, area, log_aspect, aspect_of_image=1.0):
    """Samples SimCLR's random resized crop boxes `[y0, x0, y1, x1]` in [0, 1].

    Like Inception's crop (and torchvision's RandomResizedCrop): area fraction
    uniform in `area`, aspect ratio log-uniform in `exp(log_aspect)`, up to 10 tries
    per image for a box that fits, else the whole image; the offset is uniform.

    Args:
        seed: a stateless seed, shape `(2,)`.
        batch_size: number of boxes.
        area: `(min, max)` fraction of the image area.
        log_aspect: `(min, max)` of the log width/height ratio.
        aspect_of_image: image width / height.

    Returns:
        float32 boxes of shape `(batch_size, 4)`.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    shape = [batch_size, _CROP_TRIES]
    areas = tf.random.stateless_uniform(shape, seeds[0], area[0], area[1])
    ratios = tf.exp(tf.random.stateless_uniform(shape, seeds[1], log_aspect[0], log_aspect[1]))
    # Relative sides: width * height = area (in units of the image) and
    # (width * W) / (height * H) = ratio.
    widths = tf.sqrt(areas * ratios / aspect_of_image)
    heights = tf.sqrt(areas / ratios * aspect_of_image)
    fits = tf.logical_and(widths <= 1.0, heights <= 1.0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    any_fits = tf.reduce_any(fits, axis=1)
    pick = tf.stack([tf.range(batch_size), first], axis=1)
    width = tf.where(any_fits, tf.gather_nd(widths, pick), 1.0)
    height = tf.where(any_fits, tf.gather_nd(heights, pick), 1.0)
    offsets = tf.random.stateless_uniform([batch_size, 2], seeds[2])
    y0 = offsets[:, 0] * (1.0 - height)
    x0 = offsets[:, 1] * (1.0 - width)
    return tf.stack([y0, x0, y0 + height, x0 + width], axis=1)


def _interpolation_matrix(starts, ends, source_size, output_size):
    """Bilinear weights `(batch, output_size, source_size)` sampling [start, end] of an axis."""
    if output_size == 1:  # the one output sample sits at the centre of the box
        positions = 0.5 * (starts + ends)[:, None] * (source_size - 1)
    else:
        steps = tf.range(output_size, dtype=tf.float32)
        scale = (ends - starts) * (source_size - 1) / (output_size - 1)
        positions = starts[:, None] * (source_size - 1) + steps[None, :] * scale[:, None]
    pixels = tf.range(source_size, dtype=tf.float32)
    return tf.maximum(0.0, 1.0 - tf.abs(positions[:, :, None] - pixels[None, None, :]))


def crop_and_resize(images, boxes, size):
    """Crops one box per image and resizes it bilinearly, with matmuls only.

    Gives the values of `tf.image.crop_and_resize(images, boxes, range(batch), size)`
    (bilinear, boxes inside the image), but as two batched matrix products with
    triangle-kernel weights, so it compiles under XLA (TPU, `jit_compile=True`), where
    `CropAndResize` has no kernel.

    Args:
        images: float32 `(batch, height, width, channels)`.
        boxes: float32 `(batch, 4)` normalised `[y0, x0, y1, x1]` in [0, 1].
        size: output `(height, width)`.

    Returns:
        float32 `(batch, size[0], size[1], channels)`.

    Example:
        >>> boxes = tf.constant([[0.0, 0.0, 1.0, 1.0]] * 2)
        >>> crop_and_resize(tf.zeros((2, 8, 8, 1)), boxes, (4, 4)).shape
        TensorShape([2, 4, 4, 1])
    """
    height, width = images.shape[1], images.shape[2]
    rows = _interpolation_matrix(boxes[:, 0], boxes[:, 2], height, size[0])  # (b, out_h, h)
    columns = _interpolation_matrix(boxes[:, 1], boxes[:, 3], width, size[1])  # (b, out_w, w)
    images = tf.einsum("bih,bhwc->biwc", rows, images)
    return tf.einsum("bjw,biwc->bijc", columns, images)


def _adjust_brightness(images, factor):
    return images * factor


def _adjust_contrast(images, factor):
    mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
    return (images - mean) * factor + mean


def _adjust_saturation(images, factor):
    gray = _grayscale(images)
    return (images - gray) * factor + gray


def _adjust_hue(images, delta):
    hsv = tf.image.rgb_to_hsv(images)
    hue = tf.math.floormod(hsv[..., :1] + delta, 1.0)
    return tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1))


def gaussian_blur(images, sigma, kernel_size):
    """Blurs each image with its own Gaussian `sigma` (separable, 'SAME' reflect-free).

    Args:
        images: float `(batch, height, width, channels)`.
        sigma: float `(batch,)` standard deviations in pixels.
        kernel_size: odd kernel size.

    Returns:
        The blurred images.
    """
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    radius = kernel_size // 2
    offsets = tf.range(-radius, radius + 1, dtype=images.dtype)
    kernel = tf.exp(-tf.square(offsets)[None, :] / (2.0 * tf.square(sigma)[:, None]))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (batch, k)
    # One depthwise convolution for the whole batch: images become channels.
    stacked = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, -1])
    kernel = tf.repeat(tf.transpose(kernel), channels, axis=1)  # (k, batch * channels)
    vertical = tf.reshape(kernel, [kernel_size, 1, -1, 1])
    horizontal = tf.reshape(kernel, [1, kernel_size, -1, 1])
    stacked = tf.nn.depthwise_conv2d(stacked, vertical, [1, 1, 1, 1], "SAME")
    stacked = tf.nn.depthwise_conv2d(stacked, horizontal, [1, 1, 1, 1], "SAME")
    return tf.transpose(tf.reshape(stacked, [height, width, batch, channels]), [2, 0, 1, 3])


@keras.saving.register_keras_serializable(package="keras_siamese")
class SimCLRAugmenter(keras.layers.Layer):
    """SimCLR's random augmentation, vectorised over the batch, per-image random.

    The operations of Chen et al. 2020 (appendix A), in order: random resized crop
    (area `crop_area`, aspect ratio 3/4-4/3, resized back to `image_size`), horizontal
    flip (p=0.5), colour jitter with p=`jitter_probability` (brightness, contrast,
    saturation 0.8·s and hue 0.2·s, in a random order per image), grayscale with
    p=`grayscale_probability`, and an optional Gaussian blur (p=`blur_probability`,
    sigma in [0.1, 2.0] pixels, kernel 10% of the image side; off by default, as the
    paper does for CIFAR). For 1-channel images, saturation, hue and grayscale do
    not exist: colour jitter is reduced to brightness and contrast.

    Input: uint8 or float images in [0, 255], `(batch, height, width, channels)`.
    Output: float32 in [0, 1], `(batch, *image_size, channels)`. With
    `training=False` the images are only resized and rescaled.

    Randomness comes from a Keras `SeedGenerator` whose seed is folded with the
    replica id, so under a `tf.distribute` strategy each replica draws its own crops.

    Args:
        image_size: output `(height, width)` or an int for square images.
        channels: 1 or 3.
        strength: colour-jitter strength `s` (1.0 in the paper's ImageNet runs, 0.5
            for CIFAR-10).
        blur: apply the Gaussian blur.
        crop_area: `(min, max)` area fraction of the random crop (paper: 0.08-1.0).
        flip: apply random horizontal flips.
        jitter_probability: probability of colour jitter per image.
        grayscale_probability: probability of grayscale per image (3 channels only).
        blur_probability: probability of the blur per image when `blur=True`.
        seed: integer seed of the layer's random stream.

    Example:
        >>> augmenter = SimCLRAugmenter(image_size=28, channels=1)
        >>> views = augmenter(np.zeros((4, 28, 28, 1), "uint8"), training=True)
        >>> views.shape
        TensorShape([4, 28, 28, 1])
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        channels: int = 3,
        strength: float = 1.0,
        blur: bool = False,
        crop_area: tuple[float, float] = (0.08, 1.0),
        flip: bool = True,
        jitter_probability: float = 0.8,
        grayscale_probability: float = 0.2,
        blur_probability: float = 0.5,
        seed: int | None = None,
        **kwargs,
    ):
        image_size = _as_size(image_size)
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"Argument `channels` must be 1 or 3. Received: channels={channels!r}")
        if not 0.0 <= _as_float(strength) <= 1.25:
            raise ValueError(
                "Argument `strength` must be in [0, 1.25] (0.8·s <= 1). "
                f"Received: strength={strength!r}"
            )
        crop_area = _check_range("crop_area", crop_area, 1e-3, 1.0)
        jitter_probability = _check_probability("jitter_probability", jitter_probability)
        grayscale_probability = _check_probability("grayscale_probability", grayscale_probability)
        blur_probability = _check_probability("blur_probability", blur_probability)
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = channels
        self.strength = float(strength)
        self.blur = bool(blur)
        self.crop_area = crop_area
        self.flip = bool(flip)
        self.jitter_probability = jitter_probability
        self.grayscale_probability = grayscale_probability
        self.blur_probability = blur_probability
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="augment_seed")

    def _check_images(self, images):
        shape = images.shape
        if shape.rank != 4:
            raise ValueError(
                "Argument `images` must have shape (batch, height, width, channels). "
                f"Received: images.shape={tuple(shape)}"
            )
        if shape[-1] != self.channels:
            raise ValueError(
                f"Argument `images` must have {self.channels} channels (the augmenter's "
                f"`channels`). Received: images.shape={tuple(shape)}"
            )
        if not (images.dtype.is_integer or images.dtype.is_floating):
            raise TypeError(
                "Argument `images` must be uint8 or float in [0, 255]. "
                f"Received: images.dtype={images.dtype.name}"
            )

    def _rescale(self, images):
        images = tf.cast(images, tf.float32) / 255.0
        if tuple(images.shape[1:3]) != self.image_size:
            images = tf.image.resize(images, self.image_size, antialias=True)
        return images

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        self._check_images(images)
        if not training:
            return self._rescale(images)
        seed = distribute.replica_seed(self.seed_generator.next())
        seeds = tf.random.experimental.stateless_split(seed, 8)
        images = tf.cast(images, tf.float32) / 255.0
        batch = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        aspect = 1.0 if height is None or width is None else width / height
        boxes = crop_boxes(
            seeds[0], batch, self.crop_area, (math.log(3 / 4), math.log(4 / 3)), aspect
        )
        images = crop_and_resize(images, boxes, self.image_size)
        if self.flip:
            flip = tf.random.stateless_uniform([batch], seeds[1]) < 0.5
            images = tf.where(_per_image(flip), tf.reverse(images, axis=[2]), images)
        if self.strength > 0 and self.jitter_probability > 0:
            jittered = self._color_jitter(images, seeds[2])
            apply = tf.random.stateless_uniform([batch], seeds[3]) < self.jitter_probability
            images = tf.where(_per_image(apply), jittered, images)
        if self.channels == 3 and self.grayscale_probability > 0:
            gray = tf.tile(_grayscale(images), [1, 1, 1, 3])
            apply = tf.random.stateless_uniform([batch], seeds[4]) < self.grayscale_probability
            images = tf.where(_per_image(apply), gray, images)
        if self.blur and self.blur_probability > 0:
            sigma = tf.random.stateless_uniform([batch], seeds[5], 0.1, 2.0)
            kernel_size = max(3, int(0.1 * min(self.image_size)) // 2 * 2 + 1)
            blurred = gaussian_blur(images, sigma, kernel_size)
            apply = tf.random.stateless_uniform([batch], seeds[6]) < self.blur_probability
            images = tf.where(_per_image(apply), blurred, images)
        return tf.clip_by_value(images, 0.0, 1.0)

    def _color_jitter(self, images, seed):
        """Brightness, contrast (and saturation, hue) in a random order per image."""
        batch = tf.shape(images)[0]
        s = self.strength
        seeds = tf.random.experimental.stateless_split(seed, 5)

        def factor(index, spread):
            return _per_image(
                tf.random.stateless_uniform([batch], seeds[index], max(0.0, 1 - spread), 1 + spread)
            )

        operations = [
            lambda x: _adjust_brightness(x, factor(0, 0.8 * s)),
            lambda x: _adjust_contrast(x, factor(1, 0.8 * s)),
        ]
        if self.channels == 3:
            hue = _per_image(tf.random.stateless_uniform([batch], seeds[3], -0.2 * s, 0.2 * s))
            operations += [
                lambda x: _adjust_saturation(x, factor(2, 0.8 * s)),
                lambda x: _adjust_hue(x, hue),
            ]
        count = len(operations)
        # A random permutation per image: argsort of uniform noise.
        order = tf.argsort(tf.random.stateless_uniform([batch, count], seeds[4]), axis=1)
        for position in range(count):
            choice = order[:, position]
            candidates = [tf.clip_by_value(op(images), 0.0, 1.0) for op in operations]
            result = candidates[0]
            for index in range(1, count):
                result = tf.where(_per_image(tf.equal(choice, index)), candidates[index], result)
            images = result
        return images

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "channels": self.channels,
                "strength": self.strength,
                "blur": self.blur,
                "crop_area": self.crop_area,
                "flip": self.flip,
                "jitter_probability": self.jitter_probability,
                "grayscale_probability": self.grayscale_probability,
                "blur_probability": self.blur_probability,
                "seed": self.seed,
            }
        )
        return config


def simclr_augmenter(
    image_size: int | tuple[int, int],
    channels: int = 3,
    strength: float = 1.0,
    blur: bool = False,
    **kwargs,
) -> SimCLRAugmenter:
    """Returns the SimCLR augmentation layer (see `SimCLRAugmenter`).

    Args:
        image_size: output `(height, width)` or an int.
        channels: 1 or 3.
        strength: colour-jitter strength.
        blur: apply Gaussian blur with p=0.5 (off for small images, as in the paper).
        **kwargs: further `SimCLRAugmenter` arguments (`crop_area`, `seed`, ...).

    Returns:
        A `SimCLRAugmenter`: uint8/float [0, 255] in, float32 [0, 1] out.

    Example:
        >>> augmenter = simclr_augmenter(32, channels=3, strength=0.5)
    """
    return SimCLRAugmenter(image_size, channels=channels, strength=strength, blur=blur, **kwargs)


def simsiam_augmenter(
    image_size: int | tuple[int, int],
    channels: int = 3,
    **kwargs,
) -> SimCLRAugmenter:
    """Returns SimSiam's augmentation (Chen & He 2021, appendix A).

    SimSiam uses SimCLR's operations with crop area 0.2-1.0 and colour jitter
    (0.4, 0.4, 0.4, 0.1), i.e. strength 0.5.

    Args:
        image_size: output `(height, width)` or an int.
        channels: 1 or 3.
        **kwargs: further `SimCLRAugmenter` arguments.

    Returns:
        A `SimCLRAugmenter`.

    Example:
        >>> augmenter = simsiam_augmenter(32)
    """
    kwargs.setdefault("crop_area", (0.2, 1.0))
    kwargs.setdefault("strength", 0.5)
    return SimCLRAugmenter(image_size, channels=channels, **kwargs)
