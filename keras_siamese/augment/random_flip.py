"""`RandomFlip`: horizontal flips with probability 0.5, one draw per image.

Not keras-cv's `RandomFlip`: that one is per image and per replica too, but it broadcasts its
draws to two full-size tensors of ones and computes both a left-right and an up-down flip for
every image whatever the mode, with `(batch, height, width, channels)` masks (2.6x slower at
224x224, benchmarks/augment.py), and it draws from a `tf.random.Generator` that `.keras` files do
not keep. Here one mirrored copy of the batch and one per-image selection.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.augment.base import RandomAugmentationLayer, select_images, uniform


@keras.saving.register_keras_serializable(package="keras_siamese")
class RandomFlip(RandomAugmentationLayer):
    """Mirrors each image left-right with probability `probability`.

    SimCLR, SimSiam, BYOL, SwAV and DINO all flip horizontally with p=0.5 after the crop (Chen
    et al. 2020, appendix A). Works for any channel count and value range; identity with
    `training=False`.

    Args:
        probability: probability that an image is mirrored.
        seed: integer seed of the layer's random stream.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
        >>> flip = RandomFlip(seed=0)
        >>> flip(np.zeros((4, 8, 8, 1))).shape
        TensorShape([4, 8, 8, 1])
    """

    def __init__(self, probability: float = 0.5, seed: int | None = None, **kwargs):
        probability = validation.check_probability("probability", probability)
        super().__init__(seed=seed, **kwargs)
        self.probability = probability

    def get_random_transformation_batch(self, batch_size, **kwargs):
        return uniform([batch_size], self.next_seed()) < self.probability

    def augment_images(self, images, transformations, **kwargs):
        return select_images(transformations, tf.reverse(images, axis=[2]), images)

    def get_config(self):
        config = super().get_config()
        config["probability"] = self.probability
        return config
