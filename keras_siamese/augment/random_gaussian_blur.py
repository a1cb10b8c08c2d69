"""`RandomGaussianBlur`: a Gaussian blur with its own sigma per image (gate it with `RandomApply`).

Not keras-cv's `RandomGaussianBlur`, which loops over the images (`BaseImageAugmentationLayer`,
one depthwise convolution per image), nor Keras core's, which draws one sigma per batch. Here
one separable depthwise convolution blurs the whole batch (the images stacked as channels, so
each gets its own kernel); under XLA, whose CPU depthwise convolution over thousands of channels
is ~100x slower, the same sums are written as weighted shifted copies, which XLA fuses.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.base import (
    RandomAugmentationLayer,
    check_range,
    in_xla_context,
    uniform,
)


def gaussian_blur(images, sigma, kernel_size):
    """Blurs each image with its own Gaussian `sigma` (separable, zero 'SAME' padding).

    Args:
        images: float `(batch, height, width, channels)` with static height, width, channels.
        sigma: float `(batch,)` standard deviations in pixels.
        kernel_size: odd kernel size; the kernel is normalised over its window.

    Returns:
        The blurred images.

    Example:
        >>> gaussian_blur(tf.ones((2, 8, 8, 3)), tf.constant([0.5, 1.5]), 3).shape
        TensorShape([2, 8, 8, 3])
    """
    radius = kernel_size // 2
    offsets = tf.range(-radius, radius + 1, dtype=images.dtype)
    kernel = tf.exp(-tf.square(offsets)[None, :] / (2.0 * tf.square(sigma)[:, None]))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (batch, k)
    if in_xla_context():
        return _blur_by_shifts(_blur_by_shifts(images, kernel, axis=1), kernel, axis=2)
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    # One depthwise convolution for the whole batch: images become channels.
    stacked = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, -1])
    kernel = tf.repeat(tf.transpose(kernel), channels, axis=1)  # (k, batch * channels)
    vertical = tf.reshape(kernel, [kernel_size, 1, -1, 1])
    horizontal = tf.reshape(kernel, [1, kernel_size, -1, 1])
    stacked = tf.nn.depthwise_conv2d(stacked, vertical, [1, 1, 1, 1], "SAME")
    stacked = tf.nn.depthwise_conv2d(stacked, horizontal, [1, 1, 1, 1], "SAME")
    return tf.transpose(tf.reshape(stacked, [height, width, batch, channels]), [2, 0, 1, 3])


def _blur_by_shifts(images, kernel, axis):
    """Zero-padded 'SAME' correlation of each image with its kernel `(batch, k)` along `axis`."""
    size = kernel.shape[1]
    radius = size // 2
    padding = [[0, 0]] * 4
    padding[axis] = [radius, radius]
    padded = tf.pad(images, padding)
    length = images.shape[axis]
    blurred = 0.0
    for offset in range(size):
        window = padded[:, offset : offset + length] if axis == 1 else padded[:, :, offset:]
        if axis == 2:
            window = window[:, :, :length]
        blurred += window * tf.reshape(kernel[:, offset], [-1, 1, 1, 1])
    return blurred


def blur_kernel_size(image_size: tuple[int, int]) -> int:
    """SimCLR's kernel: 10% of the smaller image side, odd, at least 3 (23 for 224 pixels)."""
    return max(3, int(0.1 * min(image_size)) // 2 * 2 + 1)


@keras.saving.register_keras_serializable(package="keras_siamese")
class RandomGaussianBlur(RandomAugmentationLayer):
    """Blurs each image with a Gaussian kernel whose sigma is drawn per image.

    SimCLR's blur (Chen et al. 2020, appendix A: "sigma randomly sampled from [0.1, 2.0], and the
    kernel size is set to be 10% of the image height/width", with p=0.5 on ImageNet and none on
    CIFAR-10); BYOL applies it with p=1.0 and 0.1 to its two views. Works for any channel count
    and value range (a convex combination of pixels). With `training=False`, identity.

    Args:
        kernel_size: odd kernel size in pixels (`blur_kernel_size(image_size)` for SimCLR's).
        sigma: `(min, max)` of the uniform sigma in pixels.
        seed: integer seed of the layer's random stream.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> blur = RandomGaussianBlur(3, seed=0)
        >>> blur(np.zeros((2, 8, 8, 1))).shape
        TensorShape([2, 8, 8, 1])
    """

    def __init__(
        self,
        kernel_size: int,
        sigma: tuple[float, float] = (0.1, 2.0),
        seed: int | None = None,
        **kwargs,
    ):
        kernel_size = validation.check_integer("kernel_size", kernel_size, minimum=1)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"Argument `kernel_size` must be odd. Received: kernel_size={kernel_size}"
            )
        sigma = check_range("sigma", sigma, 1e-3)
        super().__init__(seed=seed, **kwargs)
        self.kernel_size = kernel_size
        self.sigma = sigma

    def get_random_transformation_batch(self, batch_size, **kwargs):
        return uniform([batch_size], self.next_seed(), *self.sigma)

    def augment_images(self, images, transformations, **kwargs):
        return gaussian_blur(images, transformations, self.kernel_size)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "sigma": self.sigma})
        return config
